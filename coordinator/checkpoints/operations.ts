/**
 * Rollback and restore as the service offers them: the shell of the operation machine
 * (src/control/operation.ts). It answers what can be answered from the request alone at once
 * (unknown or unfinished checkpoint, a bad mapping), claims the idempotency key, then runs the
 * machine and carries out its effects: the checks (restore.ts), the safety checkpoint, the epoch,
 * the commands to the agents (resent under the same request id), the volume backend, timers, and
 * the operation's record in the store (coordinator/store/operations.ts). Every decision on order,
 * resends and how a failure ends is the machine's.
 */
import type { Logger } from 'pino';
import { NO_NEGATIVE_CONTROLS, type NegativeControls } from '../../src/control/negative-controls.js';
import { checkRestoreMapping } from '../../src/control/operation-check.js';
import { decideKeyed, type KeyedOperation } from '../../src/control/operation-key.js';
import {
  OperationMachine,
  planOpaqueSteps,
  type OpaqueSteps,
  type OperationEffect,
  type OperationInput,
  type OperationKind,
  type OperationLevel,
  type OperationOutcome,
  type TimerName,
} from '../../src/control/operation.js';
import type { CheckpointId } from '../../src/ids.js';
import { processId, type AgentEvent, type AppRestore } from '../../src/wire/index.js';
import type { RestoreRequest, TakeSnapshotRequest } from '../api.js';
import { fail, ok, type Result } from '../errors.js';
import type { AppRef, CheckpointRecord, ConsistencyLevel } from '../model.js';
import type { CoordinatorStore } from '../store/index.js';
import { errorText } from '../store/nats-errors.js';
import { operationEnded, OPERATIONS_KEPT_PER_PLAN, type OperationRecord } from '../store/operations.js';
import type { VolumeBackend } from '../volumes/backend.js';
import { isAllOpaque, opaqueGraph } from './plan-graph.js';
import { checkAgentsPresent, checkPartsReadable, epochLineOfTargets, identityMapping, restoreCommands, volumePairs, type RestoreDeps } from './restore.js';

export interface RollbackRequest {
  readonly checkpointId: CheckpointId;
  readonly skipSafetyCheckpoint: boolean;
  readonly idempotencyKey?: string;
}

export interface RollbackOutcome {
  readonly safetyCheckpointId: CheckpointId | 0;
  readonly epoch: number;
}

/** What operations need of the checkpoint service. */
export interface OperationsPort {
  take(request: TakeSnapshotRequest): Promise<Result<CheckpointRecord>>;
  waitFor(id: CheckpointId): Promise<CheckpointRecord>;
  get(id: CheckpointId): Promise<Result<CheckpointRecord>>;
  /** Cancels every checkpoint of the plan in flight. */
  cancelRunsOf(planId: string, detail: string): void;
  store(): CoordinatorStore;
  restoreDeps(): RestoreDeps;
  volumes(): VolumeBackend | undefined;
}

export interface OperationsOptions {
  /** How often a command an agent has not answered is sent again (same request id). */
  readonly resendIntervalMs: number;
  /** Only the fault simulator and tests set these. */
  readonly negativeControls: NegativeControls;
}

export const OPERATIONS_DEFAULTS: OperationsOptions = { resendIntervalMs: 1_000, negativeControls: NO_NEGATIVE_CONTROLS };

/** An operation ready to run: what the machine's effects need, decided from the request. */
interface Prepared {
  readonly kind: OperationKind;
  readonly level: OperationLevel;
  readonly checkpoint: CheckpointRecord;
  readonly title: string;
  /** The call in words, compared when an idempotency key is reused. */
  readonly request: string;
  readonly epochLine: string;
  /** The registered plan whose epoch moves: its checkpoints in flight are cancelled. */
  readonly cancelPlan?: string;
  readonly servers: readonly string[];
  /** Restore: where each of the checkpoint's apps goes (recorded, so that a coordinator taking over can send the restore again). */
  readonly mapping?: Readonly<Record<string, AppRef>>;
  readonly takeSafetyCheckpoint: boolean;
  readonly safetyLevel: ConsistencyLevel;
  readonly hasVolumes: boolean;
  /** App level, a checkpoint of an all-opaque plan: the steps its apps are quiesced, restored and resumed in. */
  readonly opaque?: OpaqueSteps;
  /** Everything that must hold before the plan changes; app level: what each server is sent. */
  validate(): Promise<Result<Map<string, AppRestore[]>>>;
  /** Crash level: put the volumes back, or onto the targets. */
  volumes(): Promise<Result<void>>;
}

