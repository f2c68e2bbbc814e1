/**
 * snapctl's commands over a coordinator client. Everything with a decision in it is here or in
 * args.ts; snapctl.ts only wires the real process, file system and gRPC client in, so tests can
 * run the whole CLI in memory.
 */
import type { Page } from '../api.js';
import type { CheckpointView } from '../checkpoint-view.js';
import { clientOptionsDefault, type CallResult, type CoordinatorClient } from '../grpc/client.js';
import type { PlanInput } from '../model.js';
import { parseCommandLine, type Command, type ConnectionOptions, type GlobalOptions } from './args.js';
import { errorText } from './errors.js';
import { EXIT } from './help.js';
import { parsePlanFile } from './plan-file.js';
import { agentsTable, auditTable, CAPTURED_NOTHING, capturedNothing, checkpointsTable, checkpointText, levelText, planText, plansTable, policiesTable, policyText, progressText, siteCopiesTable, statsText, verifyText } from './render.js';
import { completionScript } from './completion.js';
import { ageText, durationText, timeText } from './table.js';
import { WatchView } from './watch-view.js';
import { failoverClient } from './failover.js';
import { toYaml } from './yaml.js';
import type { AuditEntry } from '../audit.js';

export type SnapctlClient = Pick<
  CoordinatorClient,
  | 'registerPlan'
  | 'getPlan'
  | 'listPlans'
  | 'deletePlan'
  | 'takeSnapshot'
  | 'getCheckpoint'
  | 'listCheckpoints'
  | 'watchCheckpoint'
  | 'rollback'
  | 'restore'
  | 'verify'
  | 'deleteCheckpoint'
  | 'cancelCheckpoint'
  | 'pinCheckpoint'
  | 'listAgents'
  | 'createPolicy'
  | 'getPolicy'
  | 'listPolicies'
  | 'updatePolicy'
  | 'deletePolicy'
  | 'planStats'
  | 'copyCheckpoint'
  | 'listCheckpointCopies'
  | 'close'
>;

export interface SnapctlIo {
  stdout(text: string): void;
  stderr(text: string): void;
  readonly stdoutIsTTY: boolean;
  /** Throws when the file cannot be read. */
  readFile(path: string): string;
  now(): number;
  /** Calls `handler` on Ctrl-C until the returned function is called. */
  onInterrupt(handler: () => void): () => void;
}

/** Pages fetched per call when a command gathers a whole listing. */
const LIST_PAGE_SIZE = 100;

class Failed extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

/** What snapctl connects with, files read: TLS material (PEM text) and a bearer token. */
export interface Connection {
  readonly token?: string;
  /** Absent: plaintext. */
  readonly tls?: { readonly ca?: string; readonly cert?: string; readonly key?: string };
  readonly tlsServerName?: string;
}

/** Reads `snapctl audit`'s entries from the `snap-audit` stream of this NATS. */
export type AuditReader = (natsUrl: string, filter: { tenant?: string; sinceMs?: number }) => Promise<AuditEntry[]>;

const LOOPBACK = /^(127\.[0-9.]+|localhost|\[::1\]):[0-9]+$/;

export async function runSnapctl(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  io: SnapctlIo,
  connect: (address: string, connection: Connection) => SnapctlClient,
  readAuditLog?: AuditReader,
): Promise<number> {
  const parsed = parseCommandLine(argv, env);
  if (!parsed.ok) {
    io.stderr(`snapctl: ${parsed.error}\nSee \`snapctl ${parsed.topic === 'main' ? '' : `${parsed.topic} `}--help\`.\n`);
    return EXIT.usage;
  }
  const { global, command, connection: connectionOptions } = parsed;
  if (command.kind === 'help') {
    io.stdout(command.text);
    return EXIT.ok;
  }
  if (command.kind === 'completion') {
    io.stdout(completionScript(command.shell));
    return EXIT.ok;
  }
  // Read input files before connecting: a bad file is a usage error with nothing sent.
  let planFile: ReturnType<typeof parsePlanFile> | undefined;
  if (command.kind === 'plans-register') {
    let text: string;
    try {
      text = io.readFile(command.file);
    } catch (error) {
      io.stderr(`snapctl: cannot read ${command.file}: ${error instanceof Error ? error.message : String(error)}\n`);
      return EXIT.usage;
    }
    planFile = parsePlanFile(text, command.file);
    if (!planFile.ok) {
      io.stderr(`snapctl: ${planFile.error}\n`);
      return EXIT.usage;
    }
  }
  if (command.kind === 'audit') return audit(command, global, io, readAuditLog);
  const connection = readConnection(global, connectionOptions, io);
  if (connection === undefined) return EXIT.usage;
  // Several coordinators (a leader and its standbys): each call goes to the one that serves it.
  const addresses = global.address.split(',').map((a) => a.trim());
  const open = (address: string): SnapctlClient => connect(address, connection);
  const client = addresses.length > 1 ? failoverClient(addresses, open) : open(global.address);
  try {
    return await run(command, global, io, client, planFile?.ok === true ? planFile.plan : undefined);
  } catch (error) {
    if (error instanceof Failed) return error.code;
    throw error;
  } finally {
    client.close();
  }
}

