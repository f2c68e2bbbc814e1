/**
 * Rollback and restore: the real operation machine (src/control/operation.ts), its idempotency
 * decision (operation-key.ts) and mapping check (operation-check.ts) in a shell that does what
 * coordinator/checkpoints/operations.ts does: check the call, claim the key, one operation per epoch
 * line at a time, then carry out the effects against the simulated stores and agents.
 */
import { checkRestoreMapping } from '../../src/control/operation-check.js';
import { decideKeyed, type KeyedOperation } from '../../src/control/operation-key.js';
import { OperationMachine, type OperationEffect, type OperationInput, type OperationOutcome, type OperationState } from '../../src/control/operation.js';
import type { AgentEvent, AppRestore, Control } from '../../src/wire/index.js';
import type { CoordinatorHost, CoordinatorWorld } from './coordinator-host.js';
import { SimProcess } from './process.js';
import { checkpointKey, epochKey, idempotencyKey, liveVolumeRefs, operationKey, type CheckpointRecord } from './records.js';
import { TENANT } from './topology.js';

export const OPERATION_PHASE_TIMEOUT_MS = 4_000;
export const OPERATION_RESEND_MS = 250;
/** An agent silent for longer is not present (a rollback to its server is refused at once). */
export const AGENT_PRESENT_MS = 3_000;

export interface OperationCall {
  readonly kind: 'rollback' | 'restore';
  readonly checkpointId: number;
  readonly key?: string;
  readonly skipSafety: boolean;
  /** Restore: the target server (its apps a1, a2, ... take the checkpoint's apps in order). */
  readonly target?: string;
}

/** What the world learns of operations, whatever becomes of the coordinator that ran them. */
export interface OperationsLedger {
  /** Per epoch line, the state of its newest operation that may have moved its epoch. */
  readonly lastState: Map<string, OperationState>;
  /** Checkpoints that operations rolled back or restored to, or took as safety checkpoints: not deleted. */
  readonly protectedIds: Set<number>;
  /** Checkpoints of operations that ended in needs-repair because an agent declined (a visible, repairable state). */
  readonly declinedRepairs: Set<number>;
}

class OperationRun {
  readonly machine: OperationMachine;
  /** The seq of the newest phase whose commands went out (request ids carry it). */
  phaseSeq = 0;
  constructor(
    readonly id: string,
    readonly call: OperationCall,
    readonly record: CheckpointRecord,
    readonly line: string,
    readonly servers: readonly string[],
    readonly restores: ReadonlyMap<string, AppRestore[]>,
    readonly incarnation: number,
    readonly ownsKey: boolean,
    readonly request: string,
    readonly reply: (o: OperationOutcome) => void,
    /** The epoch line's epoch when the operation started (the world's view). */
    readonly epochAtStart: number,
    negativeControls: CoordinatorWorld['negativeControls'],
    takeSafety: boolean,
  ) {
    this.machine = new OperationMachine({
      kind: call.kind,
      level: record.level === 'crash' ? 'crash' : 'app',
      id,
      title: `${call.kind} to checkpoint ${record.id}`,
      servers,
      takeSafetyCheckpoint: takeSafety,
      hasVolumes: record.level === 'crash' && record.volumes.length > 0,
      phaseTimeoutMs: OPERATION_PHASE_TIMEOUT_MS,
      resendIntervalMs: OPERATION_RESEND_MS,
      negativeControls,
    });
  }
}

export class OperationsHost {
  private readonly runs = new Map<string, OperationRun>();
  private readonly busyLines = new Map<string, string>();
  private serial = 0;

  constructor(
    private readonly c: CoordinatorHost,
    private readonly w: CoordinatorWorld,
    private readonly ledger: OperationsLedger,
  ) {
    c.operationAnswer = (e) => this.answer(e);
  }

  private get process(): SimProcess {
    return this.c.process;
  }

  /** Whether the phase a command (`op:<operation>:<seq>:<server>`) belongs to is over: its operation ended or moved on. */
  phaseOver(requestId: string): boolean {
    const [, id, seq] = requestId.split(':');
    const run = this.runs.get(id ?? '');
    return run === undefined || run.phaseSeq > Number(seq);
  }

  /** Checkpoints of the operations running now (the world notes them when the process dies). */
  runningCheckpoints(): number[] {
    return [...this.runs.values()].map((r) => r.record.id);
  }

  /** The coordinator crashed: its operations are gone with it (their records stay). */
  crash(): void {
    this.runs.clear();
    this.busyLines.clear();
  }