export class Operations {
  /**
   * The operation this process runs on each epoch line: a second one on the same line is refused
   * while it runs, and a retry of it (same key) joins it.
   */
  private readonly busyLines = new Map<string, { readonly id: string; readonly planId: string; readonly key?: string; readonly request: string; readonly done: Promise<OperationOutcome> }>();
  /** Plans whose old operation records are being deleted. */
  private readonly pruning = new Set<string>();
  private readonly options: OperationsOptions;

  constructor(
    private readonly port: OperationsPort,
    options: Partial<OperationsOptions> = {},
  ) {
    this.options = { ...OPERATIONS_DEFAULTS, ...options };
    if (!Number.isSafeInteger(this.options.resendIntervalMs) || this.options.resendIntervalMs < 1) {
      throw new Error(`resendIntervalMs must be a positive integer, got ${this.options.resendIntervalMs}`);
    }
  }

  async rollback(request: RollbackRequest): Promise<Result<RollbackOutcome>> {
    const target = await this.port.get(request.checkpointId);
    if (!target.ok) return target;
    const cp = target.value;
    if (cp.state !== 'completed') {
      return fail('failed-precondition', `checkpoint ${cp.id} is ${cp.state}; only a completed checkpoint can be rolled back to`);
    }
    const deps = this.port.restoreDeps();
    const crash = cp.levelAchieved === 'crash';
    const title = `rollback to checkpoint ${cp.id}`;
    let servers = [...new Set(cp.parts.map((p) => p.server))].sort();
    let volumes: () => Promise<Result<void>> = async () => ok(undefined);
    if (crash) {
      const plan = await this.port.store().plans.get(cp.planId);
      if (!plan.ok) return plan.error.kind === 'not-found' ? fail('failed-precondition', `${title}: plan ${cp.planId} is not registered any more, and a crash-level rollback freezes its servers`) : plan;
      if (cp.volumes.length > 0 && !deps.volumes) return fail('failed-precondition', `${title}: the checkpoint has volume snapshots but this coordinator has no volume backend`);
      servers = [...plan.value.servers].sort();
      const backend = deps.volumes;
      volumes = async () => (backend ? backend.revert(cp.volumes, plan.value.volumes) : ok(undefined));
    }
    // A plan left in needs-repair by an earlier operation has no consistent present to keep.
    const repairing = await this.needsRepair(cp.planId);
    if (!repairing.ok) return repairing;
    if (repairing.value && !request.skipSafetyCheckpoint) {
      deps.logger.info({ checkpointId: cp.id, plan: cp.planId, tenant: cp.tenant }, 'the plan needs repair: its present is not consistent, so no safety checkpoint is taken');
    }
    const opaque = crash ? ok(undefined) : await this.opaqueSteps(cp, identityMapping(cp));
    if (!opaque.ok) return opaque;
    const prepared: Prepared = {
      kind: 'rollback',
      level: crash ? 'crash' : 'app',
      checkpoint: cp,
      title,
      request: `${title} ${request.skipSafetyCheckpoint ? 'without' : 'with'} a safety checkpoint`,
      epochLine: cp.planId,
      cancelPlan: cp.planId,
      servers,
      takeSafetyCheckpoint: !request.skipSafetyCheckpoint && !repairing.value,
      safetyLevel: crash ? 'crash' : 'app',
      hasVolumes: crash && cp.volumes.length > 0,
      ...(opaque.value !== undefined ? { opaque: opaque.value } : {}),
      validate: async () => {
        const present = checkAgentsPresent(cp.tenant, servers, deps.agents, title);
        if (!present.ok) return present;
        if (crash) return ok(new Map());
        const readable = await checkPartsReadable(cp, deps.objects);
        if (!readable.ok) return readable;
        return restoreCommands(cp, identityMapping(cp));
      },
      volumes,
    };
    const done = await this.execute(prepared, request.idempotencyKey);
    return done.ok ? ok({ safetyCheckpointId: done.value.safetyCheckpointId, epoch: done.value.epoch }) : done;
  }