/**
 * The connection's files, read before anything is sent; undefined after a usage error was printed.
 * A token goes over plaintext only to this machine, or with --insecure (which says so on stderr).
 */
function readConnection(global: GlobalOptions, c: ConnectionOptions, io: SnapctlIo): Connection | undefined {
  const files: Record<string, string> = {};
  for (const [what, path] of [['ca', c.caFile], ['cert', c.certFile], ['key', c.keyFile]] as const) {
    if (path === undefined) continue;
    try {
      files[what] = io.readFile(path);
    } catch (error) {
      io.stderr(`snapctl: cannot read --${what} ${path}: ${error instanceof Error ? error.message : String(error)}\n`);
      return undefined;
    }
  }
  const tls = Object.keys(files).length > 0;
  if (!tls && c.tlsServerName !== undefined) {
    io.stderr('snapctl: --tls-server-name is for TLS: give --ca too\n');
    return undefined;
  }
  if (!tls && c.token !== undefined) {
    const remote = global.address.split(',').map((a) => a.trim()).filter((a) => !LOOPBACK.test(a));
    if (remote.length > 0 && !c.insecure) {
      io.stderr(`snapctl: refusing to send a token in plaintext to ${remote.join(', ')}: give --ca (TLS), or --insecure to send it anyway\n`);
      return undefined;
    }
    if (remote.length > 0) io.stderr(`snapctl: WARNING: --insecure: the token goes in plaintext to ${remote.join(', ')}; anyone on the path can read and reuse it\n`);
  }
  return { ...(c.token !== undefined ? { token: c.token } : {}), ...(tls ? { tls: files } : {}), ...(c.tlsServerName !== undefined ? { tlsServerName: c.tlsServerName } : {}) };
}

