/**
 * The API section: every RPC of the Coordinator service called the ways an attacker would call it,
 * each call one expected denial:
 *
 * - without credentials, with an unknown token, an expired one, or a header that is not
 *   `Bearer <token>`: UNAUTHENTICATED;
 * - by each role of each tenant on each method the role may not call: PERMISSION_DENIED. Which role
 *   a method needs is read from docs/security.md's table (the contract), not from the code under
 *   test; a method the table does not name is expected refused to every role;
 * - by each tenant's admin naming the other tenant's plan or checkpoint: the very answer an id that
 *   does not exist gets (NOT_FOUND and its message; an empty page for a listing filtered by a plan),
 *   so existence does not leak, and nothing of the other tenant's in it; registering the other
 *   tenant's plan: PERMISSION_DENIED; listing the other tenant (or every tenant): none of its items.
 *
 * A denial is missing when the call got anything else, served or not: each is reported.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { ROLES, type Role } from '../../coordinator/grpc/auth.js';
import { codeName } from '../../coordinator/grpc/client.js';
import { callRpc, coordinatorRpcs, requestFor, type CallOutcome, type Rpc, type RequestTarget } from './rpc.js';
import { otherTenant, TENANTS, type SecuredSystem, type Tenant } from './system.js';

const SECURITY_DOC = fileURLToPath(new URL('../../docs/security.md', import.meta.url));
const API_HEADING = '## The gRPC API';
const ROLES_HEADING = '### What each credential allows';
const CALL_TIMEOUT_MS = 15_000;
/** Ids nothing has: the answer a foreign id must not be told apart from. */
const MISSING_PLAN_ID = 'no-such-plan-of-anyone';
const MISSING_CHECKPOINT_ID = 987_654_321;

export interface ApiFinding {
  readonly case: string;
  readonly method: string;
  readonly caller: string;
  readonly expected: string;
  readonly got: string;
  readonly message: string;
}

export interface ApiResult {
  readonly methods: number;
  readonly expected: number;
  readonly missing: number;
  /** The missing denials (the first FINDINGS_MAX). */
  readonly findings: readonly ApiFinding[];
}

const FINDINGS_MAX = 50;

/**
 * The least role of each method named in the table of roles of docs/security.md's gRPC API
 * section: the first row naming it (each row adds to the one before: "the viewer's, and ...").
 */
export function documentedRoles(markdown: string): Map<string, Role> {
  const roles = new Map<string, Role>();
  const lines = markdown.split('\n');
  const api = lines.findIndex((l) => l.trim() === API_HEADING);
  const start = api < 0 ? -1 : lines.findIndex((l, i) => i > api && l.trim() === ROLES_HEADING);
  if (start < 0) throw new Error(`docs/security.md has no heading "${ROLES_HEADING}" under "${API_HEADING}"`);
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith('#')) break;
    const cells = line.split('|').map((c) => c.trim());
    const role = ROLES.find((r) => cells[1] === `\`${r}\``);
    if (role === undefined) continue;
    for (const m of (cells[2] ?? '').matchAll(/`([A-Za-z]+)`/g)) if (!roles.has(m[1] as string)) roles.set(m[1] as string, role);
  }
  if (roles.size === 0) throw new Error(`docs/security.md: no role table under "${ROLES_HEADING}"`);
  return roles;
}

function rank(role: Role): number {
  return ROLES.indexOf(role);
}