  async restore(request: RestoreRequest): Promise<Result<{ epoch: number }>> {
    const source = await this.port.get(request.checkpointId);
    if (!source.ok) return source;
    const cp = source.value;
    if (cp.state !== 'completed') return fail('failed-precondition', `checkpoint ${cp.id} is ${cp.state}; only a completed checkpoint can be restored`);
    const crash = cp.levelAchieved === 'crash';
    const mapping = checkRestoreMapping(
      { id: cp.id, apps: cp.parts.map((p) => ({ server: p.server, app: p.app })), volumeServers: crash ? cp.volumes.map((v) => v.server) : [] },
      { servers: request.servers, apps: request.apps },
    );
    if (!mapping.ok) return fail(mapping.kind, mapping.message);
    const deps = this.port.restoreDeps();
    const targets = [...mapping.targets.values()].map((t) => processId(t.server, t.app));
    const line = await epochLineOfTargets(cp, targets, deps.store);
    if (!line.ok) return line;
    const title = `restore of checkpoint ${cp.id}`;
    let servers = [...new Set([...mapping.targets.values()].map((t) => t.server))].sort();
    let volumes: () => Promise<Result<void>> = async () => ok(undefined);
    if (crash) {
      const backend = deps.volumes;
      if (!backend) return fail('failed-precondition', `${title}: the checkpoint holds volume snapshots but this coordinator has no volume backend`);
      if (line.value.plan === undefined) {
        return fail('failed-precondition', `${title}: a crash-level checkpoint is restored onto the volumes of a registered plan: register a plan for the target servers, with their volumes, first`);
      }
      const target = await deps.store.plans.get(line.value.plan);
      if (!target.ok) return target;
      const pairs = volumePairs(cp, request.servers, target.value);
      if (!pairs.ok) return pairs;
      servers = [...new Set([...servers, ...pairs.value.map((p) => p.volume.server)])].sort();
      volumes = async () => {
        for (const p of pairs.value) {
          const r = await backend.restoreTo(p.snapshot, p.volume);
          if (!r.ok) return fail(r.error.kind, `volume ${p.snapshot.volumeId} onto ${p.volume.id} of ${p.volume.server}: ${r.error.message}`);
        }
        return ok(undefined);
      };
    }
    const opaque = crash ? ok(undefined) : await this.opaqueSteps(cp, mapping.targets);
    if (!opaque.ok) return opaque;
    const mapped = [...mapping.targets].map(([from, to]) => `${from}->${processId(to.server, to.app)}`).sort();
    const prepared: Prepared = {
      kind: 'restore',
      level: crash ? 'crash' : 'app',
      checkpoint: cp,
      title,
      request: `${title} onto ${mapped.join(', ')}`,
      epochLine: line.value.line,
      mapping: Object.fromEntries([...mapping.targets].map(([from, to]) => [from, { server: to.server, app: to.app }])),
      ...(line.value.plan !== undefined ? { cancelPlan: line.value.plan } : {}),
      servers,
      // A restore leaves the checkpoint's own servers alone: there is no present of theirs to keep.
      takeSafetyCheckpoint: false,
      safetyLevel: 'app',
      hasVolumes: crash && cp.volumes.length > 0,
      ...(opaque.value !== undefined ? { opaque: opaque.value } : {}),
      validate: async () => {
        const present = checkAgentsPresent(cp.tenant, servers, deps.agents, title);
        if (!present.ok) return present;
        if (crash) return ok(new Map());
        const readable = await checkPartsReadable(cp, deps.objects);
        if (!readable.ok) return readable;
        return restoreCommands(cp, mapping.targets);
      },
      volumes,
    };
    const done = await this.execute(prepared, request.idempotencyKey);
    return done.ok ? ok({ epoch: done.value.epoch }) : done;
  }