  call(call: OperationCall, reply: (o: OperationOutcome) => void): void {
    const refuse = (kind: 'not-found' | 'failed-precondition' | 'invalid-argument' | 'unavailable', message: string): void => reply({ ok: false, kind, message });
    if (!this.c.serving) return refuse('unavailable', 'the coordinator is starting (recovery under way)');
    this.c.store.read(checkpointKey(call.checkpointId), (entry) => {
      const record = entry?.value as CheckpointRecord | undefined;
      if (record === undefined || record.state === 'deleted') return refuse('not-found', `checkpoint ${call.checkpointId} not found`);
      if (record.state !== 'completed') return refuse('failed-precondition', `checkpoint ${record.id} is ${record.state}`);
      if (record.level === 'opaque') return refuse('failed-precondition', `checkpoint ${record.id} is of opaque apps, whose rollback is not implemented`);
      const plan = this.c.plan(record.plan);
      let servers: string[];
      let line: string;
      const restores = new Map<string, AppRestore[]>();
      const restoreOf = (part: CheckpointRecord['parts'][number], app: string): AppRestore => ({ app, state: { kind: 'object', ref: part.ref }, counts: { sent: {}, received: {} }, channelAliases: {} });
      if (call.kind === 'rollback') {
        servers = record.level === 'crash' ? [...plan.servers] : [...new Set(record.parts.map((p) => p.server))].sort();
        line = record.plan;
        for (const p of record.parts) restores.set(p.server, [...(restores.get(p.server) ?? []), restoreOf(p, p.app)]);
      } else {
        if (record.level !== 'app') return refuse('failed-precondition', 'this world restores app-level checkpoints only');
        const target = call.target as string;
        const apps = record.parts.map((p, i) => ({ source: { server: p.server, app: p.app }, target: { server: target, app: `a${i + 1}` } }));
        const check = checkRestoreMapping({ id: record.id, apps: record.parts.map((p) => ({ server: p.server, app: p.app })), volumeServers: [] }, { servers: {}, apps });
        if (!check.ok) return refuse(check.kind, check.message);
        servers = [target];
        line = `restore-${record.plan}-${target}`;
        restores.set(target, record.parts.map((p, i) => restoreOf(p, `a${i + 1}`)));
      }
      const request = `${call.kind} ${record.id}${call.target !== undefined ? ` into ${call.target}` : ''} ${call.skipSafety ? 'without' : 'with'} a safety checkpoint`;
      const id = `${this.c.owner}-op${++this.serial}`;
      const start = (ownsKey: boolean, runId: string): void => this.start(call, record, line, servers, restores, request, runId, ownsKey, reply);
      if (call.key === undefined) return start(false, id);
      const key = call.key;
      let seen: KeyedOperation | undefined;
      this.c.store.update<KeyedOperation>(
        idempotencyKey(key),
        (current) => {
          seen = current;
          return current === undefined ? { id, request, state: 'validating' } : undefined;
        },
        (written) => {
          // Our own claim, landed by an earlier attempt whose reply was lost, is ours to run.
          if (written !== undefined || seen?.id === id) return start(true, id);
          const decision = decideKeyed(key, request, seen, this.w.negativeControls);
          switch (decision.type) {
            case 'replay':
              this.w.trace(`${call.kind} key ${key}: replayed the outcome of ${decision.operationId}`);
              return reply(decision.outcome);
            case 'join':
              return this.join(decision.operationId, key, reply);
            case 'conflict':
              return refuse('invalid-argument', decision.message);
            case 'run':
              return start(false, `${id}r`);
          }
        },
      );
    });
  }

  /** Waits for the operation that holds the key to end, reading its key record. */
  private join(operationId: string, key: string, reply: (o: OperationOutcome) => void, tries = 0): void {
    this.c.store.read(idempotencyKey(key), (entry) => {
      const k = entry?.value as KeyedOperation | undefined;
      if (k?.outcome !== undefined) return reply(k.outcome);
      if (tries > 60) return reply({ ok: false, kind: 'unavailable', message: `operation ${operationId} is still running; call again with the same key` });
      this.process.later(250, '', () => this.join(operationId, key, reply, tries + 1));
    });
  }

