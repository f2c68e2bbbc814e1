/**
 * The coordinator's gRPC server: the Coordinator service over a CoordinatorApi, plus the standard
 * grpc.health.v1 service and server reflection (grpc.reflection.v1 and v1alpha).
 *
 * Every handler has the same shape: convert and validate the request (convert.ts; a bad field is
 * INVALID_ARGUMENT naming it), call the API, map a typed error to its status code (status.ts, the
 * one place that does), convert the answer. Nothing a caller sends and nothing an API call throws
 * can take the server down: an exception becomes INTERNAL with one error log line.
 */
import {
  Server,
  ServerCredentials,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import type { Logger } from 'pino';
import type { CoordinatorApi, PoliciesApi, SitesApi } from '../api.js';
import { fail, ok, type CoordinatorError, type Result } from '../errors.js';
import type { Plan } from '../model.js';
import type { CheckpointId } from '../../src/ids.js';
import { planStats } from '../metrics/plan-stats.js';
import {
  agentToProto,
  beginCheckpointRequestFromProto,
  channelsByServer,
  checkpointIdRequestFromProto,
  checkpointCopyToProto,
  checkpointToProto,
  deleteOutcomeToProto,
  deletePlanRequestFromProto,
  finishCheckpointRequestFromProto,
  keyedCheckpointRequestFromProto,
  listAgentsRequestFromProto,
  listCheckpointsRequestFromProto,
  listPlansRequestFromProto,
  planIdRequestFromProto,
  planToProto,
  progressToProto,
  registerPlanRequestFromProto,
  requestLimitsDefault,
  restoreRequestFromProto,
  rollbackRequestFromProto,
  takeSnapshotRequestFromProto,
  validateRequestLimits,
  verifyReportToProto,
  type RequestLimits,
} from './convert.js';
import {
  createPolicyRequestFromProto,
  listPoliciesRequestFromProto,
  planStatsToProto,
  policyToProto,
  updatePolicyRequestFromProto,
} from './convert-policy.js';
import { copyCheckpointRequestFromProto, listCopiesRequestFromProto, siteCopyToProto } from './convert-sites.js';
import { COORDINATOR_SERVICE_NAME, coordinatorGrpc, coordinatorPackageDefinition } from './descriptor.js';
import { HealthService, healthPackageDefinition } from './health.js';
import { toServiceError, grpcCode } from './status.js';
import { authorize, currentCaller, isMutating, tenantScoped, type Authenticator, type Caller } from './auth.js';
import { auditArguments, type AuditSink } from '../audit.js';
import { codeName } from './client.js';

export interface GrpcServerLimits extends RequestLimits {
  /** close() waits this long for calls in progress before cutting them off. */
  readonly shutdownGraceMs: number;
  /** Largest request accepted, in bytes (a plan with thousands of apps fits in well under this). */
  readonly requestBytesMax: number;
  /** WatchCheckpoint streams open at once; one more is UNAVAILABLE (retry later). */
  readonly watchStreamsMax: number;
}

export const grpcServerLimitsDefault: GrpcServerLimits = {
  ...requestLimitsDefault,
  shutdownGraceMs: 5_000,
  requestBytesMax: 16 * 1024 * 1024,
  watchStreamsMax: 1_000,
};

export function validateGrpcServerLimits(l: GrpcServerLimits): string | undefined {
  const invalid = validateRequestLimits(l);
  if (invalid !== undefined) return invalid;
  for (const name of ['shutdownGraceMs', 'requestBytesMax', 'watchStreamsMax'] as const) {
    if (!Number.isSafeInteger(l[name]) || l[name] < 1) return `${name} must be a positive integer, got ${l[name]}`;
  }
  return undefined;
}

export interface GrpcServerOptions {
  readonly api: CoordinatorApi;
  /** `host:port`; port 0 picks a free one (see the handle's `port`). */
  readonly address: string;
  readonly logger: Logger;
  readonly limits?: Partial<GrpcServerLimits>;
  /** Default: insecure (plaintext), for a coordinator behind a private network or a mesh. */
  readonly credentials?: ServerCredentials;
  /**
   * Every call authenticated, authorized by role and scoped to the caller's tenant (auth.ts); each
   * call of a method that changes something goes to `audit`. Absent: every call is served, anonymous.
   */
  readonly auth?: { readonly authenticator: Authenticator; readonly audit?: AuditSink };
}

/** Counters of what the server refused or failed on, for tests and metrics. */
export interface GrpcServerStats {
  /** Requests whose bytes are not the method's request message (INVALID_ARGUMENT). */
  malformedRequests: number;
  /** Requests refused with any error code. */
  refusedRequests: number;
  /** INTERNAL answers: exceptions behind the API, or errors the API itself classed as internal. */
  internalErrors: number;
}

export interface GrpcServerHandle {
  readonly port: number;
  readonly health: HealthService;
  readonly stats: Readonly<GrpcServerStats>;
  /** Health NOT_SERVING, open watch streams ended, then a graceful shutdown bounded by shutdownGraceMs. Idempotent. */
  close(): Promise<void>;
}

type Log = Logger;

/**
 * What a request that did not decode becomes. grpc-js would answer such a request INTERNAL
 * ("Error deserializing request") without a word in our log; the caller sent bad bytes, so it is
 * INVALID_ARGUMENT, logged and counted like any other bad request.
 */
const MALFORMED = Symbol('malformed request');

interface MalformedRequest {
  readonly [MALFORMED]: string;
}

function malformedReason(request: unknown): string | undefined {
  return typeof request === 'object' && request !== null && MALFORMED in request ? (request as MalformedRequest)[MALFORMED] : undefined;
}

function tolerantDeserializers(service: ServiceDefinition): ServiceDefinition {
  const out: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(service)) {
    out[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          return method.requestDeserialize(bytes);
        } catch (error) {
          return { [MALFORMED]: errorMessage(error) } satisfies MalformedRequest;
        }
      },
    };
  }
  return out as ServiceDefinition;
}