  /**
   * The steps of an app-level checkpoint of an all-opaque plan (cut by quiescing), over the plan's
   * opaque graph with each app put where `mapping` sends it; undefined for any other checkpoint.
   * FAILED_PRECONDITION when the plan is gone: without its channels there is no order to restore in.
   */
  private async opaqueSteps(cp: CheckpointRecord, mapping: ReadonlyMap<string, AppRef>): Promise<Result<OpaqueSteps | undefined>> {
    const plan = await this.port.store().plans.get(cp.planId);
    if (!plan.ok) return plan.error.kind === 'not-found' ? ok(undefined) : plan;
    if (!isAllOpaque(plan.value)) return ok(undefined);
    const g = opaqueGraph(plan.value);
    if (!g.ok) return fail('failed-precondition', g.message);
    const where = (p: string): string => {
      const to = mapping.get(p);
      return to ? processId(to.server, to.app) : p;
    };
    return ok(planOpaqueSteps({ processes: g.value.processes.map(where), channels: g.value.channels.map((c) => ({ ...c, from: where(c.from), to: where(c.to) })) }));
  }

  /** True when the plan's newest operation that did something ended in needs-repair. */
  private async needsRepair(planId: string): Promise<Result<boolean>> {
    const ops = await this.port.store().operations.list(planId);
    if (!ops.ok) return ops;
    const last = ops.value.find((o) => o.epochLine === planId && o.state !== 'refused');
    return ok(last?.state === 'needs-repair');
  }

  /** Claims the key (if any), then runs the operation or answers with the one that holds the key. */
  private async execute(p: Prepared, key: string | undefined): Promise<Result<Extract<OperationOutcome, { ok: true }>>> {
    // The machine needs a server to talk to; a checkpoint of no app and no volume has nothing to put back.
    if (p.servers.length === 0) return fail('failed-precondition', `${p.title} not started: the checkpoint holds no app and no volume to put back`);
    const store = this.port.store().operations;
    const nowMs = Date.now();
    const record: OperationRecord = {
      id: store.newId(p.kind, key),
      kind: p.kind,
      level: p.level,
      planId: p.checkpoint.planId,
      tenant: p.checkpoint.tenant,
      checkpointId: p.checkpoint.id,
      epochLine: p.epochLine,
      request: p.request,
      servers: p.servers,
      ...(p.mapping !== undefined ? { mapping: p.mapping } : {}),
      ...(key !== undefined ? { idempotencyKey: key } : {}),
      state: 'validating',
      detail: 'accepted',
      safetyCheckpointId: 0,
      createdAtUnixMs: nowMs,
      updatedAtUnixMs: nowMs,
    };
    const fresh = (): OperationRecord => ({ ...record, id: store.newId(p.kind, undefined) });
    let runAs = record;
    if (key !== undefined) {
      const found = await store.get(record.planId, record.id);
      if (!found.ok) return found;
      if (found.value !== undefined) {
        const answer = await this.answerKeyed(key, p, found.value);
        if (answer !== undefined) return outcomeResult(answer);
        runAs = fresh();
      }
    }
    await this.releaseIfEnded(p.epochLine);
    // From this check to the busy mark nothing awaits: two calls in this process cannot both pass.
    const busy = this.busyLines.get(p.epochLine);
    if (busy !== undefined) {
      if (key !== undefined && busy.key === key) {
        const answer = await this.answerKeyed(key, p, { id: busy.id, request: busy.request, state: 'validating' });
        if (answer !== undefined) return outcomeResult(answer);
      }
      return fail('failed-precondition', `${p.title} not started: operation ${busy.id} (${busy.request}) on the same plan is still running; wait for it to end`);
    }
    let release: (o: OperationOutcome) => void = () => undefined;
    const done = new Promise<OperationOutcome>((resolve) => {
      release = resolve;
    });
    this.busyLines.set(p.epochLine, { id: runAs.id, planId: runAs.planId, ...(runAs === record && key !== undefined ? { key } : {}), request: p.request, done });
    let outcome: OperationOutcome = { ok: false, kind: 'internal', message: `${p.title} ended without an outcome` };
    let ran = false;
    try {
      if (runAs === record && key !== undefined) {
        const claimed = await store.claim(runAs);
        if (!claimed.ok) return claimed;
        if (!claimed.value.created) {
          // Another coordinator claimed the key between the look-up and the claim.
          const answer = await this.answerKeyed(key, p, claimed.value.existing);
          if (answer !== undefined) {
            outcome = answer;
            return outcomeResult(answer);
          }
          runAs = fresh();
        }
      }
      if (runAs !== record || key === undefined) {
        const created = await store.put(runAs);
        if (!created.ok) return created;
      }
      ran = true;
      outcome = await new OperationRun(p, runAs, this.port, this.options).start();
      return outcomeResult(outcome);
    } finally {
      if (this.busyLines.get(p.epochLine)?.id === runAs.id || this.busyLines.get(p.epochLine)?.id === record.id) this.busyLines.delete(p.epochLine);
      release(outcome);
      // After the answer and the release, not before: a pruning that did not return (its key listing,
      // most likely) held the call unanswered and the plan refusing every rollback (F10).
      if (ran) this.prune(runAs.planId);
    }
  }

