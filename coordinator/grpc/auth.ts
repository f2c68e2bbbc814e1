/**
 * Who is calling, and what they may do (docs/security.md, "The gRPC API").
 *
 * A caller is authenticated by a bearer token (`authorization: Bearer <token>`) or, over mTLS, by
 * the common name of its client certificate; both are looked up in the tokens file, which binds an
 * identity to a tenant ("*": every tenant) and a role. The role decides which methods it may call;
 * the tenant decides what it sees: `tenantScoped` wraps the API so a caller of tenant T never sees
 * another tenant's plans, checkpoints, agents or policies, and a foreign id answers NOT_FOUND with
 * the same message a missing one gets.
 *
 * No token is ever kept or logged: the file holds a token or its SHA-256, and a presented token is
 * hashed before it is looked up.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { Metadata } from '@grpc/grpc-js';
import type { AuthContext } from '@grpc/grpc-js/build/src/auth-context.js';
import { z } from 'zod';
import type { BeginCheckpointRequest, CheckpointsApi, CoordinatorApi, FinishCheckpointRequest, Page, PlansApi, PoliciesApi, RestoreRequest, SitesApi, TakeSnapshotRequest } from '../api.js';
import type { PolicyInput } from '../policies/model.js';
import { fail, ok, type Result } from '../errors.js';
import { err } from '../../src/result.js';
import type { CheckpointId } from '../../src/ids.js';

export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Every tenant: the protection service's binding. */
export const ALL_TENANTS = '*';

export interface Caller {
  readonly identity: string;
  readonly tenant: string;
  readonly role: Role;
}

/** The least role each method needs. A method missing here is refused (PERMISSION_DENIED) for everyone. */
export const METHOD_ROLES: Readonly<Record<string, Role>> = {
  GetPlan: 'viewer',
  ListPlans: 'viewer',
  GetCheckpoint: 'viewer',
  ListCheckpoints: 'viewer',
  WatchCheckpoint: 'viewer',
  VerifyCheckpoint: 'viewer',
  ListAgents: 'viewer',
  GetPolicy: 'viewer',
  ListPolicies: 'viewer',
  GetPlanStats: 'viewer',
  ListCheckpointCopies: 'viewer',
  TakeSnapshot: 'operator',
  TakeSnapshotAndWait: 'operator',
  BeginCheckpoint: 'operator',
  FinishCheckpoint: 'operator',
  CancelCheckpoint: 'operator',
  PinCheckpoint: 'operator',
  UnpinCheckpoint: 'operator',
  // A copy adds a checkpoint's data at another site and changes nothing here but the record's copy list.
  CopyCheckpoint: 'operator',
  RollbackSnapshot: 'admin',
  RestoreSnapshot: 'admin',
  DeleteCheckpoint: 'admin',
  RegisterPlan: 'admin',
  DeletePlan: 'admin',
  CreatePolicy: 'admin',
  UpdatePolicy: 'admin',
  DeletePolicy: 'admin',
};

/** The methods that change something: each call is audited. WatchCheckpoint and the reads are not. */
export function isMutating(method: string): boolean {
  const role = METHOD_ROLES[method];
  return role !== undefined && role !== 'viewer';
}

const tokenEntry = z
  .strictObject({
    token: z.string().min(16, { error: 'a token must have at least 16 characters' }).optional(),
    tokenSha256: z.string().regex(/^[0-9a-f]{64}$/, { error: 'must be 64 lowercase hex digits' }).optional(),
    certificateCn: z.string().min(1).optional(),
    identity: z.string().min(1),
    tenant: z.string().min(1),
    role: z.enum(ROLES),
    /** ISO 8601; absent: never expires. */
    expires: z.iso.datetime({ offset: true }).optional(),
  })
  .refine((e) => e.token !== undefined || e.tokenSha256 !== undefined || e.certificateCn !== undefined, { error: 'needs token, tokenSha256 or certificateCn' });

const tokensFileSchema = z.array(tokenEntry);

