/**
 * Rollback and restore: the real operation machine (src/control/operation.ts), its idempotency
 * decision (operation-key.ts) and mapping check (operation-check.ts) in a shell that does what
 * coordinator/checkpoints/operations.ts does: check the call, claim the key, one operation per epoch
 * line at a time, then carry out the effects against the simulated stores and agents. At start-up
 * a restarted coordinator takes over the operations its predecessor left under way, with the real
 * decision (src/control/operation-recovery.ts), as coordinator/checkpoints/recover-operations.ts.
 */
import { checkRestoreMapping } from '../../src/control/operation-check.js';
import { decideKeyed, type KeyedOperation } from '../../src/control/operation-key.js';
import { decideOperationRecovery } from '../../src/control/operation-recovery.js';
import { OPERATION_FINAL_STATES, OperationMachine, type OperationEffect, type OperationInput, type OperationOutcome, type OperationState } from '../../src/control/operation.js';
import type { AgentEvent, AppRestore, Control } from '../../src/wire/index.js';
import type { CoordinatorHost, CoordinatorWorld } from './coordinator-host.js';
import { SimProcess } from './process.js';
import { checkpointKey, epochKey, idempotencyKey, liveVolumeRefs, operationKey, restoreCommands, type CheckpointRecord, type OperationRecord } from './records.js';
import { TENANT } from './topology.js';

export const OPERATION_PHASE_TIMEOUT_MS = 4_000;
export const OPERATION_RESEND_MS = 250;
/** An agent silent for longer is not present (a rollback to its server is refused at once). */
export const AGENT_PRESENT_MS = 3_000;
/** An operation's record writes: one at a time, in order, each tried this many times (operations.ts RECORD_WRITE_ATTEMPTS_MAX). */
export const RECORD_WRITE_ATTEMPTS_MAX = 4;
export const RECORD_WRITE_RETRY_MS = 250;

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
  /** Per operation, its epoch line's epoch when it started (kept by the world across coordinator restarts). */
  readonly epochAtStart: Map<string, number>;
  /** Per operation, the newest state its machine persisted (what its record should say, whatever landed; for the trace). */
  readonly persisted: Map<string, OperationState>;
  /** Operations that asked the volume backend to put volumes back. */
  readonly volumesPutBack: Set<string>;
  /** Checkpoints of operations that the next coordinator's recovery ended in needs-repair (the known finding paused-after-recovered-needs-repair). */
  readonly recoveredRepairs: Set<number>;
}

class OperationRun {
  readonly machine: OperationMachine;
  /** The record as the operation last said it; writes go one at a time, in order. */
  current: OperationRecord;
  readonly writes: OperationRecord[] = [];
  writing = false;
  /** Run once no record write is in flight or queued. */
  readonly drained: (() => void)[] = [];
  constructor(
    readonly id: string,
    readonly call: OperationCall,
    readonly record: CheckpointRecord,
    initial: OperationRecord,
    readonly restores: ReadonlyMap<string, AppRestore[]>,
    readonly incarnation: number,
    readonly ownsKey: boolean,
    readonly reply: (o: OperationOutcome) => void,
    /** The epoch line's epoch when the operation started (the world's view). */
    readonly epochAtStart: number,
    negativeControls: CoordinatorWorld['negativeControls'],
    takeSafety: boolean,
    /** False for an operation taken over: its volumes are never put back again (operations.ts takeOverOperation). */
    volumes: boolean,
  ) {
    this.current = initial;
    this.machine = new OperationMachine({
      kind: call.kind,
      level: record.level === 'crash' ? 'crash' : 'app',
      id,
      title: `${call.kind} to checkpoint ${record.id}`,
      servers: initial.servers,
      takeSafetyCheckpoint: takeSafety,
      hasVolumes: volumes && record.level === 'crash' && record.volumes.length > 0,
      phaseTimeoutMs: OPERATION_PHASE_TIMEOUT_MS,
      resendIntervalMs: OPERATION_RESEND_MS,
      negativeControls,
    });
  }