  /**
   * Drops the plan's busy mark when the operation's own record says it ended: the record, not this
   * process's memory, says whether an operation runs, so a run whose end was stored but whose
   * bookkeeping here never finished cannot refuse every later operation of the plan (F10).
   */
  private async releaseIfEnded(line: string): Promise<void> {
    const busy = this.busyLines.get(line);
    if (busy === undefined) return;
    const stored = await this.port.store().operations.get(busy.planId, busy.id);
    if (!stored.ok || stored.value === undefined || !operationEnded(stored.value)) return;
    if (this.busyLines.get(line) !== busy) return;
    this.busyLines.delete(line);
    this.port.restoreDeps().logger.warn({ operation: busy.id, plan: busy.planId, state: stored.value.state }, 'operation ended by its record but still marked running here: mark dropped');
  }

  /** Deletes the plan's oldest ended operations, one pruning of a plan at a time, in the background. */
  private prune(planId: string): void {
    if (this.pruning.has(planId)) return;
    this.pruning.add(planId);
    void this.port
      .store()
      .operations.prune(planId, OPERATIONS_KEPT_PER_PLAN)
      .then((pruned) => {
        if (!pruned.ok) this.port.restoreDeps().logger.warn({ plan: planId, error: pruned.error.message }, 'old operation records not deleted; tried again after the next operation');
      })
      .finally(() => this.pruning.delete(planId));
  }

  /** What a call finds under its key: the outcome to answer with, or undefined to run (negative control only). */
  private async answerKeyed(key: string, p: Prepared, existing: KeyedOperation): Promise<OperationOutcome | undefined> {
    const decision = decideKeyed(key, p.request, existing, this.options.negativeControls);
    switch (decision.type) {
      case 'replay':
        return decision.outcome;
      case 'join':
        return this.join(p.checkpoint.planId, existing);
      case 'conflict':
        return { ok: false, kind: 'invalid-argument', message: decision.message };
      case 'run':
        return undefined;
    }
  }

