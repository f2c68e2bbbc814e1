/**
 * A typed client of the Coordinator service for snapctl and tests: model values in, views out,
 * every failure a value carrying the gRPC status code and the coordinator's message (nothing
 * throws for an RPC error).
 */
import { credentials as grpcCredentials, Metadata, status as GrpcStatus, type ChannelCredentials, type Client, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import type { CheckpointId } from '../../src/ids.js';
import type { BeginCheckpointRequest, DeleteOutcome, FinishCheckpointRequest, FromSite, Page, RestoreRequest, TakeSnapshotRequest, VerifyReport } from '../api.js';
import type { Result as CoreResult } from '../../src/result.js';
import type { Result } from '../errors.js';
import type { AgentInfo, CheckpointCopy, Plan, PlanInput } from '../model.js';
import type { CheckpointView } from '../checkpoint-view.js';
import {
  agentFromProto,
  checkpointFromProto,
  deleteOutcomeFromProto,
  finishCheckpointRequestToProto,
  dur,
  listCheckpointsRequestToProto,
  planFromProto,
  planInputToProto,
  progressFromProto,
  restoreRequestToProto,
  takeSnapshotRequestToProto,
  verifyReportFromProto,
  type ListCheckpointsArgs,
  type ProgressView,
} from './convert.js';
import { planStatsFromProto, policyFromProto, policyInputToProto } from './convert-policy.js';
import { copyFromProto, siteCopyFromProto, type CopyView } from './convert-sites.js';
import { coordinatorGrpc } from './descriptor.js';
import type { PlanStats } from '../metrics/plan-stats.js';
import type { Policy, PolicyInput } from '../policies/model.js';
import { errorInfoOf, fieldViolationsOf } from './status.js';

export interface CallError {
  /** The gRPC status code. */
  readonly code: GrpcStatus;
  /** Its name, e.g. `NOT_FOUND`. */
  readonly codeName: string;
  readonly message: string;
  /** The machine-readable reason of the status (its google.rpc.ErrorInfo), e.g. PLAN_BUSY. */
  readonly reason?: string;
  /** INVALID_ARGUMENT: the request fields at fault (its google.rpc.BadRequest field violations). */
  readonly fields?: readonly string[];
}

/** src/result.ts's Result, with the status the call ended with. */
export type CallResult<T> = CoreResult<T, CallError>;

export interface ClientOptions {
  /** Each unary call but rollback and restore fails with DEADLINE_EXCEEDED after this long. */
  readonly callTimeoutMs: number;
  /**
   * Rollback and restore fail with DEADLINE_EXCEEDED after this long. They wait on agents: a rollback
   * takes a safety checkpoint (its timeout, 30 s by default, then its commit), then asks every agent
   * to restore and then to resume (the coordinator's --restore-timeout-ms, 30 s by default, each).
   * The client must outwait all of that, or it reports a timeout for an operation that goes on and
   * may well succeed.
   */
  readonly restoreCallTimeoutMs: number;
  readonly credentials?: ChannelCredentials;
  /**
   * With TLS: the name the coordinator's certificate must carry, when the address does not (an IP
   * address, a load balancer). Also spares Node's warning about a TLS server name that is an IP.
   */
  readonly tlsServerName?: string;
  /** Sent as `authorization: Bearer <token>` on every call (a coordinator with auth, docs/security.md). */
  readonly token?: string;
}

export const clientOptionsDefault: ClientOptions = { callTimeoutMs: 30_000, restoreCallTimeoutMs: 180_000 };

export function codeName(code: number): string {
  return (GrpcStatus as unknown as Record<number, string>)[code] ?? `code ${code}`;
}

function callError(error: ServiceError | Error): CallError {
  const code = 'code' in error && typeof error.code === 'number' ? error.code : GrpcStatus.UNKNOWN;
  const details = 'details' in error && typeof error.details === 'string' && error.details !== '' ? error.details : error.message;
  const info = 'metadata' in error ? errorInfoOf(error.metadata) : undefined;
  const fields = 'metadata' in error ? fieldViolationsOf(error.metadata).map((v) => v.field) : [];
  return { code, codeName: codeName(code), message: details, ...(info ? { reason: info.reason } : {}), ...(fields.length > 0 ? { fields } : {}) };
}

/** A response the client cannot read is reported like a status, as INTERNAL. */
function fromResult<T>(result: Result<T>): CallResult<T> {
  return result.ok ? result : { ok: false, error: { code: GrpcStatus.INTERNAL, codeName: 'INTERNAL', message: `unreadable response: ${result.error.message}` } };
}

function all<T>(items: readonly unknown[], read: (item: unknown) => Result<T>): Result<T[]> {
  const out: T[] = [];
  for (const item of items) {
    const r = read(item);
    if (!r.ok) return r;
    out.push(r.value);
  }
  return { ok: true, value: out };
}

type Unary = (request: unknown, metadata: Metadata, options: { deadline: Date }, callback: (error: ServiceError | null, response: Record<string, unknown>) => void) => void;

export class CoordinatorClient {
  private readonly client: Client;
  private readonly options: ClientOptions;

  constructor(address: string, options: Partial<ClientOptions> = {}) {
    this.options = { ...clientOptionsDefault, ...options };
    const { Client: Ctor } = coordinatorGrpc();
    const channelOptions = this.options.tlsServerName !== undefined ? { 'grpc.ssl_target_name_override': this.options.tlsServerName } : {};
    this.client = new Ctor(address, this.options.credentials ?? grpcCredentials.createInsecure(), channelOptions);
  }

  close(): void {
    this.client.close();
  }

  private metadata(): Metadata {
    const m = new Metadata();
    if (this.options.token !== undefined) m.set('authorization', `Bearer ${this.options.token}`);
    return m;
  }

  private call<T>(
    method: string,
    request: unknown,
    read: (response: Record<string, unknown>) => Result<T>,
    timeoutMs: number = this.options.callTimeoutMs,
  ): Promise<CallResult<T>> {
    const fn = (this.client as unknown as Record<string, Unary>)[method];
    if (fn === undefined) throw new Error(`no method ${method}`);
    return new Promise((resolve) => {
      fn.call(this.client, request, this.metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (error, response) => {
        resolve(error !== null ? { ok: false, error: callError(error) } : fromResult(read(response)));
      });
    });
  }

  registerPlan(plan: PlanInput, expectedRevision: number): Promise<CallResult<Plan>> {
    return this.call('RegisterPlan', { plan: planInputToProto(plan), expected_revision: expectedRevision }, (r) => planFromProto(r.plan));
  }

  getPlan(planId: string): Promise<CallResult<Plan>> {
    return this.call('GetPlan', { plan_id: planId }, (r) => planFromProto(r.plan));
  }

  listPlans(tenant: string | undefined, pageSize: number, pageToken: string): Promise<CallResult<Page<Plan>>> {
    return this.call('ListPlans', { tenant: tenant ?? '', page_size: pageSize, page_token: pageToken }, (r) => {
      const plans = all((r.plans as unknown[] | undefined) ?? [], planFromProto);
      return plans.ok ? { ok: true, value: { items: plans.value, nextPageToken: String(r.next_page_token ?? '') } } : plans;
    });
  }

  deletePlan(planId: string, deleteCheckpoints: boolean): Promise<CallResult<void>> {
    return this.call('DeletePlan', { plan_id: planId, delete_checkpoints: deleteCheckpoints }, () => ({ ok: true, value: undefined }));
  }

  takeSnapshot(request: TakeSnapshotRequest): Promise<CallResult<CheckpointView>> {
    return this.call('TakeSnapshot', takeSnapshotRequestToProto(request), (r) => checkpointFromProto(r.checkpoint));
  }

  /** BeginCheckpoint: answers once the checkpoint is held (or aborted). */
  beginCheckpoint(request: BeginCheckpointRequest): Promise<CallResult<CheckpointView>> {
    const take = takeSnapshotRequestToProto({ planId: request.planId, level: request.level, options: request.options, ...(request.idempotencyKey !== undefined ? { idempotencyKey: request.idempotencyKey } : {}) });
    return this.call('BeginCheckpoint', { ...take, hold_deadline: dur(request.holdMs) }, (r) => checkpointFromProto(r.checkpoint));
  }

  /** FinishCheckpoint: answers once the checkpoint completed (or aborted). */
  finishCheckpoint(request: FinishCheckpointRequest): Promise<CallResult<CheckpointView>> {
    return this.call('FinishCheckpoint', finishCheckpointRequestToProto(request), (r) => checkpointFromProto(r.checkpoint));
  }

  getCheckpoint(id: CheckpointId): Promise<CallResult<CheckpointView>> {
    return this.call('GetCheckpoint', { checkpoint_id: id }, (r) => checkpointFromProto(r.checkpoint));
  }

  listCheckpoints(args: ListCheckpointsArgs): Promise<CallResult<Page<CheckpointView>>> {
    return this.call('ListCheckpoints', listCheckpointsRequestToProto(args), (r) => {
      const items = all((r.checkpoints as unknown[] | undefined) ?? [], checkpointFromProto);
      return items.ok ? { ok: true, value: { items: items.value, nextPageToken: String(r.next_page_token ?? '') } } : items;
    });
  }

  rollback(id: CheckpointId, skipSafetyCheckpoint: boolean, idempotencyKey?: string): Promise<CallResult<{ safetyCheckpointId: number; epoch: number }>> {
    return this.call(
      'RollbackSnapshot',
      { checkpoint_id: id, skip_safety_checkpoint: skipSafetyCheckpoint, idempotency_key: idempotencyKey ?? '' },
      (r) => ({ ok: true, value: { safetyCheckpointId: Number(r.safety_checkpoint_id ?? 0), epoch: Number(r.epoch ?? 0) } }),
      this.options.restoreCallTimeoutMs,
    );
  }

  /** With `fromSite`, from the copy that site holds (docs/sites.md); restoredCheckpointId is then the imported copy's id here. */
  restore(request: RestoreRequest, fromSite?: FromSite): Promise<CallResult<{ epoch: number; restoredCheckpointId: number }>> {
    return this.call(
      'RestoreSnapshot',
      restoreRequestToProto(request, fromSite),
      (r) => ({ ok: true, value: { epoch: Number(r.epoch ?? 0), restoredCheckpointId: Number(r.restored_checkpoint_id ?? 0) } }),
      this.options.restoreCallTimeoutMs,
    );
  }

  /** CopyCheckpoint: answers once the copy is verified at the site. */
  copyCheckpoint(id: CheckpointId, site: string): Promise<CallResult<CheckpointCopy>> {
    return this.call('CopyCheckpoint', { checkpoint_id: id, site }, (r) => copyFromProto(r.copy), this.options.restoreCallTimeoutMs);
  }

  listCheckpointCopies(site: string, planId?: string): Promise<CallResult<CopyView[]>> {
    return this.call('ListCheckpointCopies', { site, plan_id: planId ?? '' }, (r) => all((r.copies as unknown[] | undefined) ?? [], siteCopyFromProto));
  }

  verify(id: CheckpointId): Promise<CallResult<VerifyReport>> {
    return this.call('VerifyCheckpoint', { checkpoint_id: id }, (r) => verifyReportFromProto(r));
  }

  deleteCheckpoint(id: CheckpointId, idempotencyKey?: string): Promise<CallResult<DeleteOutcome>> {
    return this.call('DeleteCheckpoint', { checkpoint_id: id, idempotency_key: idempotencyKey ?? '' }, (r) => deleteOutcomeFromProto(r));
  }

  cancelCheckpoint(id: CheckpointId, idempotencyKey?: string): Promise<CallResult<CheckpointView>> {
    return this.call('CancelCheckpoint', { checkpoint_id: id, idempotency_key: idempotencyKey ?? '' }, (r) => checkpointFromProto(r.checkpoint));
  }

  /** PinCheckpoint, or UnpinCheckpoint with `pinned` false. */
  pinCheckpoint(id: CheckpointId, pinned: boolean, idempotencyKey?: string): Promise<CallResult<CheckpointView>> {
    return this.call(pinned ? 'PinCheckpoint' : 'UnpinCheckpoint', { checkpoint_id: id, idempotency_key: idempotencyKey ?? '' }, (r) => checkpointFromProto(r.checkpoint));
  }

  listAgents(tenant: string | undefined): Promise<CallResult<AgentInfo[]>> {
    return this.call('ListAgents', { tenant: tenant ?? '' }, (r) => all((r.agents as unknown[] | undefined) ?? [], agentFromProto));
  }

  createPolicy(policy: PolicyInput): Promise<CallResult<Policy>> {
    return this.call('CreatePolicy', { policy: policyInputToProto(policy) }, (r) => policyFromProto(r.policy));
  }

  getPolicy(planId: string): Promise<CallResult<Policy>> {
    return this.call('GetPolicy', { plan_id: planId }, (r) => policyFromProto(r.policy));
  }

  listPolicies(tenant: string | undefined, pageSize: number, pageToken: string): Promise<CallResult<Page<Policy>>> {
    return this.call('ListPolicies', { tenant: tenant ?? '', page_size: pageSize, page_token: pageToken }, (r) => {
      const items = all((r.policies as unknown[] | undefined) ?? [], policyFromProto);
      return items.ok ? { ok: true, value: { items: items.value, nextPageToken: String(r.next_page_token ?? '') } } : items;
    });
  }

  /** expectedRevision 0: whatever the revision. */
  updatePolicy(policy: PolicyInput, expectedRevision: number): Promise<CallResult<Policy>> {
    return this.call('UpdatePolicy', { policy: policyInputToProto(policy), expected_revision: expectedRevision }, (r) => policyFromProto(r.policy));
  }

  deletePolicy(planId: string): Promise<CallResult<void>> {
    return this.call('DeletePolicy', { plan_id: planId }, () => ({ ok: true, value: undefined }));
  }

  planStats(planId: string): Promise<CallResult<PlanStats>> {
    return this.call('GetPlanStats', { plan_id: planId }, (r) => planStatsFromProto(r.stats));
  }

  /**
   * Streams a checkpoint's progress. `done` resolves when the stream ends: ok when the coordinator
   * ended it (the checkpoint finished), an error otherwise. `cancel` stops watching.
   */
  watchCheckpoint(id: CheckpointId, onEvent: (event: ProgressView) => void): { done: Promise<CallResult<void>>; cancel: () => void } {
    return this.progressStream('WatchCheckpoint', { checkpoint_id: id }, onEvent);
  }

  /** TakeSnapshotAndWait: starts a checkpoint and streams its progress to its end, as watchCheckpoint. */
  takeSnapshotAndWait(request: TakeSnapshotRequest, onEvent: (event: ProgressView) => void): { done: Promise<CallResult<void>>; cancel: () => void } {
    return this.progressStream('TakeSnapshotAndWait', takeSnapshotRequestToProto(request), onEvent);
  }

  private progressStream(method: string, request: unknown, onEvent: (event: ProgressView) => void): { done: Promise<CallResult<void>>; cancel: () => void } {
    const fn = (this.client as unknown as Record<string, (request: unknown, metadata: Metadata) => ClientReadableStream<unknown>>)[method];
    if (fn === undefined) throw new Error(`no method ${method}`);
    const stream = fn.call(this.client, request, this.metadata());
    const done = new Promise<CallResult<void>>((resolve) => {
      let settled = false;
      const settle = (r: CallResult<void>): void => {
        if (!settled) {
          settled = true;
          resolve(r);
        }
      };
      stream.on('data', (message: unknown) => {
        const event = progressFromProto(message);
        if (event.ok) onEvent(event.value);
        else {
          settle(fromResult(event));
          stream.cancel();
        }
      });
      stream.on('error', (error: ServiceError) => settle({ ok: false, error: callError(error) }));
      stream.on('status', (s: { code: number; details: string }) => {
        settle(s.code === GrpcStatus.OK ? { ok: true, value: undefined } : { ok: false, error: { code: s.code, codeName: codeName(s.code), message: s.details } });
      });
    });
    return { done, cancel: () => stream.cancel() };
  }
}
