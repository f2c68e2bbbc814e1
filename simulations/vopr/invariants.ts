/**
 * The invariants of issue 9, checked on facts the world records as the machines' effects are carried
 * out (the ledger), never on the machines' own view of themselves: a machine that believes it
 * thawed an app while the thaw was lost must still fail "no app frozen past its deadline".
 *
 * Safety invariants are checked after every step; the end-of-run ones (nothing leaked, agents
 * converged, no plan wedged) once the liveness phase has healed the world and it went quiet.
 */

import type { KnownFinding } from './known-findings.js';

export const INVARIANTS = [
  'no-app-held-past-deadline',
  'completed-checkpoints-whole',
  'nothing-leaked',
  'epochs-monotone',
  'agents-converge',
  'keyed-operation-once',
  'in-flight-limit',
  'no-plan-wedged',
  'refusal-changes-nothing',
  'crash-cut-in-frozen-window',
] as const;

export type Invariant = (typeof INVARIANTS)[number];

export interface Violation {
  readonly invariant: Invariant;
  readonly atMs: number;
  readonly detail: string;
  /** Set when the world recognises an open defect it already reported (known-findings.ts). */
  readonly known?: KnownFinding;
}

/** How long past its deadline a frozen or quiesced app may stay before it counts: one watchdog tick. */
export const DEADLINE_SLACK_MS = 50;

interface Hold {
  /** Set when the world recognises the hold as an open defect's doing. */
  readonly known?: KnownFinding;
  /** frozen: a crash-level freeze; quiesced: paused by a restore until its resume; stopped: an opaque app quiesced by its hooks. */
  readonly kind: 'frozen' | 'quiesced' | 'stopped';
  readonly sinceMs: number;
  readonly deadlineAtMs: number;
  readonly checkpoint: number;
}

interface CompletedCheckpoint {
  readonly plan: string;
  readonly objects: readonly string[];
  readonly volumeSnapshots: readonly string[];
}

/** A violation is reported once per invariant and subject, not at every later step. */
export class Ledger {
  readonly violations: Violation[] = [];
  private readonly reported = new Set<string>();
  /** The subject of each violation, index for index. */
  private readonly subjects: string[] = [];
  private readonly holds = new Map<string, Hold>();
  private readonly completed = new Map<number, CompletedCheckpoint>();
  /** Stored item -> the completed checkpoints that own it. */
  private readonly owners = new Map<string, Set<number>>();
  private readonly planEpochs = new Map<string, number>();
  private readonly agentEpochs = new Map<string, number>();
  private readonly keyedExecutions = new Map<string, number>();
  private readonly inFlight = new Map<string, Set<number>>();

  /**
   * Held apps whose hold is a visible, repairable state rather than a violation: a restore an agent
   * declined leaves the operation in needs-repair and the apps it restored paused for the operator
   * (set by the world).
   */
  exemptHold: (kind: Hold['kind'], checkpoint: number) => boolean = () => false;
  /** Tells whether an excess of checkpoints in flight is a known finding (set by the world). */
  knownInFlight: (ids: readonly number[]) => KnownFinding | undefined = () => undefined;
  /** Tells which held apps are a known finding (set by the world). */
  knownHold: (kind: Hold['kind'], checkpoint: number) => KnownFinding | undefined = () => undefined;

  constructor(private readonly limitOf: (plan: string) => number) {}

  violate(invariant: Invariant, subject: string, atMs: number, detail: string, known?: KnownFinding): void {
    const key = `${invariant}|${subject}`;
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.subjects.push(key);
    this.violations.push(known === undefined ? { invariant, atMs, detail } : { invariant, atMs, detail, known });
  }

  /** Marks the violations about `subject` as a known finding once the run shows what they were. */
  recognise(invariant: Invariant, subject: string, known: KnownFinding): void {
    const i = this.subjects.indexOf(`${invariant}|${subject}`);
    const v = this.violations[i];
    if (v !== undefined) this.violations[i] = Object.assign({}, v, { known });
  }

  // --- apps held by a freeze or a quiesce ---------------------------------------------------

  hold(app: string, kind: Hold['kind'], checkpoint: number, nowMs: number, deadlineMs: number, known?: KnownFinding): void {
    const held = this.holds.get(app);
    // A second freeze of a frozen app keeps the first deadline: the watchdog counts from the first.
    if (held !== undefined && held.kind === kind) return;
    const hold: Hold = { kind, sinceMs: nowMs, deadlineAtMs: nowMs + deadlineMs, checkpoint };
    if (kind === 'frozen') this.frozeGuest(app, checkpoint, nowMs);
    this.holds.set(app, known === undefined ? hold : Object.assign({ known }, hold));
  }

  /** `nowMs`: when it ended (a guest's thaw is kept, for `crashCut`). */
  release(app: string, kind: Hold['kind'], nowMs?: number): void {
    const held = this.holds.get(app);
    if (held?.kind !== kind) return;
    this.holds.delete(app);
    if (kind === 'frozen' && nowMs !== undefined) this.thawedGuest(app, held.checkpoint, nowMs);
  }