  /**
   * The outcome of an operation that holds a key: awaited here when this process runs it, else read
   * from the store until it ends (another coordinator runs it), for as long as its phases may take.
   */
  private async join(planId: string, existing: KeyedOperation): Promise<OperationOutcome> {
    const local = [...this.busyLines.values()].find((b) => b.id === existing.id);
    if (local) return local.done;
    const deps = this.port.restoreDeps();
    const untilMs = Date.now() + 8 * deps.timeoutMs;
    while (Date.now() < untilMs) {
      const r = await this.port.store().operations.get(planId, existing.id);
      if (r.ok && r.value !== undefined && operationEnded(r.value) && r.value.outcome) return r.value.outcome;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    return { ok: false, kind: 'unavailable', message: `operation ${existing.id} (${existing.request}) is still running; call again with the same key for its result` };
  }
}

function outcomeResult(o: OperationOutcome): Result<Extract<OperationOutcome, { ok: true }>> {
  return o.ok ? ok(o) : fail(o.kind, o.message);
}

/** How often an operation's record write is tried, and the pause before the next try (times the attempt). */
const RECORD_WRITE_ATTEMPTS_MAX = 4;
const RECORD_WRITE_RETRY_MS = 250;

/** What running an operation needs of the checkpoint service. */
type RunPort = Pick<OperationsPort, 'take' | 'waitFor' | 'cancelRunsOf' | 'restoreDeps'>;

/**
 * Finishes an operation a stopped coordinator left (coordinator/checkpoints/recover-operations.ts):
 * the machine goes on from `input.phase` under the operation's old request ids. `commands` is what
 * each server is sent to restore (app level, phase `restoring`). Such a machine never validates,
 * takes a safety checkpoint, sets the epoch or touches volumes: those effects throw.
 */
export function takeOverOperation(
  record: OperationRecord,
  checkpoint: CheckpointRecord,
  servers: readonly string[],
  commands: ReadonlyMap<string, AppRestore[]>,
  input: Extract<OperationInput, { type: 'recover' }>,
  deps: RestoreDeps,
  options: Partial<OperationsOptions> = {},
): Promise<OperationOutcome> {
  const notAfterTakeOver = (what: string) => (): never => {
    throw new Error(`operation ${record.id} taken over in ${input.phase} asked to ${what}`);
  };
  const p: Prepared = {
    kind: record.kind,
    level: record.level,
    checkpoint,
    title: `${record.kind === 'rollback' ? 'rollback to' : 'restore of'} checkpoint ${record.checkpointId}`,
    request: record.request,
    epochLine: record.epochLine,
    servers,
    takeSafetyCheckpoint: false,
    safetyLevel: record.level,
    hasVolumes: false,
    validate: notAfterTakeOver('validate'),
    volumes: notAfterTakeOver('put volumes back'),
  };
  const port: RunPort = {
    take: notAfterTakeOver('take a safety checkpoint'),
    waitFor: notAfterTakeOver('wait for a safety checkpoint'),
    cancelRunsOf: notAfterTakeOver('cancel checkpoints'),
    restoreDeps: () => deps,
  };
  const run = new OperationRun(p, record, port, { ...OPERATIONS_DEFAULTS, ...options });
  run.setCommands(commands);
  return run.start(input);
}

/** One operation under way: feeds the machine and carries out its effects. */
class OperationRun {
  private record: OperationRecord;
  private readonly machine: OperationMachine;
  private readonly deps: RestoreDeps;
  private readonly log: Logger;
  private readonly timers = new Map<TimerName, NodeJS.Timeout>();
  /** Record writes, one after another, so the store never goes back to an older state. */
  private writes: Promise<unknown> = Promise.resolve();
  private stopListening: () => void = () => undefined;
  private commands = new Map<string, AppRestore[]>();
  /** Opaque: per quiesce request, the apps that have not reported `quiesced` yet. */
  private readonly quiescing = new Map<string, Set<string>>();
  private resolve: (o: OperationOutcome) => void = () => undefined;

  constructor(
    private readonly p: Prepared,
    record: OperationRecord,
    private readonly port: RunPort,
    options: OperationsOptions,
  ) {
    this.record = record;
    this.deps = port.restoreDeps();
    this.log = this.deps.logger.child({ operation: record.id, kind: p.kind, checkpointId: p.checkpoint.id, plan: p.checkpoint.planId, tenant: p.checkpoint.tenant });
    this.machine = new OperationMachine({
      kind: p.kind,
      level: p.level,
      id: record.id,
      title: p.title,
      servers: p.servers,
      takeSafetyCheckpoint: p.takeSafetyCheckpoint,
      hasVolumes: p.hasVolumes,
      ...(p.opaque !== undefined ? { opaque: p.opaque } : {}),
      phaseTimeoutMs: this.deps.timeoutMs,
      resendIntervalMs: options.resendIntervalMs,
      negativeControls: options.negativeControls,
    });
  }

  setCommands(commands: ReadonlyMap<string, AppRestore[]>): void {
    this.commands = new Map(commands);
  }

  /** Runs the operation from `first`: `start`, or `recover` for one taken over. */
  start(first: OperationInput = { type: 'start', nowMs: Date.now() }): Promise<OperationOutcome> {
    const done = new Promise<OperationOutcome>((resolve) => {
      this.resolve = resolve;
    });
    const prefix = `op:${this.record.id}:`;
    this.stopListening = this.deps.bus.onEvents((e) => {
      if (e.inReplyTo?.startsWith(prefix) && e.tenant === this.p.checkpoint.tenant) this.onAnswer(e);
    });
    this.feed(first);
    return done;
  }

  private onAnswer(e: AgentEvent): void {
    const requestId = e.inReplyTo as string;
    const nowMs = Date.now();
    if (e.type === 'restored' || e.type === 'resumed' || e.type === 'frozen' || e.type === 'thawed') {
      this.feed({ type: 'answer', nowMs, server: e.server, requestId, event: e.type });
    } else if (e.type === 'quiesced') {
      // The agent answers a quiesce once per app; the machine waits for the server.
      const left = this.quiescing.get(requestId);
      if (left === undefined || !left.delete(e.app) || left.size > 0) return;
      this.feed({ type: 'answer', nowMs, server: e.server, requestId, event: 'quiesced' });
    } else if (e.type === 'decline') {
      this.feed({ type: 'answer', nowMs, server: e.server, requestId, event: 'declined', detail: `${e.reason}: ${e.detail}` });
    }
  }