async function audit(command: Extract<Command, { kind: 'audit' }>, global: GlobalOptions, io: SnapctlIo, read: AuditReader | undefined): Promise<number> {
  const cx: Cx = { io, global, command: command.kind };
  if (read === undefined) throw new Error('no audit reader');
  let entries: AuditEntry[];
  try {
    entries = await read(command.natsUrl, {
      ...(command.tenant !== undefined ? { tenant: command.tenant } : {}),
      ...(command.sinceMs !== undefined ? { sinceMs: io.now() - command.sinceMs } : {}),
    });
  } catch (error) {
    io.stderr(`snapctl: cannot read the audit stream at ${command.natsUrl}: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.coordinator;
  }
  out(cx, { entries }, auditTable(entries));
  return EXIT.ok;
}

/** What a command needs to print: where to, in which form, and what to say in its errors. */
interface Cx {
  readonly io: SnapctlIo;
  readonly global: GlobalOptions;
  readonly command: Command['kind'];
}

/** `-o json` and `-o yaml` print the document; text and wide the text. */
function out(cx: Cx, json: unknown, text: string): void {
  const o = cx.global.output;
  cx.io.stdout(o === 'json' ? `${JSON.stringify(json, null, 2)}\n` : o === 'yaml' ? toYaml(json) : text);
}

/**
 * Reports a failure in one place: with --json a JSON document on stdout (where a script reads it),
 * else a line on stderr. `code` is the gRPC code name, or what snapctl itself ran into; `message` the
 * coordinator's own words (default: `text`); `text` the line shown to a person.
 */
function report(cx: Cx, code: string, text: string, message: string = text): void {
  if (cx.global.output === 'json') cx.io.stdout(`${JSON.stringify({ error: { code, message, text } })}\n`);
  else if (cx.global.output === 'yaml') cx.io.stdout(toYaml({ error: { code, message, text } }));
  else cx.io.stderr(`snapctl: ${text}\n`);
}

/** The value of a call, or the error reported and Failed(1) thrown. */
function check<T>(cx: Cx, result: CallResult<T>): T {
  if (result.ok) return result.value;
  const callTimeoutMs = cx.command === 'rollback' || cx.command === 'restore' ? clientOptionsDefault.restoreCallTimeoutMs : clientOptionsDefault.callTimeoutMs;
  report(cx, result.error.codeName, errorText(result.error, { address: cx.global.address, command: cx.command, callTimeoutMs }), result.error.message);
  throw new Failed(EXIT.coordinator);
}

/** Follows page tokens until `limit` items or the last page. */
async function collect<T>(limit: number, fetch: (pageSize: number, token: string) => Promise<Page<T>>): Promise<T[]> {
  const items: T[] = [];
  let token = '';
  do {
    const page = await fetch(Math.min(LIST_PAGE_SIZE, limit - items.length), token);
    items.push(...page.items);
    token = page.nextPageToken;
  } while (token !== '' && items.length < limit);
  return items;
}

async function run(command: Exclude<Command, { kind: 'help' | 'completion' | 'audit' }>, global: GlobalOptions, io: SnapctlIo, client: SnapctlClient, plan: PlanInput | undefined): Promise<number> {
  const cx: Cx = { io, global, command: command.kind };
  switch (command.kind) {
    case 'plans-list': {
      const plans = await collect(Number.MAX_SAFE_INTEGER, async (pageSize, token) => check(cx, await client.listPlans(command.tenant, pageSize, token)));
      out(cx, { plans }, plansTable(plans));
      return EXIT.ok;
    }
    case 'plans-show': {
      const p = check(cx, await client.getPlan(command.planId));
      out(cx, p, planText(p));
      return EXIT.ok;
    }
    case 'plans-register': {
      if (plan === undefined) throw new Error('plan file not read');
      let revision = command.revision ?? 0;
      if (command.replace) {
        const current = await client.getPlan(plan.id);
        if (current.ok) revision = current.value.revision;
        else if (current.error.codeName !== 'NOT_FOUND') check(cx, current);
      }
      const stored = check(cx, await client.registerPlan(plan, revision));
      out(cx, stored, `plan ${stored.id} ${revision === 0 ? 'registered' : 'replaced'} (revision ${stored.revision})\n`);
      return EXIT.ok;
    }
    case 'plans-delete':
      check(cx, await client.deletePlan(command.planId, command.withCheckpoints));
      out(cx, { deleted: command.planId }, `plan ${command.planId} deleted${command.withCheckpoints ? ' with its checkpoints' : ''}\n`);
      return EXIT.ok;
    case 'take': {
      if (command.request.level === 'crash') {
        // A crash checkpoint of a plan without volumes captures only what freeze hooks do: said
        // before it starts, and again on the checkpoint if no hook ran (render.ts capturedNothing).
        const p = await client.getPlan(command.request.planId);
        if (p.ok && p.value.volumes.length === 0) {
          io.stderr(`snapctl: warning: plan ${p.value.id} has no volumes: a crash-level checkpoint captures only what the servers' freeze hooks save\n`);
        }
      }
      const cp = check(cx, await client.takeSnapshot(command.request));
      if (!command.watch) {
        out(cx, cp, `checkpoint ${cp.id} started (plan ${cp.planId}, level ${cp.levelRequested})\n`);
        return EXIT.ok;
      }
      if (!global.json) io.stdout(`checkpoint ${cp.id} started (plan ${cp.planId}, level ${cp.levelRequested})\n`);
      return watch(cp.id, cx, client);
    }
    case 'list': {
      const filter = { ...(command.planId !== undefined ? { planId: command.planId } : {}), ...(command.states !== undefined ? { states: command.states } : {}) };
      const items = await collect(command.limit, async (pageSize, pageToken) => check(cx, await client.listCheckpoints({ filter, pageSize, pageToken })));
      out(cx, { checkpoints: items }, checkpointsTable(items, io.now(), global.output === 'wide'));
      return EXIT.ok;
    }
    case 'show': {
      const c = check(cx, await client.getCheckpoint(command.id));
      out(cx, c, checkpointText(c));
      return EXIT.ok;
    }
    case 'rollback': {
      const r = check(cx, await client.rollback(command.id, command.skipSafety, command.idempotencyKey));
      const safety = r.safetyCheckpointId === 0 ? 'no safety checkpoint' : `safety checkpoint ${r.safetyCheckpointId}`;
      out(cx, r, `rolled back to checkpoint ${command.id}: plan now in epoch ${r.epoch} (${safety})\n`);
      return EXIT.ok;
    }
    case 'restore': {
      const r = check(cx, await client.restore(command.request, command.fromSite));
      const from = command.fromSite === undefined ? '' : ` from site ${command.fromSite.site} (imported here as checkpoint ${r.restoredCheckpointId})`;
      out(cx, r, `restored checkpoint ${command.request.checkpointId}${from}: targets start in epoch ${r.epoch}\n`);
      return EXIT.ok;
    }
    case 'copy': {
      const c = check(cx, await client.copyCheckpoint(command.id, command.site));
      const lag = c.state === 'copied' ? `, ${durationText(c.lagMs)} after it completed` : '';
      out(cx, { checkpoint: command.id, ...c }, `checkpoint ${command.id} copied to site ${c.site} and verified there${lag}\n`);
      return EXIT.ok;
    }
    case 'copies': {
      const copies = check(cx, await client.listCheckpointCopies(command.site, command.planId));
      out(cx, { copies }, siteCopiesTable(command.site, copies));
      return EXIT.ok;
    }
    case 'verify': {
      const report = check(cx, await client.verify(command.id));
      out(cx, { id: command.id, ...report }, verifyText(command.id, report));
      return report.ok ? EXIT.ok : EXIT.verifyFailed;
    }
    case 'delete': {
      const d = check(cx, await client.deleteCheckpoint(command.id, command.idempotencyKey));
      const volumes = d.deletedVolumeSnapshots.length === 0 ? '' : `, ${d.deletedVolumeSnapshots.length} volume snapshot(s): ${d.deletedVolumeSnapshots.join(', ')}`;
      out(cx, { deleted: command.id, ...d }, `checkpoint ${command.id} deleted with ${d.deletedObjects} stored object(s)${volumes}\n`);
      return EXIT.ok;
    }
    case 'cancel': {
      const c = check(cx, await client.cancelCheckpoint(command.id, command.idempotencyKey));
      out(cx, c, `checkpoint ${c.id} ${c.state === 'aborted' ? 'aborted' : `cancelled: ${c.state} (snapctl show ${c.id} follows it to aborted)`}\n`);
      return EXIT.ok;
    }
    case 'pin':
    case 'unpin': {
      const c = check(cx, await client.pinCheckpoint(command.id, command.kind === 'pin', command.idempotencyKey));
      out(cx, c, `checkpoint ${c.id} ${c.pinned ? 'pinned: retention keeps it' : 'unpinned'}\n`);
      return EXIT.ok;
    }
    case 'agents': {
      const agents = check(cx, await client.listAgents(command.tenant));
      out(cx, { agents }, agentsTable(agents, io.now()));
      return EXIT.ok;
    }
    case 'policy-create': {
      const p = check(cx, await client.createPolicy(command.policy));
      out(cx, p, `policy of plan ${p.planId} created (revision ${p.revision})\n${policyText(p)}`);
      return EXIT.ok;
    }
    case 'policy-update': {
      const p = check(cx, await client.updatePolicy(command.policy, command.revision ?? 0));
      out(cx, p, `policy of plan ${p.planId} replaced (revision ${p.revision})\n${policyText(p)}`);
      return EXIT.ok;
    }
    case 'policy-show': {
      const p = check(cx, await client.getPolicy(command.planId));
      out(cx, p, policyText(p));
      return EXIT.ok;
    }
    case 'policy-list': {
      const policies = await collect(Number.MAX_SAFE_INTEGER, async (pageSize, token) => check(cx, await client.listPolicies(command.tenant, pageSize, token)));
      out(cx, { policies }, policiesTable(policies, io.now()));
      return EXIT.ok;
    }
    case 'policy-delete':
      check(cx, await client.deletePolicy(command.planId));
      out(cx, { deleted: command.planId }, `policy of plan ${command.planId} deleted: no periodic checkpoints from it, the coordinator's default retention\n`);
      return EXIT.ok;
    case 'stats': {
      const st = check(cx, await client.planStats(command.planId));
      out(cx, st, statsText(st));
      return EXIT.ok;
    }
    case 'watch':
      return watchMany(command, cx, client);
  }
}