  // --- the guests' frozen windows, as the guests lived them ---------------------------------

  /** Per `server#checkpoint`: when the guest froze for the checkpoint, and when it thawed (absent: still frozen). */
  private readonly freezes = new Map<string, { fromMs: number; toMs?: number }>();

  private frozeGuest(app: string, checkpoint: number, nowMs: number): void {
    const key = `${app.split('/')[0] ?? app}#${checkpoint}`;
    if (!this.freezes.has(key)) this.freezes.set(key, { fromMs: nowMs });
  }

  private thawedGuest(app: string, checkpoint: number, nowMs: number): void {
    const f = this.freezes.get(`${app.split('/')[0] ?? app}#${checkpoint}`);
    if (f !== undefined && f.toMs === undefined) f.toMs = nowMs;
  }

  /**
   * A crash-level checkpoint landed completed: each volume snapshot it names, taken from `fromMs`
   * to `toMs` (by the backend, or by the caller of a staged checkpoint), must lie inside the window
   * in which every server of the plan was frozen for it, as the guests lived it (not as the
   * coordinator saw it).
   */
  crashCut(id: number, plan: string, servers: readonly string[], members: readonly { readonly ref: string; readonly fromMs: number; readonly toMs: number }[], nowMs: number): void {
    for (const m of members) {
      for (const server of servers) {
        const f = this.freezes.get(`${server}#${id}`);
        const inside = f !== undefined && f.fromMs <= m.fromMs && (f.toMs === undefined || m.toMs <= f.toMs);
        if (!inside) {
          const window = f === undefined ? 'never frozen for it' : `frozen from ${f.fromMs} to ${f.toMs ?? 'now'}`;
          this.violate('crash-cut-in-frozen-window', `checkpoint ${id}`, nowMs, `checkpoint ${id} of plan ${plan} completed with ${m.ref} taken from ${m.fromMs} to ${m.toMs}, but ${server} was ${window}`);
          return;
        }
      }
    }
  }

  /** Every hold of this kind on apps whose name starts with `prefix` is now a known finding's doing. */
  recogniseHolds(prefix: string, kind: Hold['kind'], known: KnownFinding): void {
    for (const [app, h] of [...this.holds]) if (app.startsWith(prefix) && h.kind === kind) this.holds.set(app, Object.assign({}, h, { known }));
  }

  /** Every hold of this kind on apps whose name starts with `prefix` ends (a restarted agent's paused apps run again). */
  releaseAll(prefix: string, kind: Hold['kind']): void {
    for (const [app, h] of [...this.holds]) if (app.startsWith(prefix) && h.kind === kind) this.holds.delete(app);
  }

  // --- checkpoints ---------------------------------------------------------------------------

  /**
   * A record landed as completed: its parts must exist now, and from now on deleting one of them is
   * a violation (checked where the stores delete, so no step goes unchecked and none is scanned).
   */
  committed(id: number, plan: string, objects: readonly string[], volumeSnapshots: readonly string[], nowMs: number, exists: (item: string) => boolean): void {
    this.completed.set(id, { plan, objects: [...objects], volumeSnapshots: [...volumeSnapshots] });
    for (const item of [...objects, ...volumeSnapshots]) {
      this.owners.set(item, (this.owners.get(item) ?? new Set()).add(id));
    }
    const missing = [...objects, ...volumeSnapshots].filter((x) => !exists(x));
    if (missing.length > 0) this.violate('completed-checkpoints-whole', `checkpoint ${id}`, nowMs, `checkpoint ${id} of plan ${plan} was recorded completed without ${missing.join(', ')}`);
  }

  /** The record of a checkpoint is no longer completed (deleted, or overwritten). */
  deleted(id: number): void {
    const c = this.completed.get(id);
    if (c === undefined) return;
    this.completed.delete(id);
    for (const item of [...c.objects, ...c.volumeSnapshots]) this.owners.get(item)?.delete(id);
  }

  /** A stored object or volume snapshot was deleted. */
  itemDeleted(item: string, nowMs: number): void {
    for (const id of this.owners.get(item) ?? []) {
      const c = this.completed.get(id);
      if (c !== undefined) this.violate('completed-checkpoints-whole', `checkpoint ${id}`, nowMs, `${item} of completed checkpoint ${id} (plan ${c.plan}) was deleted while its record says completed`);
    }
  }

  roundStarted(plan: string, id: number, nowMs: number): void {
    const set = this.inFlight.get(plan) ?? new Set<number>();
    set.add(id);
    this.inFlight.set(plan, set);
    const limit = this.limitOf(plan);
    if (set.size > limit) {
      const ids = [...set].sort((a, b) => a - b);
      this.violate('in-flight-limit', plan, nowMs, `plan ${plan} has ${set.size} checkpoints in flight (${ids.join(', ')}), limit ${limit}`, this.knownInFlight(ids));
    }
  }