  private feed(input: OperationInput): void {
    const r = this.machine.step(input);
    if (r.rejected) this.log.debug({ input: input.type, reason: r.rejected.reason, detail: r.rejected.detail }, 'operation input rejected');
    for (const e of r.effects) this.carryOut(e);
  }

  private carryOut(e: OperationEffect): void {
    const cp = this.p.checkpoint;
    switch (e.type) {
      case 'persist':
        this.record = { ...this.record, state: e.state, detail: e.detail, safetyCheckpointId: e.safetyCheckpointId, updatedAtUnixMs: e.atMs, ...(e.epoch !== undefined ? { epoch: e.epoch } : {}) };
        this.log.info({ state: e.state, epoch: e.epoch }, e.detail);
        this.write(this.record);
        return;
      case 'validate':
        this.after(
          () => this.p.validate(),
          (r) => {
            if (r.ok) this.commands = r.value;
            return r.ok ? { type: 'validated', nowMs: Date.now() } : { type: 'invalid', nowMs: Date.now(), kind: invalidKind(r.error.kind), message: r.error.message };
          },
          (message) => ({ type: 'invalid', nowMs: Date.now(), kind: 'internal', message: `the checks failed: ${message}` }),
        );
        return;
      case 'take-safety-checkpoint':
        this.after(
          () => this.safetyCheckpoint(),
          (r) => (r.ok ? { type: 'safety-completed', nowMs: Date.now(), checkpointId: r.value } : { type: 'safety-failed', nowMs: Date.now(), detail: r.error.message }),
          (message) => ({ type: 'safety-failed', nowMs: Date.now(), detail: message }),
        );
        return;
      case 'cancel-checkpoints':
        if (this.p.cancelPlan !== undefined) this.port.cancelRunsOf(this.p.cancelPlan, e.detail);
        return;
      case 'set-epoch': {
        // The record must say `setting-epoch` before the epoch moves (the machine persists first):
        // a coordinator that dies in between leaves a record that tells the next one what may have
        // happened, not a `validating` it would end as "nothing was changed" (VOPR operation-record-behind).
        const epochs = this.deps.store.epochs;
        this.after(
          () => this.writes.then(() => (e.bump ? epochs.bump(this.p.epochLine) : epochs.get(this.p.epochLine))),
          (r) => (r.ok ? { type: 'epoch-set', nowMs: Date.now(), epoch: r.value } : { type: 'epoch-failed', nowMs: Date.now(), detail: r.error.message }),
          (message) => ({ type: 'epoch-failed', nowMs: Date.now(), detail: message }),
        );
        return;
      }
      case 'send': {
        const header = { tenant: cp.tenant, server: e.server, plan: this.p.epochLine, epoch: e.epoch, checkpointId: cp.id };
        if (e.resend) this.log.debug({ server: e.server, command: e.command, requestId: e.requestId }, 'command resent');
        switch (e.command) {
          case 'restore':
            this.deps.bus.send({ ...header, type: 'restore', apps: this.commands.get(e.server) ?? [] }, e.requestId);
            return;
          case 'resume':
            this.deps.bus.send({ ...header, type: 'resume', apps: [] }, e.requestId);
            return;
          case 'freeze':
            this.deps.bus.send({ ...header, type: 'freeze', deadlineMs: cp.options.freezeDeadlineMs }, e.requestId);
            return;
          case 'thaw':
            this.deps.bus.send({ ...header, type: 'thaw', afterRestore: e.afterRestore ?? false }, e.requestId);
            return;
        }
        return;
      }
      case 'send-apps': {
        const header = { tenant: cp.tenant, server: e.server, plan: this.p.epochLine, epoch: e.epoch, checkpointId: cp.id };
        if (e.resend) this.log.debug({ server: e.server, command: e.command, apps: e.apps, requestId: e.requestId }, 'command resent');
        switch (e.command) {
          case 'quiesce':
            if (!e.resend) this.quiescing.set(e.requestId, new Set(e.apps));
            this.deps.bus.send({ ...header, type: 'quiesce', apps: e.apps, drainTo: {} }, e.requestId);
            return;
          case 'restore': {
            const all = this.commands.get(e.server) ?? [];
            const apps = e.apps.flatMap((app) => all.filter((a) => a.app === app));
            this.deps.bus.send({ ...header, type: 'restore', apps }, e.requestId);
            return;
          }
          case 'resume':
            this.deps.bus.send({ ...header, type: 'resume', apps: e.apps }, e.requestId);
            return;
        }
        return;
      }
      case 'volumes':
        // As for the epoch: the record says the volumes are being put back before they are.
        this.after(
          () => this.writes.then(() => this.p.volumes()),
          (r) => (r.ok ? { type: 'volumes-done', nowMs: Date.now() } : { type: 'volumes-failed', nowMs: Date.now(), detail: r.error.message }),
          (message) => ({ type: 'volumes-failed', nowMs: Date.now(), detail: message }),
        );
        return;
      case 'start-timer': {
        clearTimeout(this.timers.get(e.name));
        const timer = setTimeout(() => this.feed({ type: 'timer-fired', nowMs: Date.now(), name: e.name, seq: e.seq }), e.ms);
        timer.unref();
        this.timers.set(e.name, timer);
        return;
      }
      case 'cancel-timer':
        clearTimeout(this.timers.get(e.name));
        this.timers.delete(e.name);
        return;
      case 'finished': {
        for (const t of this.timers.values()) clearTimeout(t);
        this.timers.clear();
        this.stopListening();
        this.record = { ...this.record, outcome: e.outcome };
        this.write(this.record);
        if (e.state !== 'completed') this.log.warn({ state: e.state }, e.outcome.ok ? 'operation ended' : e.outcome.message);
        // The caller is answered once the end is stored, or once storing it was given up (write()).
        void this.writes.then(() => this.resolve(e.outcome));
        return;
      }
    }
  }