  get line(): string {
    return this.current.line;
  }

  get servers(): readonly string[] {
    return this.current.servers;
  }

  get request(): string {
    return this.current.request;
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
    c.recoverOperations = (done) => this.recoverLeft(done);
  }

  private get process(): SimProcess {
    return this.c.process;
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
      let mapping: OperationRecord['mapping'];
      if (call.kind === 'rollback') {
        servers = record.level === 'crash' ? [...plan.servers] : [...new Set(record.parts.map((p) => p.server))].sort();
        line = record.plan;
        mapping = Object.fromEntries(record.parts.map((p) => [`${p.server}/${p.app}`, { server: p.server, app: p.app }]));
      } else {
        if (record.level !== 'app') return refuse('failed-precondition', 'this world restores app-level checkpoints only');
        const target = call.target as string;
        const apps = record.parts.map((p, i) => ({ source: { server: p.server, app: p.app }, target: { server: target, app: `a${i + 1}` } }));
        const check = checkRestoreMapping({ id: record.id, apps: record.parts.map((p) => ({ server: p.server, app: p.app })), volumeServers: [] }, { servers: {}, apps });
        if (!check.ok) return refuse(check.kind, check.message);
        servers = [target];
        line = `restore-${record.plan}-${target}`;
        mapping = Object.fromEntries(apps.map((a) => [`${a.source.server}/${a.source.app}`, a.target]));
      }
      const restores = restoreCommands(record, mapping) ?? new Map<string, AppRestore[]>();
      const request = `${call.kind} ${record.id}${call.target !== undefined ? ` into ${call.target}` : ''} ${call.skipSafety ? 'without' : 'with'} a safety checkpoint`;
      const id = `${this.c.owner}-op${++this.serial}`;
      const start = (ownsKey: boolean, runId: string): void => {
        const initial: OperationRecord = { id: runId, kind: call.kind, level: record.level === 'crash' ? 'crash' : 'app', checkpointId: record.id, line, request, servers, mapping, ...(ownsKey && call.key !== undefined ? { key: call.key } : {}), state: 'validating', detail: 'accepted', safety: 0 };
        this.start(call, record, initial, restores, ownsKey, reply);
      };
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

  private start(call: OperationCall, record: CheckpointRecord, initial: OperationRecord, restores: ReadonlyMap<string, AppRestore[]>, ownsKey: boolean, reply: (o: OperationOutcome) => void): void {
    const { id, line, request } = initial;
    const busy = this.busyLines.get(line);
    if (busy !== undefined) {
      reply({ ok: false, kind: 'failed-precondition', message: `operation ${busy} on ${line} is still running` });
      return;
    }
    // A plan left in needs-repair has no consistent present to keep (as the coordinator decides).
    const takeSafety = call.kind === 'rollback' && !call.skipSafety && this.ledger.lastState.get(line) !== 'needs-repair';
    const epochAtStart = this.w.ledger.epochOf(line);
    this.ledger.epochAtStart.set(id, epochAtStart);
    const run = new OperationRun(id, call, record, initial, restores, this.process.incarnation, ownsKey, reply, epochAtStart, this.w.negativeControls, takeSafety, true);
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
        run.current = Object.assign({}, run.current, { state: e.state, detail: e.detail, safety: e.safetyCheckpointId }, e.epoch !== undefined ? { epoch: e.epoch } : {});
        this.write(run, run.current);
        this.ledger.persisted.set(run.id, e.state);
        this.noteState(run.line, e.state);
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
        // As operations.ts: only once the record writes before it settled (the record says setting-epoch before the epoch moves).
        this.whenWritten(run, () => {
          if (!e.bump) {
            this.c.store.read(epochKey(run.line), (entry) => this.feed(run, { type: 'epoch-set', nowMs: this.w.agenda.now, epoch: (entry?.value as number | undefined) ?? 0 }));
            return;
          }
          this.c.store.increment(epochKey(run.line), (epoch) => {
            if (run.call.key !== undefined) this.w.ledger.executed(run.call.key, `${run.call.kind} (epoch of ${run.line} bumped to ${epoch})`, this.w.agenda.now);
            this.feed(run, { type: 'epoch-set', nowMs: this.w.agenda.now, epoch });
          });
        });
        return;
      case 'send':
        this.w.controls.send('coordinator', e.server, this.command(run, e));
        return;
      case 'volumes':
        // As for the epoch: the record says reverting before the volumes are put back.
        this.whenWritten(run, () => this.revertVolumes(run));
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
        if (run.ownsKey && run.call.key !== undefined) this.writeKeyed(run.call.key, { id: run.id, request: run.request, state: e.state, outcome: e.outcome });
        run.current = Object.assign({}, run.current, { outcome: e.outcome });
        this.write(run, run.current);
        this.w.trace(`op ${run.id} finished ${e.state} at ${now} ms`);
        if (e.state === 'needs-repair' && !e.outcome.ok && e.outcome.kind === 'failed-precondition') this.ledger.declinedRepairs.add(run.record.id);
        this.w.ledger.operationEnded(run.id, run.line, e.state, run.epochAtStart, now, this.ledger.volumesPutBack.has(run.id));
        // The call is answered once the record says how it ended.
        this.whenWritten(run, () => run.reply(e.outcome));
        return;
    }
  }