/**
 * `watch --plan ID | --tenant T`: every checkpoint of the plan (or of the tenant's plans) as it
 * changes, one line per change, with the time since the previous line, until Ctrl-C. Polls
 * ListCheckpoints every interval: the API streams one checkpoint at a time.
 */
async function watchMany(command: Extract<Command, { kind: 'watch' }>, cx: Cx, client: SnapctlClient): Promise<number> {
  const { io, global } = cx;
  const seen = new Map<number, string>();
  let stopped = false;
  let wake: (() => void) | undefined;
  const stopListening = io.onInterrupt(() => {
    stopped = true;
    wake?.();
  });
  let previousAt: number | undefined;
  let first = true;
  try {
    while (!stopped) {
      const planIds =
        command.planId !== undefined
          ? [command.planId]
          : (await collect(Number.MAX_SAFE_INTEGER, async (pageSize, token) => check(cx, await client.listPlans(command.tenant, pageSize, token)))).map((p) => p.id);
      const shown: CheckpointView[] = [];
      for (const planId of planIds) {
        const page = check(cx, await client.listCheckpoints({ filter: { planId }, pageSize: WATCH_PAGE_SIZE, pageToken: '' }));
        shown.push(...page.items);
      }
      const now = io.now();
      if (first && !global.json) {
        const scope = command.planId !== undefined ? `plan ${command.planId}` : `tenant ${command.tenant ?? ''} (${planIds.length} plan${planIds.length === 1 ? '' : 's'})`;
        io.stdout(`watching ${scope} every ${durationText(command.intervalMs)}; Ctrl-C ends\n`);
      }
      for (const c of shown.sort((a, b) => a.id - b.id)) {
        const key = `${c.state} ${progressText(c)}`;
        if (seen.get(c.id) === key) continue;
        seen.set(c.id, key);
        // The first look shows what is in flight and the newest of each plan, not the whole history.
        if (first && !isInFlight(c) && shown.some((o) => o.planId === c.planId && o.id > c.id)) continue;
        const since = previousAt === undefined ? '' : `+${durationText(Math.max(0, now - previousAt))}`;
        previousAt = now;
        io.stdout(global.json ? `${JSON.stringify({ atUnixMs: now, checkpoint: c })}\n` : watchLine(c, now, since));
      }
      first = false;
      if (stopped) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, command.intervalMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    stopListening();
  }
  return EXIT.ok;
}

const WATCH_PAGE_SIZE = 50;

function isInFlight(c: CheckpointView): boolean {
  return c.state !== 'completed' && c.state !== 'aborted';
}

function watchLine(c: CheckpointView, now: number, since: string): string {
  const took = c.state === 'completed' ? `  took ${c.stats.durationMs > 0 ? durationText(c.stats.durationMs) : '-'}` : '';
  const note = capturedNothing(c) ? `  ${CAPTURED_NOTHING}` : c.state === 'aborted' || c.state === 'aborting' ? `  ${c.failureReason ?? ''}${c.failureDetail !== undefined ? `: ${c.failureDetail}` : ''}` : '';
  return `${timeText(now)} ${since.padStart(8)}  ${c.planId}  checkpoint ${c.id}  ${levelText(c)}  ${c.state}  ${progressText(c)}  age ${ageText(now - c.createdAtUnixMs)}${took}${note}\n`;
}

async function watch(id: number, cx: Cx, client: SnapctlClient): Promise<number> {
  const { io, global } = cx;
  const view = new WatchView(io.stdoutIsTTY ? 'tty' : 'lines', io.now);
  let last: CheckpointView | undefined;
  let interrupted = false;
  const stream = client.watchCheckpoint(id, (event) => {
    last = event.checkpoint;
    io.stdout(global.json ? `${JSON.stringify(event)}\n` : view.onEvent(event));
  });
  const stopListening = io.onInterrupt(() => {
    interrupted = true;
    stream.cancel();
  });
  const result = await stream.done;
  stopListening();
  if (interrupted) {
    report(cx, 'INTERRUPTED', `stopped watching; checkpoint ${id} goes on (snapctl show ${id})`);
    return EXIT.interrupted;
  }
  if (!result.ok) check(cx, result);
  if (!global.json) io.stdout(view.finish());
  if (last?.state === 'completed') return EXIT.ok;
  if (last?.state === 'aborted') return EXIT.aborted;
  report(cx, 'WATCH_ENDED', `the watch of checkpoint ${id} ended while it was ${last?.state ?? 'unknown'}`);
  return EXIT.coordinator;
}