  private write(record: OperationRecord): void {
    this.writes = this.writes.then(async () => {
      // A record left behind its operation misleads the coordinator that takes it over after a
      // restart (recover-operations.ts), so a failed write is tried again a few times.
      for (let attempt = 1; ; attempt += 1) {
        // A throw must not break the chain: the caller's answer waits on it (finished).
        const r = await this.deps.store.operations.put(record).catch((error: unknown) => fail('internal', errorText(error)));
        if (r.ok) return;
        // The operation goes on: its record is for the operator and for retries, not for its own steps.
        if (attempt === RECORD_WRITE_ATTEMPTS_MAX) {
          this.log.warn({ state: record.state, error: r.error.message }, 'operation record not written');
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, RECORD_WRITE_RETRY_MS * attempt));
      }
    });
  }

  /**
   * Runs `work` and feeds the input it ends with; a throw is fed as `failed`, not lost: an input
   * never fed leaves the operation, and its plan's busy mark, in place for ever.
   */
  private after<T>(work: () => Promise<T>, next: (value: T) => OperationInput, failed: (message: string) => OperationInput): void {
    void Promise.resolve()
      .then(work)
      .then(next, (error: unknown) => failed(errorText(error)))
      .then((input) => this.feed(input));
  }

  private async safetyCheckpoint(): Promise<Result<CheckpointId>> {
    const cp = this.p.checkpoint;
    const taken = await this.port.take({ planId: cp.planId, level: this.p.safetyLevel, options: {}, safety: true });
    if (!taken.ok) return fail(taken.error.kind, `it could not start: ${taken.error.message}`);
    const final = await this.port.waitFor(taken.value.id);
    if (final.state !== 'completed') return fail('failed-precondition', `checkpoint ${final.id} ${final.state}: ${final.failureDetail ?? ''}`);
    return ok(final.id);
  }
}

/** The kinds a refusal keeps; anything else the checks can return is a store that did not answer. */
function invalidKind(kind: string): 'invalid-argument' | 'not-found' | 'failed-precondition' | 'unavailable' | 'internal' {
  return kind === 'invalid-argument' || kind === 'not-found' || kind === 'failed-precondition' || kind === 'internal' ? kind : 'unavailable';
}