  /** Only operations that may have moved the epoch count: a later one refused or failed before it changed anything leaves the plan as it found it, repair still due. */
  private noteState(line: string, state: OperationState): void {
    if (!['validating', 'safety-checkpoint', 'refused', 'failed'].includes(state)) this.ledger.lastState.set(line, state);
  }

  private writeKeyed(key: string, keyed: KeyedOperation, done: () => void = () => undefined): void {
    this.c.store.retried(`put ${idempotencyKey(key)}`, () => this.w.kv.put(idempotencyKey(key), keyed), done);
  }

  /**
   * The record written as the operation says it, one write at a time and in order, each tried up to
   * RECORD_WRITE_ATTEMPTS_MAX times (operations.ts `write`): the operation goes on meanwhile.
   */
  private write(run: OperationRun, value: OperationRecord): void {
    run.writes.push(value);
    if (!run.writing) this.writeNext(run);
  }

  private writeNext(run: OperationRun): void {
    const value = run.writes.shift();
    if (value === undefined) {
      run.writing = false;
      for (const fn of run.drained.splice(0)) fn();
      return;
    }
    run.writing = true;
    const attempt = (n: number): void =>
      this.c.store.put(operationKey(run.id), value, (ok) => {
        if (ok || n === RECORD_WRITE_ATTEMPTS_MAX) this.writeNext(run);
        else this.process.later(RECORD_WRITE_RETRY_MS * n, '', () => attempt(n + 1));
      });
    attempt(1);
  }

  private whenWritten(run: OperationRun, fn: () => void): void {
    if (run.writing) run.drained.push(fn);
    else fn();
  }

  // ---- start-up: the operations a stopped coordinator left under way ---------------------------

  /**
   * As coordinator/checkpoints/recover-operations.ts: every operation record whose state is not final
   * is read, with its checkpoint and its line's epoch; the decision ends its record at once, or the
   * machine takes it over from its phase (under its old request ids). `done` once every one ended.
   */
  private recoverLeft(done: () => void): void {
    this.c.store.retried(
      'list operations',
      () => this.w.kv.keys('op.').map((k) => this.w.kv.get(k)?.value as OperationRecord),
      (records) => {
        const left = records.filter((r) => !OPERATION_FINAL_STATES.includes(r.state));
        let open = left.length;
        if (open === 0) return done();
        const ended = (): void => {
          open -= 1;
          if (open === 0) done();
        };
        for (const r of left) this.recoverOne(r, ended);
      },
    );
  }