interface Entry {
  readonly caller: Caller;
  readonly expiresMs?: number;
}

interface Credentials {
  readonly byTokenHash: ReadonlyMap<string, Entry>;
  readonly byCn: ReadonlyMap<string, Entry>;
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The tokens file's entries, or what is wrong with it (never quoting a token). */
export function parseTokensFile(text: string): Result<Credentials> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return fail('invalid-argument', 'the tokens file is not JSON');
  }
  const parsed = tokensFileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return fail('invalid-argument', `the tokens file: entry ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
  }
  const byTokenHash = new Map<string, Entry>();
  const byCn = new Map<string, Entry>();
  for (const e of parsed.data) {
    const entry: Entry = { caller: { identity: e.identity, tenant: e.tenant, role: e.role }, ...(e.expires !== undefined ? { expiresMs: Date.parse(e.expires) } : {}) };
    const hash = e.tokenSha256 ?? (e.token !== undefined ? sha256Hex(e.token) : undefined);
    if (hash !== undefined) byTokenHash.set(hash, entry);
    if (e.certificateCn !== undefined) byCn.set(e.certificateCn, entry);
  }
  return ok({ byTokenHash, byCn });
}

export interface Authenticator {
  /** The caller of a call, or UNAUTHENTICATED. */
  authenticate(metadata: Metadata, auth: AuthContext): Result<Caller>;
}

/**
 * The tokens file, read again when its modification time changes (checked at most once a second):
 * rotation is an edit of the file, no restart. A file that became invalid keeps the last good one
 * in force, and says so through `onReloadFailed`.
 */
export function tokensFileAuthenticator(path: string, options: { now?: () => number; onReloadFailed?: (message: string) => void } = {}): Result<Authenticator> {
  const now = options.now ?? Date.now;
  const read = (): Result<{ credentials: Credentials; mtimeMs: number }> => {
    let text: string;
    let mtimeMs: number;
    try {
      mtimeMs = statSync(path).mtimeMs;
      text = readFileSync(path, 'utf8');
    } catch (error) {
      return fail('invalid-argument', `cannot read the tokens file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    const credentials = parseTokensFile(text);
    return credentials.ok ? ok({ credentials: credentials.value, mtimeMs }) : err({ ...credentials.error, message: `${path}: ${credentials.error.message}` });
  };
  const first = read();
  if (!first.ok) return first;
  let current = first.value;
  let checkedMs = now();
  const fresh = (): Credentials => {
    if (now() - checkedMs < 1_000) return current.credentials;
    checkedMs = now();
    let mtimeMs: number;
    try {
      mtimeMs = statSync(path).mtimeMs;
    } catch {
      return current.credentials;
    }
    if (mtimeMs === current.mtimeMs) return current.credentials;
    const next = read();
    if (next.ok) current = next.value;
    else options.onReloadFailed?.(next.error.message);
    return current.credentials;
  };
  const unauthenticated = (message: string): Result<Caller> => fail('unauthenticated', message);
  const valid = (entry: Entry | undefined, what: string): Result<Caller> => {
    if (entry === undefined) return unauthenticated(`unknown ${what}`);
    if (entry.expiresMs !== undefined && entry.expiresMs <= now()) return unauthenticated(`the ${what} of ${entry.caller.identity} expired`);
    return ok(entry.caller);
  };
  return ok({
    authenticate(metadata, auth) {
      const credentials = fresh();
      const header = metadata.get('authorization');
      if (header.length > 1) return unauthenticated('more than one authorization header');
      const value = header[0];
      if (value !== undefined) {
        const match = typeof value === 'string' ? /^Bearer ([\x21-\x7e]+)$/.exec(value) : null;
        if (match === null) return unauthenticated('malformed authorization header: expected "Bearer <token>"');
        return valid(credentials.byTokenHash.get(sha256Hex(match[1] ?? '')), 'token');
      }
      // The TLS layer already checked the certificate against the client CA; only its name is ours to map.
      const cn = auth.sslPeerCertificate?.subject?.CN;
      if (typeof cn === 'string' && cn !== '') return valid(credentials.byCn.get(cn), 'client certificate');
      return unauthenticated('no credentials: send "authorization: Bearer <token>" or a client certificate');
    },
  });
}