  private start(call: OperationCall, record: CheckpointRecord, line: string, servers: readonly string[], restores: ReadonlyMap<string, AppRestore[]>, request: string, id: string, ownsKey: boolean, reply: (o: OperationOutcome) => void): void {
    const busy = this.busyLines.get(line);
    if (busy !== undefined) {
      reply({ ok: false, kind: 'failed-precondition', message: `operation ${busy} on ${line} is still running` });
      return;
    }
    // A plan left in needs-repair has no consistent present to keep (as the coordinator decides).
    const takeSafety = call.kind === 'rollback' && !call.skipSafety && this.ledger.lastState.get(line) !== 'needs-repair';
    const run = new OperationRun(id, call, record, line, servers, restores, this.process.incarnation, ownsKey, request, reply, this.w.ledger.epochOf(line), this.w.negativeControls, takeSafety);
    this.runs.set(id, run);
    this.busyLines.set(line, id);
    this.ledger.protectedIds.add(record.id);
    this.w.trace(`op ${id}: ${request}${call.key !== undefined ? ` (key ${call.key})` : ''}`);
    this.feed(run, { type: 'start', nowMs: this.w.agenda.now });
  }

  private feed(run: OperationRun, input: OperationInput): void {
    if (!this.process.up || this.process.incarnation !== run.incarnation || this.runs.get(run.id) !== run) return;
    const r = run.machine.step(input);
    if (r.rejected && r.rejected.reason !== 'stale-timer' && r.rejected.reason !== 'duplicate') this.w.trace(`op ${run.id} rejected ${input.type}: ${r.rejected.reason}`);
    for (const e of r.effects) this.apply(run, e);
  }

  private apply(run: OperationRun, e: OperationEffect): void {
    const now = this.w.agenda.now;
    switch (e.type) {
      case 'persist':
        this.w.trace(`op ${run.id} ${e.state}${e.epoch !== undefined ? ` epoch ${e.epoch}` : ''}: ${e.detail}`);
        this.c.store.put(operationKey(run.id), { id: run.id, line: run.line, state: e.state, detail: e.detail, epoch: e.epoch, safety: e.safetyCheckpointId }, () => undefined);
        // Only operations that may have moved the epoch count: a later one refused or failed before it
        // changed anything leaves the plan as it found it, repair still due.
        if (!['validating', 'safety-checkpoint', 'refused', 'failed'].includes(e.state)) this.ledger.lastState.set(run.line, e.state);
        return;
      case 'validate':
        this.validate(run);
        return;
      case 'take-safety-checkpoint':
        this.c.take(run.record.plan, false, (a) => {
          if (!a.ok) return this.feed(run, { type: 'safety-failed', nowMs: this.w.agenda.now, detail: a.message });
          this.ledger.protectedIds.add(a.id);
          this.c.whenEnded(a.id, (r) =>
            this.feed(run, r?.state === 'completed' ? { type: 'safety-completed', nowMs: this.w.agenda.now, checkpointId: a.id } : { type: 'safety-failed', nowMs: this.w.agenda.now, detail: `checkpoint ${a.id} ${r?.state ?? 'lost'}` }),
          );
        });
        return;
      case 'cancel-checkpoints':
        for (const id of this.c.runningOf(run.record.plan)) this.c.cancel(id, e.detail);
        return;
      case 'set-epoch':
        if (!e.bump) {
          this.c.store.read(epochKey(run.line), (entry) => this.feed(run, { type: 'epoch-set', nowMs: this.w.agenda.now, epoch: (entry?.value as number | undefined) ?? 0 }));
          return;
        }
        this.c.store.increment(epochKey(run.line), (epoch) => {
          if (run.call.key !== undefined) this.w.ledger.executed(run.call.key, `${run.call.kind} (epoch of ${run.line} bumped to ${epoch})`, this.w.agenda.now);
          this.feed(run, { type: 'epoch-set', nowMs: this.w.agenda.now, epoch });
        });
        return;
      case 'send':
        run.phaseSeq = Math.max(run.phaseSeq, Number(e.requestId.split(':')[2]));
        this.w.controls.send('coordinator', e.server, this.command(run, e));
        return;
      case 'volumes':
        this.revertVolumes(run);
        return;
      case 'start-timer':
        this.process.startTimer(`op ${run.id} ${e.name}`, e.ms, () => this.feed(run, { type: 'timer-fired', nowMs: this.w.agenda.now, name: e.name, seq: e.seq }));
        return;
      case 'cancel-timer':
        this.process.cancelTimer(`op ${run.id} ${e.name}`);
        return;
      case 'finished':
        this.runs.delete(run.id);
        if (this.busyLines.get(run.line) === run.id) this.busyLines.delete(run.line);
        // The key's record says the outcome once, with its final state: retries replay it from there.
        if (run.ownsKey && run.call.key !== undefined) {
          const keyed: KeyedOperation = { id: run.id, request: run.request, state: e.state, outcome: e.outcome };
          this.c.store.retried(`put ${idempotencyKey(run.call.key)}`, () => this.w.kv.put(idempotencyKey(run.call.key as string), keyed), () => undefined);
        }
        this.w.trace(`op ${run.id} finished ${e.state} at ${now} ms`);
        if (e.state === 'needs-repair' && !e.outcome.ok && e.outcome.kind === 'failed-precondition') this.ledger.declinedRepairs.add(run.record.id);
        this.w.ledger.operationEnded(run.id, run.line, e.state, run.epochAtStart, now);
        run.reply(e.outcome);
        return;
    }
  }