  roundEnded(plan: string, id: number): void {
    this.inFlight.get(plan)?.delete(id);
  }

  // --- epochs and keyed operations -----------------------------------------------------------

  planEpoch(plan: string, epoch: number, nowMs: number): void {
    const before = this.planEpochs.get(plan) ?? 0;
    if (epoch < before) this.violate('epochs-monotone', `plan ${plan}`, nowMs, `plan ${plan}'s epoch went from ${before} back to ${epoch}`);
    else this.planEpochs.set(plan, epoch);
  }

  epochOf(plan: string): number {
    return this.planEpochs.get(plan) ?? 0;
  }

  /** The epoch an agent holds for a plan, whenever it changes; a restarted agent starts again from what it is told. */
  agentEpoch(server: string, plan: string, epoch: number, nowMs: number, restarted: boolean): void {
    const key = `${server}|${plan}`;
    const before = this.agentEpochs.get(key);
    if (!restarted && before !== undefined && epoch < before) {
      this.violate('epochs-monotone', `agent ${key}`, nowMs, `agent ${server} went back from epoch ${before} to ${epoch} for plan ${plan}`);
    }
    this.agentEpochs.set(key, epoch);
  }

  /** A keyed operation (a rollback or restore with an idempotency key) did its work once more. */
  executed(key: string, what: string, nowMs: number): void {
    const n = (this.keyedExecutions.get(key) ?? 0) + 1;
    this.keyedExecutions.set(key, n);
    if (n > 1) this.violate('keyed-operation-once', key, nowMs, `${what} with idempotency key ${key} executed ${n} times`);
  }

  // --- checks ----------------------------------------------------------------------------------

  /** After every step: no app held past its deadline (the parts of completed checkpoints are checked as they change). */
  checkStep(nowMs: number): void {
    for (const [app, h] of this.holds) {
      if (nowMs > h.deadlineAtMs + DEADLINE_SLACK_MS && !this.exemptHold(h.kind, h.checkpoint)) {
        this.violate('no-app-held-past-deadline', app, nowMs, `${app} ${h.kind} by checkpoint ${h.checkpoint} since ${h.sinceMs} ms, deadline ${h.deadlineAtMs} ms`, h.known ?? this.knownHold(h.kind, h.checkpoint));
      }
    }
  }

  /** Once quiet: every stored object and volume snapshot belongs to a live checkpoint; `known` tells which leaks are known findings. */
  checkNoLeaks(nowMs: number, items: readonly string[], liveInFlight: ReadonlySet<string>, known: (item: string) => KnownFinding | undefined): void {
    const owned = new Set<string>(liveInFlight);
    for (const c of this.completed.values()) for (const x of [...c.objects, ...c.volumeSnapshots]) owned.add(x);
    const leaked = items.filter((x) => !owned.has(x.split(' ')[0] as string));
    const groups = new Map<KnownFinding | undefined, string[]>();
    for (const x of leaked) {
      const k = known(x);
      groups.set(k, [...(groups.get(k) ?? []), x]);
    }
    for (const [k, list] of groups) {
      this.violate('nothing-leaked', `end ${k ?? ''}`, nowMs, `${list.length} stored item(s) belong to no live checkpoint: ${list.slice(0, 8).join(', ')}${list.length > 8 ? ', ...' : ''}`, k);
    }
  }

  /** Once quiet: each agent holds, for each of its plans, the plan's epoch. */
  checkConverged(nowMs: number, agentPlans: readonly { readonly server: string; readonly plan: string; readonly epoch: number | undefined }[]): void {
    for (const a of agentPlans) {
      const want = this.epochOf(a.plan);
      if (a.epoch !== want) {
        this.violate('agents-converge', `${a.server}|${a.plan}`, nowMs, `agent ${a.server} holds epoch ${a.epoch ?? 'none'} for plan ${a.plan}, whose epoch is ${want}`);
      }
    }
  }

  /**
   * An operation that ended refused or failed ("nothing was changed") must have left its epoch line's
   * epoch as it found it, and must not have asked the volume backend to put volumes back.
   */
  operationEnded(operation: string, line: string, state: string, epochAtStart: number, nowMs: number, volumesPutBack = false, known?: KnownFinding): void {
    if (state !== 'refused' && state !== 'failed') return;
    const now = this.epochOf(line);
    if (now !== epochAtStart) this.violate('refusal-changes-nothing', operation, nowMs, `operation ${operation} ended ${state} ("nothing was changed"), but the epoch of ${line} moved from ${epochAtStart} to ${now}`, known);
    else if (volumesPutBack) this.violate('refusal-changes-nothing', operation, nowMs, `operation ${operation} ended ${state} ("nothing was changed"), but it had asked the volume backend to put the volumes of ${line} back`, known);
  }

  wedged(plan: string, nowMs: number, detail: string): void {
    this.violate('no-plan-wedged', plan, nowMs, detail);
  }
}