  private recoverOne(left: OperationRecord, done: () => void): void {
    this.c.store.read(checkpointKey(left.checkpointId), (entry) => {
      const record = entry?.value as CheckpointRecord | undefined;
      this.c.store.read(epochKey(left.line), (e) => {
        const lineEpoch = (e?.value as number | undefined) ?? 0;
        const restores = record !== undefined && left.level === 'app' ? restoreCommands(record, left.mapping) : undefined;
        const decision = decideOperationRecovery({
          id: left.id,
          kind: left.kind,
          level: left.level,
          checkpointId: left.checkpointId,
          state: left.state,
          ...(left.epoch !== undefined ? { epoch: left.epoch } : {}),
          lineEpoch,
          serversKnown: left.servers.length > 0 && record !== undefined,
          restoreCommandsKnown: restores !== undefined,
        });
        const epochAtStart = this.ledger.epochAtStart.get(left.id) ?? lineEpoch;
        // The record says less than its operation did (was VOPR's operation-record-behind): worth a line of the trace.
        if (this.ledger.persisted.get(left.id) !== left.state) this.w.trace(`recovery: op ${left.id}'s record says ${left.state}, its operation had reached ${this.ledger.persisted.get(left.id) ?? '-'}`);
        switch (decision.type) {
          case 'none':
            return done();
          case 'end': {
            this.w.trace(`recovery: op ${left.id} (${left.state}) ended ${decision.state}: ${decision.detail}`);
            const final: OperationRecord = Object.assign({}, left, { state: decision.state, detail: decision.detail, outcome: decision.outcome });
            // The service keeps the key's outcome in the operation's record; here it has a record of its own, written first.
            const write = (): void =>
              this.c.store.put(operationKey(left.id), final, (ok) => {
                if (!ok) {
                  this.w.trace(`recovery: op ${left.id} not ended: its record could not be written`);
                  return done();
                }
                this.ledger.persisted.set(left.id, decision.state);
                if (decision.state === 'needs-repair') this.ledger.recoveredRepairs.add(left.checkpointId);
                this.noteState(left.line, decision.state);
                this.w.ledger.operationEnded(left.id, left.line, decision.state, epochAtStart, this.w.agenda.now, this.ledger.volumesPutBack.has(left.id));
                done();
              });
            if (left.key !== undefined) this.writeKeyed(left.key, { id: left.id, request: left.request, state: decision.state, outcome: decision.outcome }, write);
            else write();
            return;
          }
          case 'redo': {
            if (record === undefined) throw new Error(`operation ${left.id}: ${decision.phase} redone without its checkpoint`);
            const call: OperationCall = Object.assign(
              { kind: left.kind, checkpointId: left.checkpointId, skipSafety: true },
              left.key !== undefined ? { key: left.key } : {},
              left.kind === 'restore' ? { target: left.servers[0] as string } : {},
            );
            const run = new OperationRun(left.id, call, record, left, restores ?? new Map(), this.process.incarnation, left.key !== undefined, () => done(), epochAtStart, this.w.negativeControls, false, false);
            this.runs.set(left.id, run);
            this.busyLines.set(left.line, left.id);
            this.w.trace(`recovery: op ${left.id} (${left.state}) taken over: ${decision.phase} again`);
            this.feed(run, {
              type: 'recover',
              nowMs: this.w.agenda.now,
              phase: decision.phase,
              epoch: decision.epoch,
              safetyCheckpointId: left.safety,
              ...(decision.thenState !== undefined ? { thenState: decision.thenState } : {}),
              ...(decision.thenDetail !== undefined ? { thenDetail: decision.thenDetail } : {}),
            });
            return;
          }
        }
      });
    });
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
    this.ledger.volumesPutBack.add(run.id);
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