  private command(run: OperationRun, e: Extract<OperationEffect, { type: 'send' }>): Control {
    const header = { requestId: e.requestId, tenant: TENANT, server: e.server, plan: run.line, epoch: e.epoch, checkpointId: run.record.id };
    switch (e.command) {
      case 'restore':
        return Object.assign(header, { type: 'restore' as const, apps: run.restores.get(e.server) ?? [] });
      case 'resume':
        return Object.assign(header, { type: 'resume' as const, apps: [] });
      case 'freeze':
        return Object.assign(header, { type: 'freeze' as const, deadlineMs: this.c.plan(run.record.plan).freezeDeadlineMs });
      case 'thaw':
        return Object.assign(header, { type: 'thaw' as const, afterRestore: e.afterRestore ?? false });
    }
  }

  /** Check first: the record, every part read back against its digest, every volume snapshot, every agent. */
  private validate(run: OperationRun): void {
    const fail = (kind: 'failed-precondition' | 'not-found', message: string): void => this.feed(run, { type: 'invalid', nowMs: this.w.agenda.now, kind, message });
    this.c.store.read(checkpointKey(run.record.id), (entry) => {
      const r = entry?.value as CheckpointRecord | undefined;
      if (r === undefined || r.state !== 'completed') return fail('not-found', `checkpoint ${run.record.id} is ${r?.state ?? 'gone'}`);
      const refs = r.parts.map((p) => p.ref);
      const next = (i: number): void => {
        if (i === refs.length) {
          const missingVolumes = liveVolumeRefs(r).filter((v) => !this.w.volumes.has(v));
          if (missingVolumes.length > 0) return fail('failed-precondition', `volume snapshots ${missingVolumes.join(', ')} are gone`);
          const absent = run.servers.filter((s) => this.w.agenda.now - (this.c.agentsSeen.get(s) ?? Number.NEGATIVE_INFINITY) > AGENT_PRESENT_MS);
          if (absent.length > 0) return fail('failed-precondition', `no live agent on ${absent.join(', ')}`);
          this.feed(run, { type: 'validated', nowMs: this.w.agenda.now });
          return;
        }
        const ref = refs[i] as { name: string; digest: string };
        this.c.store.retried(`info ${ref.name}`, () => this.w.objects.get(ref.name), (o) => (o?.digest === ref.digest ? next(i + 1) : fail('failed-precondition', `${ref.name} is missing or changed`)));
      };
      next(0);
    });
  }

  private revertVolumes(run: OperationRun): void {
    const f = this.w.faults();
    const fails = this.w.prng.next() < f.volumeFailureProbability;
    const incarnation = this.process.incarnation;
    if (run.call.key !== undefined) this.w.ledger.executed(run.call.key, `${run.call.kind} (volumes of checkpoint ${run.record.id} put back)`, this.w.agenda.now);
    this.w.agenda.after(1 + this.w.prng.int(f.volumeDelayMsMax), `volume backend ${fails ? 'fails to revert' : 'reverts'} volumes to ckpt ${run.record.id}`, () => {
      if (this.process.incarnation !== incarnation) return;
      const missing = liveVolumeRefs(run.record).filter((v) => !this.w.volumes.has(v));
      if (fails || missing.length > 0) this.feed(run, { type: 'volumes-failed', nowMs: this.w.agenda.now, detail: fails ? 'the volume backend failed' : `${missing.join(', ')} gone` });
      else this.feed(run, { type: 'volumes-done', nowMs: this.w.agenda.now });
    });
  }

  /** An agent's answer to one of the operations' commands (request ids `op:<operation>:<seq>:<server>`). */
  private answer(e: AgentEvent): void {
    const requestId = e.inReplyTo as string;
    const run = this.runs.get(requestId.split(':')[1] ?? '');
    if (run === undefined) return;
    const event = e.type === 'restored' || e.type === 'resumed' || e.type === 'frozen' || e.type === 'thawed' ? e.type : e.type === 'decline' ? 'declined' : undefined;
    if (event === undefined) return;
    this.feed(run, { type: 'answer', nowMs: this.w.agenda.now, server: e.server, requestId, event, ...(e.type === 'decline' ? { detail: `${e.reason}: ${e.detail}` } : {}) });
  }
}