const RANK: Readonly<Record<Role, number>> = { viewer: 0, operator: 1, admin: 2 };

/** OK, or PERMISSION_DENIED naming the role the method needs. */
export function authorize(caller: Caller, method: string): Result<void> {
  const needed = METHOD_ROLES[method];
  if (needed === undefined) return fail('permission-denied', `${method} is not open to any role`);
  return RANK[caller.role] >= RANK[needed] ? ok(undefined) : fail('permission-denied', `${caller.identity} (${caller.role}) may not call ${method}: it needs the ${needed} role`);
}

/** The caller of the call in progress (set by the server around each handler). */
export const currentCaller = new AsyncLocalStorage<Caller>();

const planMissing = (id: string): Result<never> => fail('not-found', `plan ${id} does not exist`);
const checkpointMissing = (id: CheckpointId): Result<never> => fail('not-found', `checkpoint ${id} does not exist`);

/**
 * The API as a caller bound to one tenant sees it. Without a caller in `currentCaller` (an
 * unauthenticated server) or for a caller of every tenant, it is the API itself.
 */
export function tenantScoped(api: CoordinatorApi): CoordinatorApi {
  const scope = (): string | undefined => {
    const tenant = currentCaller.getStore()?.tenant;
    return tenant === undefined || tenant === ALL_TENANTS ? undefined : tenant;
  };
  /** The plan's tenant is the caller's; a plan of another tenant is as missing as one that is not there. */
  const ownPlan = async (tenant: string, planId: string): Promise<Result<void>> => {
    const plan = await api.plans.get(planId);
    if (!plan.ok) return plan.error.kind === 'not-found' ? planMissing(planId) : plan;
    return plan.value.tenant === tenant ? ok(undefined) : planMissing(planId);
  };
  const ownCheckpoint = async (tenant: string, id: CheckpointId): Promise<Result<void>> => {
    const record = await api.checkpoints.get(id);
    if (!record.ok) return record;
    return record.value.tenant === tenant ? ok(undefined) : checkpointMissing(id);
  };
  /** A call that names a plan or checkpoint runs once its owner is the caller's tenant. */
  const guarded =
    <A extends [unknown, ...unknown[]], T>(check: (tenant: string, first: A[0]) => Promise<Result<void>>, call: (...args: A) => Promise<Result<T>>) =>
    async (...args: A): Promise<Result<T>> => {
      const tenant = scope();
      if (tenant !== undefined) {
        const owned = await check(tenant, args[0]);
        if (!owned.ok) return owned;
      }
      return call(...args);
    };
  const onCheckpoint = (tenant: string, id: CheckpointId): Promise<Result<void>> => ownCheckpoint(tenant, id);
  const onPlan = (tenant: string, planId: string): Promise<Result<void>> => ownPlan(tenant, planId);
  /** Another tenant's listing is an empty one; no tenant named is the caller's own. */
  const listTenant = (asked: string | undefined): { tenant: string | undefined; empty: boolean } => {
    const tenant = scope();
    if (tenant === undefined) return { tenant: asked, empty: false };
    return { tenant, empty: asked !== undefined && asked !== '' && asked !== tenant };
  };
  const emptyPage = <T>(): Result<Page<T>> => ok({ items: [], nextPageToken: '' });

  const plans: PlansApi = {
    register: async (plan, expectedRevision) => {
      const tenant = scope();
      if (tenant !== undefined) {
        if (plan.tenant !== tenant) return fail('permission-denied', `a caller of tenant ${tenant} may not register a plan of tenant ${plan.tenant}`);
        const existing = await api.plans.get(plan.id);
        // Plan ids are one namespace: an id another tenant holds cannot be taken over (docs/security.md).
        if (existing.ok && existing.value.tenant !== tenant) return fail('already-exists', `plan id ${plan.id} is taken; choose another`);
      }
      return api.plans.register(plan, expectedRevision);
    },
    get: guarded(onPlan, api.plans.get.bind(api.plans)),
    list: async (asked, pageSize, pageToken) => {
      const { tenant, empty } = listTenant(asked);
      return empty ? emptyPage() : api.plans.list(tenant, pageSize, pageToken);
    },
    delete: guarded(onPlan, api.plans.delete.bind(api.plans)),
  };

  const cp = api.checkpoints;
  const checkpoints: CheckpointsApi = {
    take: guarded((t, r: TakeSnapshotRequest) => ownPlan(t, r.planId), cp.take.bind(cp)),
    begin: guarded((t, r: BeginCheckpointRequest) => ownPlan(t, r.planId), cp.begin.bind(cp)),
    get: guarded(onCheckpoint, cp.get.bind(cp)),
    list: async (filter, pageSize, pageToken) => {
      const tenant = scope();
      if (tenant === undefined) return api.checkpoints.list(filter, pageSize, pageToken);
      if (filter.planId !== undefined) {
        const owned = await ownPlan(tenant, filter.planId);
        return owned.ok ? api.checkpoints.list(filter, pageSize, pageToken) : owned.error.kind === 'not-found' ? emptyPage() : owned;
      }
      // Pages are filtered, so one may hold fewer items than asked; the token goes on as before.
      const page = await api.checkpoints.list(filter, pageSize, pageToken);
      return page.ok ? ok({ items: page.value.items.filter((c) => c.tenant === tenant), nextPageToken: page.value.nextPageToken }) : page;
    },
    watch: guarded(onCheckpoint, cp.watch.bind(cp)),
    rollback: guarded((t, r: { checkpointId: CheckpointId }) => ownCheckpoint(t, r.checkpointId), cp.rollback.bind(cp)),
    restore: guarded((t, r: RestoreRequest) => ownCheckpoint(t, r.checkpointId), cp.restore.bind(cp)),
    verify: guarded(onCheckpoint, cp.verify.bind(cp)),
    delete: guarded(onCheckpoint, cp.delete.bind(cp)),
    cancel: guarded(onCheckpoint, cp.cancel.bind(cp)),
    finish: guarded((t, r: FinishCheckpointRequest) => ownCheckpoint(t, r.checkpointId), cp.finish.bind(cp)),
    pin: guarded(onCheckpoint, cp.pin.bind(cp)),
  };

  const scopedPolicies = (p: PoliciesApi): PoliciesApi => ({
    create: guarded((t, policy: PolicyInput) => ownPlan(t, policy.planId), p.create.bind(p)),
    get: guarded(onPlan, p.get.bind(p)),
    list: async (asked, pageSize, pageToken) => {
      const { tenant, empty } = listTenant(asked);
      return empty ? emptyPage() : p.list(tenant, pageSize, pageToken);
    },
    update: guarded((t, policy: PolicyInput) => ownPlan(t, policy.planId), p.update.bind(p)),
    delete: guarded(onPlan, p.delete.bind(p)),
  });

  /** A site's copies are filtered by the copied record's tenant, which the site itself holds. */
  const scopedSites = (s: SitesApi): SitesApi => ({
    copy: guarded(onCheckpoint, s.copy.bind(s)),
    listCopies: async (site, filter) => {
      const tenant = scope();
      return s.listCopies(site, tenant === undefined ? filter : { ...filter, tenant });
    },
    restoreFrom: async (request, from, asked) => s.restoreFrom(request, from, scope() ?? asked),
  });

  return {
    plans,
    checkpoints,
    agents: {
      list: async (asked) => {
        const { tenant, empty } = listTenant(asked);
        return empty ? ok([]) : api.agents.list(tenant);
      },
    },
    ...(api.policies !== undefined ? { policies: scopedPolicies(api.policies) } : {}),
    ...(api.sites !== undefined ? { sites: scopedSites(api.sites) } : {}),
  };
}