function malformedError(method: string, reason: string): CoordinatorError {
  return { kind: 'invalid-argument', message: `the request is not a valid ${method}Request message (${reason})` };
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const internal = (method: string): CoordinatorError => ({ kind: 'internal', message: `internal error in ${method}; the coordinator's log has the details` });

/** One unary method: parse, run, respond, with the error handling and the log line every method shares. */
/**
 * What runs before a handler: who calls (UNAUTHENTICATED when unknown), whether their role allows
 * the method (PERMISSION_DENIED), and what is audited once the call ends. Absent: anonymous calls.
 */
export interface CallGuard {
  admit(method: string, call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>): { caller?: Caller; error?: CoordinatorError };
  ended(method: string, caller: Caller | undefined, request: unknown, error: CoordinatorError | undefined): void;
}

function guardFor(auth: NonNullable<GrpcServerOptions['auth']>): CallGuard {
  return {
    admit(method, call) {
      const caller = auth.authenticator.authenticate(call.metadata, call.getAuthContext());
      if (!caller.ok) return { error: caller.error };
      const allowed = authorize(caller.value, method);
      return allowed.ok ? { caller: caller.value } : { caller: caller.value, error: allowed.error };
    },
    ended(method, caller, request, error) {
      if (auth.audit === undefined || !isMutating(method)) return;
      auth.audit.record({
        time: new Date().toISOString(),
        identity: caller?.identity ?? '',
        tenant: caller?.tenant ?? '',
        method,
        arguments: auditArguments(request),
        code: error === undefined ? 'OK' : codeName(grpcCode(error.kind)),
      });
    },
  };
}

function unary<Args, Out>(
  log: Log,
  stats: GrpcServerStats,
  guard: CallGuard | undefined,
  method: string,
  parse: (request: unknown) => Result<Args>,
  run: (args: Args) => Promise<Result<Out>>,
  respond: (out: Out) => object,
): (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => void {
  return (call, callback) => {
    const started = performance.now();
    let answered = false;
    let caller: Caller | undefined;
    /** `cause`: the exception behind an INTERNAL answer, logged with it (one line per request). */
    const finish = (error: CoordinatorError | undefined, response?: object, cause?: unknown): void => {
      // A throw after the answer (in logging, say) must not answer a second time.
      if (answered) return;
      answered = true;
      guard?.ended(method, caller, call.request, error);
      const durationMs = Math.round(performance.now() - started);
      if (error === undefined) {
        log.debug({ method, code: 'OK', durationMs }, 'request served');
        callback(null, response);
      } else {
        const line = { method, code: error.kind, durationMs, reason: error.message, ...(caller !== undefined ? { identity: caller.identity } : {}) };
        stats.refusedRequests++;
        if (error.kind === 'internal') {
          stats.internalErrors++;
          if (cause === undefined) log.error(line, 'request failed');
          else log.error({ ...line, err: cause }, `request failed: handler threw: ${errorMessage(cause)}`);
        } else {
          log.info(line, 'request refused');
        }
        callback(toServiceError(error));
      }
    };
    const serve = async (): Promise<void> => {
      try {
        const malformed = malformedReason(call.request);
        if (malformed !== undefined) {
          stats.malformedRequests++;
          return finish(malformedError(method, malformed));
        }
        const args = parse(call.request);
        if (!args.ok) return finish(args.error);
        const result = await run(args.value);
        if (!result.ok) return finish(result.error);
        finish(undefined, respond(result.value));
      } catch (error) {
        finish(internal(method), undefined, error);
      }
    };
    if (guard === undefined) return void serve();
    let admitted: ReturnType<CallGuard['admit']>;
    try {
      admitted = guard.admit(method, call);
    } catch (error) {
      return finish(internal(method), undefined, error);
    }
    caller = admitted.caller;
    if (admitted.error !== undefined) return finish(admitted.error);
    // The tenant-scoped API (auth.ts) reads the caller from here.
    void currentCaller.run(admitted.caller as Caller, serve);
  };
}

/** Every plan of a tenant (or of all tenants), page by page: ListAgents shows each agent's channels. */
async function allPlans(api: CoordinatorApi, tenant: string | undefined): Promise<Result<Plan[]>> {
  const plans: Plan[] = [];
  let token = '';
  do {
    const page = await api.plans.list(tenant, PLAN_PAGE_SIZE, token);
    if (!page.ok) return page;
    plans.push(...page.value.items);
    token = page.value.nextPageToken;
  } while (token !== '');
  return ok(plans);
}

const PLAN_PAGE_SIZE = 500;

export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServerHandle> {
  const limits: GrpcServerLimits = { ...grpcServerLimitsDefault, ...options.limits };
  const invalid = validateGrpcServerLimits(limits);
  if (invalid !== undefined) throw new Error(`invalid gRPC server limits: ${invalid}`);
  const log = options.logger.child({ component: 'grpc' });
  const guard = options.auth !== undefined ? guardFor(options.auth) : undefined;
  const api = options.auth !== undefined ? tenantScoped(options.api) : options.api;
  const stats: GrpcServerStats = { malformedRequests: 0, refusedRequests: 0, internalErrors: 0 };

  const server = new Server({
    'grpc.max_receive_message_length': limits.requestBytesMax,
  });
  const health = new HealthService([COORDINATOR_SERVICE_NAME]);
  health.addTo(server);

  const withPolicies = <T>(call: (p: PoliciesApi) => Promise<Result<T>>): Promise<Result<T>> =>
    api.policies !== undefined ? call(api.policies) : Promise.resolve(fail('unavailable', 'this coordinator has no policy store; policies are not served'));

  /** Without sites, every site named is unknown: NOT_FOUND, as a coordinator with sites answers for one it lacks. */
  const withSites = <T>(site: string, call: (s: SitesApi) => Promise<Result<T>>): Promise<Result<T>> =>
    api.sites !== undefined ? call(api.sites) : Promise.resolve(fail('not-found', `site ${site} is not configured; this coordinator has no sites (the sites key of its configuration file, docs/sites.md)`));

  /** Open progress streams (WatchCheckpoint, TakeSnapshotAndWait) and how to end each one from close(). */
  const watches = new Set<() => void>();

  /**
   * A stream of one checkpoint's progress until it ends: WatchCheckpoint (an existing checkpoint)
   * and TakeSnapshotAndWait (one it starts first). `start` gives the checkpoint to follow, or the
   * error the call ends with before any message.
   */
  const progressStream =
    <Args>(method: string, parse: (request: unknown) => Result<Args>, start: (args: Args) => Promise<Result<CheckpointId>>) =>
    (call: ServerWritableStream<unknown, unknown>): void => {
      let ended = false;
      let stop: (() => void) | undefined;
      const closeStream = (error?: CoordinatorError): void => {
        if (ended) return;
        ended = true;
        watches.delete(shutdown);
        try {
          stop?.();
        } catch (e) {
          log.error({ method, err: e }, `stopping a watch threw: ${errorMessage(e)}`);
        }
        if (error === undefined) call.end();
        else call.emit('error', toServiceError(error));
      };
      const shutdown = (): void => closeStream({ kind: 'unavailable', message: 'the coordinator is shutting down; watch again' });
      call.on('cancelled', () => {
        // The client went away (cancel, deadline, connection lost): nothing more can be sent.
        ended = true;
        watches.delete(shutdown);
        try {
          stop?.();
        } catch (e) {
          // An event handler that threw would take the process down.
          log.error({ method, err: e }, `stopping a watch threw: ${errorMessage(e)}`);
        }
        log.debug({ method }, 'watch cancelled by the client');
      });

      let caller: Caller | undefined;
      if (guard !== undefined) {
        const admitted = guard.admit(method, call);
        caller = admitted.caller;
        if (admitted.error !== undefined) {
          stats.refusedRequests++;
          log.info({ method, code: admitted.error.kind, reason: admitted.error.message, ...(caller !== undefined ? { identity: caller.identity } : {}) }, 'request refused');
          guard.ended(method, caller, call.request, admitted.error);
          return closeStream(admitted.error);
        }
      }
      const malformed = malformedReason(call.request);
      if (malformed !== undefined) {
        stats.malformedRequests++;
        stats.refusedRequests++;
        log.info({ method, code: 'invalid-argument', reason: malformed }, 'request refused');
        guard?.ended(method, caller, call.request, malformedError(method, malformed));
        return closeStream(malformedError(method, malformed));
      }
      const args = parse(call.request);
      if (!args.ok) {
        stats.refusedRequests++;
        log.info({ method, code: args.error.kind, reason: args.error.message }, 'request refused');
        guard?.ended(method, caller, call.request, args.error);
        return closeStream(args.error);
      }
      if (watches.size >= limits.watchStreamsMax) {
        stats.refusedRequests++;
        log.warn({ method, watchStreamsMax: limits.watchStreamsMax }, 'watch refused: too many open');
        const busy: CoordinatorError = { kind: 'unavailable', message: `too many watch streams open (watchStreamsMax ${limits.watchStreamsMax}); retry later or poll GetCheckpoint` };
        guard?.ended(method, caller, call.request, busy);
        return closeStream(busy);
      }
      watches.add(shutdown);
      let followed: CheckpointId | undefined;
      const follow = async (): Promise<void> => {
        try {
          const id = await start(args.value);
          guard?.ended(method, caller, call.request, id.ok ? undefined : id.error);
          if (!id.ok) {
            stats.refusedRequests++;
            log.info({ method, code: id.error.kind, reason: id.error.message }, 'request refused');
            return closeStream(id.error);
          }
          followed = id.value;
          const result = await api.checkpoints.watch(
            id.value,
            (event) => {
              if (ended) return;
              try {
                // Progress events per checkpoint are bounded (a few per app), so the stream's own
                // buffer is enough backpressure for a slow reader.
                call.write(progressToProto(event));
              } catch (e) {
                stats.internalErrors++;
                log.error({ method, checkpointId: id.value, err: e }, `converting a progress event threw: ${errorMessage(e)}`);
                closeStream(internal(method));
              }
            },
            () => closeStream(),
          );
          if (!result.ok) {
            stats.refusedRequests++;
            log.info({ method, checkpointId: id.value, code: result.error.kind, reason: result.error.message }, 'request refused');
            return closeStream(result.error);
          }
          stop = result.value;
          // Ended (or cancelled) while watch() was still resolving: release what it set up.
          if (ended) stop();
        } catch (error) {
          stats.internalErrors++;
          log.error({ method, checkpointId: followed, err: error }, `handler threw: ${errorMessage(error)}`);
          closeStream(internal(method));
        }
      };
      // The tenant-scoped API (auth.ts) reads the caller from here.
      void (caller !== undefined ? currentCaller.run(caller, follow) : follow());
    };

  const handlers: UntypedServiceImplementation = {
    RegisterPlan: unary(log, stats, guard, 'RegisterPlan', registerPlanRequestFromProto, (a) => api.plans.register(a.plan, a.expectedRevision), (plan) => ({ plan: planToProto(plan) })),
    GetPlan: unary(log, stats, guard, 'GetPlan', planIdRequestFromProto, (id) => api.plans.get(id), (plan) => ({ plan: planToProto(plan) })),
    ListPlans: unary(
      log,
      stats,
      guard,
      'ListPlans',
      (r) => listPlansRequestFromProto(r, limits),
      (a) => api.plans.list(a.tenant, a.pageSize, a.pageToken),
      (page) => ({ plans: page.items.map(planToProto), next_page_token: page.nextPageToken }),
    ),
    DeletePlan: unary(log, stats, guard, 'DeletePlan', deletePlanRequestFromProto, (a) => api.plans.delete(a.planId, a.deleteCheckpoints), () => ({})),
    TakeSnapshot: unary(
      log,
      stats,
      guard,
      'TakeSnapshot',
      (r) => takeSnapshotRequestFromProto(r, limits),
      (a) => api.checkpoints.take(a),
      (record) => ({ checkpoint_id: record.id, checkpoint: checkpointToProto(record) }),
    ),
    BeginCheckpoint: unary(
      log,
      stats,
      guard,
      'BeginCheckpoint',
      (r) => beginCheckpointRequestFromProto(r, limits),
      (a) => api.checkpoints.begin(a),
      (record) => ({ checkpoint_id: record.id, checkpoint: checkpointToProto(record) }),
    ),
    FinishCheckpoint: unary(log, stats, guard, 'FinishCheckpoint', finishCheckpointRequestFromProto, (a) => api.checkpoints.finish(a), (record) => ({ checkpoint: checkpointToProto(record) })),
    GetCheckpoint: unary(log, stats, guard, 'GetCheckpoint', checkpointIdRequestFromProto, (id) => api.checkpoints.get(id), (record) => ({ checkpoint: checkpointToProto(record) })),
    ListCheckpoints: unary(
      log,
      stats,
      guard,
      'ListCheckpoints',
      (r) => listCheckpointsRequestFromProto(r, limits),
      (a) => api.checkpoints.list(a.filter, a.pageSize, a.pageToken),
      (page) => ({ checkpoints: page.items.map(checkpointToProto), next_page_token: page.nextPageToken }),
    ),
    WatchCheckpoint: progressStream('WatchCheckpoint', checkpointIdRequestFromProto, async (id) => ok(id)),
    TakeSnapshotAndWait: progressStream(
      'TakeSnapshotAndWait',
      (r) => takeSnapshotRequestFromProto(r, limits),
      async (a) => {
        const taken = await api.checkpoints.take(a);
        return taken.ok ? ok(taken.value.id) : taken;
      },
    ),
    RollbackSnapshot: unary(
      log,
      stats,
      guard,
      'RollbackSnapshot',
      (r) => rollbackRequestFromProto(r, limits),
      (a) => api.checkpoints.rollback(a),
      (out) => ({ safety_checkpoint_id: out.safetyCheckpointId, epoch: out.epoch }),
    ),
    RestoreSnapshot: unary(
      log,
      stats,
      guard,
      'RestoreSnapshot',
      (r) => restoreRequestFromProto(r, limits),
      async ({ request, fromSite }) => {
        if (fromSite === undefined) {
          const restored = await api.checkpoints.restore(request);
          return restored.ok ? ok({ epoch: restored.value.epoch, checkpointId: request.checkpointId }) : restored;
        }
        return withSites(fromSite.site, (s) => s.restoreFrom(request, fromSite));
      },
      (out) => ({ epoch: out.epoch, restored_checkpoint_id: out.checkpointId }),
    ),
    VerifyCheckpoint: unary(log, stats, guard, 'VerifyCheckpoint', checkpointIdRequestFromProto, (id) => api.checkpoints.verify(id), verifyReportToProto),
    DeleteCheckpoint: unary(
      log,
      stats,
      guard,
      'DeleteCheckpoint',
      (r) => keyedCheckpointRequestFromProto(r, limits),
      (a) => api.checkpoints.delete(a.checkpointId, a.idempotencyKey),
      deleteOutcomeToProto,
    ),
    CancelCheckpoint: unary(
      log,
      stats,
      guard,
      'CancelCheckpoint',
      (r) => keyedCheckpointRequestFromProto(r, limits),
      (a) => api.checkpoints.cancel(a.checkpointId, a.idempotencyKey),
      (record) => ({ checkpoint: checkpointToProto(record) }),
    ),
    PinCheckpoint: unary(
      log,
      stats,
      guard,
      'PinCheckpoint',
      (r) => keyedCheckpointRequestFromProto(r, limits),
      (a) => api.checkpoints.pin(a.checkpointId, true, a.idempotencyKey),
      (record) => ({ checkpoint: checkpointToProto(record) }),
    ),
    UnpinCheckpoint: unary(
      log,
      stats,
      guard,
      'UnpinCheckpoint',
      (r) => keyedCheckpointRequestFromProto(r, limits),
      (a) => api.checkpoints.pin(a.checkpointId, false, a.idempotencyKey),
      (record) => ({ checkpoint: checkpointToProto(record) }),
    ),
    ListAgents: unary(
      log,
      stats,
      guard,
      'ListAgents',
      listAgentsRequestFromProto,
      async (tenant) => {
        const agents = await api.agents.list(tenant);
        if (!agents.ok) return agents;
        const plans = await allPlans(api, tenant);
        return plans.ok ? ok({ agents: agents.value, channels: channelsByServer(plans.value) }) : plans;
      },
      (r) => ({ agents: r.agents.map((a) => agentToProto(a, r.channels.get(a.server))) }),
    ),
    CreatePolicy: unary(log, stats, guard, 'CreatePolicy', createPolicyRequestFromProto, (p) => withPolicies((x) => x.create(p)), (policy) => ({ policy: policyToProto(policy) })),
    GetPolicy: unary(log, stats, guard, 'GetPolicy', planIdRequestFromProto, (id) => withPolicies((x) => x.get(id)), (policy) => ({ policy: policyToProto(policy) })),
    ListPolicies: unary(
      log,
      stats,
      guard,
      'ListPolicies',
      (r) => listPoliciesRequestFromProto(r, limits),
      (a) => withPolicies((x) => x.list(a.tenant, a.pageSize, a.pageToken)),
      (page) => ({ policies: page.items.map(policyToProto), next_page_token: page.nextPageToken }),
    ),
    UpdatePolicy: unary(
      log,
      stats,
      guard,
      'UpdatePolicy',
      updatePolicyRequestFromProto,
      (a) => withPolicies((x) => x.update(a.policy, a.expectedRevision)),
      (policy) => ({ policy: policyToProto(policy) }),
    ),
    DeletePolicy: unary(log, stats, guard, 'DeletePolicy', planIdRequestFromProto, (id) => withPolicies((x) => x.delete(id)), () => ({})),
    GetPlanStats: unary(
      log,
      stats,
      guard,
      'GetPlanStats',
      planIdRequestFromProto,
      async (id) => {
        const plan = await api.plans.get(id);
        return plan.ok ? planStats((f, size, token) => api.checkpoints.list(f, size, token), id) : plan;
      },
      (s) => ({ stats: planStatsToProto(s) }),
    ),
    CopyCheckpoint: unary(log, stats, guard, 'CopyCheckpoint', copyCheckpointRequestFromProto, (a) => withSites(a.site, (s) => s.copy(a.checkpointId, a.site)), (copy) => ({ copy: checkpointCopyToProto(copy) })),
    ListCheckpointCopies: unary(
      log,
      stats,
      guard,
      'ListCheckpointCopies',
      listCopiesRequestFromProto,
      (a) => withSites(a.site, (s) => s.listCopies(a.site, a.planId !== undefined ? { planId: a.planId } : {})),
      (copies) => ({ copies: copies.map(siteCopyToProto) }),
    ),
  };
  server.addService(tolerantDeserializers(coordinatorGrpc().service), handlers);
  // grpc.reflection (v1 and v1alpha): grpcurl and grpcui list and call the API without the .proto files.
  new ReflectionService({ ...coordinatorPackageDefinition(), ...healthPackageDefinition() }).addToServer(server);

  const credentials = options.credentials ?? ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(options.address, credentials, (error, boundPort) => (error ? reject(error) : resolve(boundPort)));
  });
  log.info({ address: options.address, port }, 'gRPC server listening');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      health.shutdown();
      for (const end of [...watches]) end();
      const graceful = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), limits.shutdownGraceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      if (!graceful) server.forceShutdown();
      log.info({ port, graceful }, 'gRPC server stopped');
    })());

  return { port, health, stats, close };
}