export async function apiSection(system: SecuredSystem, checkpoints: Readonly<Record<Tenant, number>>, log: Logger): Promise<ApiResult> {
  const rpcs = coordinatorRpcs();
  const needed = documentedRoles(readFileSync(SECURITY_DOC, 'utf8'));
  for (const rpc of rpcs) if (!needed.has(rpc.name)) log.warn({ method: rpc.name }, 'docs/security.md names no role for this method: every role is expected to be refused');
  let expected = 0;
  let missing = 0;
  const findings: ApiFinding[] = [];
  const target = (tenant: Tenant): RequestTarget => ({ tenant, plan: system.plans[tenant], checkpointId: checkpoints[tenant] });
  const call = (rpc: Rpc, request: unknown, authorization: string | undefined): Promise<CallOutcome> => callRpc(system.address, system.tls, rpc, request, authorization, CALL_TIMEOUT_MS);
  const bearer = (token: string): string => `Bearer ${token}`;
  /** One expected denial: `holds` says whether the outcome is the denial. */
  const expect = (what: { case: string; rpc: Rpc; caller: string; expected: string }, outcome: CallOutcome, holds: boolean): void => {
    expected += 1;
    if (holds) return;
    missing += 1;
    const finding = { case: what.case, method: what.rpc.name, caller: what.caller, expected: what.expected, got: codeName(outcome.code), message: outcome.message };
    log.error(finding, 'denial missing');
    if (findings.length < FINDINGS_MAX) findings.push(finding);
  };

  const own = target(TENANTS[0]);
  const firstAdmin = system.tokens.byTenant[TENANTS[0]].admin;
  const badCredentials: readonly [string, string | undefined][] = [
    ['no credentials', undefined],
    ['unknown token', bearer('not-a-token-of-this-coordinator-0123456789')],
    ['expired token', bearer(system.tokens.expired)],
    ['malformed authorization header', `Basic ${firstAdmin}`],
  ];
  for (const rpc of rpcs) {
    for (const [name, authorization] of badCredentials) {
      const outcome = await call(rpc, requestFor(rpc, own), authorization);
      expect({ case: name, rpc, caller: 'anonymous', expected: 'UNAUTHENTICATED' }, outcome, outcome.code === GrpcStatus.UNAUTHENTICATED);
    }
  }

  for (const tenant of TENANTS) {
    for (const role of ROLES) {
      for (const rpc of rpcs) {
        const least = needed.get(rpc.name);
        if (least !== undefined && rank(role) >= rank(least)) continue;
        const outcome = await call(rpc, requestFor(rpc, target(tenant)), bearer(system.tokens.byTenant[tenant][role]));
        expect({ case: `role ${role}`, rpc, caller: `${tenant}-${role}`, expected: 'PERMISSION_DENIED' }, outcome, outcome.code === GrpcStatus.PERMISSION_DENIED);
      }
    }
  }

  for (const tenant of TENANTS) {
    const other = otherTenant(tenant);
    const foreign = target(other);
    const caller = `${tenant}-admin`;
    const token = bearer(system.tokens.byTenant[tenant].admin);
    const mentionsOther = (o: CallOutcome): boolean => JSON.stringify(o.responses).includes(other);
    for (const rpc of rpcs) {
      if (rpc.carriesPlan) {
        const outcome = await call(rpc, requestFor(rpc, foreign), token);
        expect({ case: "the other tenant's plan", rpc, caller, expected: 'PERMISSION_DENIED' }, outcome, outcome.code === GrpcStatus.PERMISSION_DENIED);
      } else if (rpc.namesItem) {
        const outcome = await call(rpc, requestFor(rpc, foreign), token);
        const absent = await call(rpc, requestFor(rpc, { tenant: other, plan: { ...foreign.plan, id: MISSING_PLAN_ID }, checkpointId: MISSING_CHECKPOINT_ID }), token);
        const bare = (message: string, ids: readonly string[]): string => ids.reduce((m, id) => m.split(id).join('<id>'), message);
        const alike = bare(outcome.message, [foreign.plan.id, String(foreign.checkpointId)]) === bare(absent.message, [MISSING_PLAN_ID, String(MISSING_CHECKPOINT_ID)]);
        // NOT_FOUND for a call about one item; a listing filtered by a plan is an empty page, as for a missing plan.
        expect(
          { case: "the other tenant's ids", rpc, caller, expected: `as for a missing id: ${codeName(absent.code)}: ${absent.message}` },
          outcome,
          outcome.code === absent.code && alike && !mentionsOther(outcome) && (absent.code === GrpcStatus.NOT_FOUND || (absent.code === GrpcStatus.OK && !rpc.definition.responseStream)),
        );
      } else if (rpc.listsTenant) {
        for (const [name, asked] of [["listing the other tenant's", other], ['listing every tenant', '']] as const) {
          const outcome = await call(rpc, { ...requestFor(rpc, foreign), tenant: asked }, token);
          expect({ case: name, rpc, caller, expected: `served, no item of ${other}` }, outcome, outcome.code === GrpcStatus.OK && !mentionsOther(outcome));
        }
      }
    }
  }
  log.info({ methods: rpcs.length, expected, missing }, 'API section done');
  return { methods: rpcs.length, expected, missing, findings };
}
