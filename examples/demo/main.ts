/**
 * The main job (`npm start`): a whole live system on this machine. It starts nats-server with
 * JetStream in a temporary directory (unless NATS_URL is set), the coordinator, and three agents as
 * separate processes hosting token-transfer apps on a graph with a diamond and a cycle
 * (APP1->APP2->APP3, APP1->APP3, APP3->APP1). While traffic flows it takes a checkpoint every second,
 * verifies each one and checks that tokens are conserved, rolls back to one of them, checks again,
 * prints a summary, and stops everything cleanly on Ctrl-C or after --duration.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connect, type NatsConnection } from 'nats';
import { JetStreamStateObjects } from '../../agent/state-store.js';
import { objectName } from '../../agent/endpoint.js';
import { CoordinatorClient } from '../../coordinator/grpc/client.js';
import type { ConsistencyLevel, PlanInput } from '../../coordinator/model.js';
import { decodeChannelState } from '../../src/wire/index.js';
import { startNatsServer, type NatsServerHandle } from '../nats-server.js';
import { decodeTokens } from '../token-app.js';
import { agentConfigJson, demoPlan } from './plan.js';

const HELP = `npm start -- [options]: the live demo

options:
  --duration S        stop after S seconds (default: run until Ctrl-C)
  --interval-ms MS    time between checkpoints (default 1000)
  --level LEVEL       app (default) or none: the baseline without coordination
  --rollback-after N  roll back to the first checkpoint after N checkpoints (default 3)
  --tokens N          tokens each app starts with (default 1000)
  --grpc HOST:PORT    the coordinator's gRPC address (default 127.0.0.1:50051; port 0 picks a free one)
  -h, --help          this help

NATS_URL=nats://host:port uses that NATS server (JetStream enabled) instead of starting one.
exit codes: 0 every check passed, 1 a check failed, 2 usage or set-up error`;

const TENANT = 'demo';
const PLAN: PlanInput = demoPlan(TENANT);

interface Row {
  id: number;
  state: string;
  durationMs: number;
  tokens: number | undefined;
  verified: boolean;
  note: string;
}

const children: ChildProcess[] = [];
let nats: NatsServerHandle | undefined;
let workDir: string | undefined;

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function startChild(name: string, args: string[], onLine?: (line: string) => void): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } });
  children.push(child);
  let buffer = '';
  child.stdout?.on('data', (d: Buffer) => {
    buffer += d.toString();
    let at: number;
    while ((at = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
      onLine?.(line);
    }
  });
  let errors = '';
  child.stderr?.on('data', (d: Buffer) => {
    errors = (errors + d.toString()).slice(-4000);
  });
  child.on('exit', (code, signal) => {
    if (code !== 0 && code !== null && !stopping) say(`! ${name} exited with code ${code}${errors ? `:\n${errors}` : ''}`);
    else if (signal && !stopping) say(`! ${name} was killed by ${signal}`);
  });
  return child;
}

let stopping = false;

async function stopAll(): Promise<void> {
  stopping = true;
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const kill = setTimeout(() => c.kill('SIGKILL'), 5_000);
          c.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          c.kill('SIGTERM');
        }),
    ),
  );
  await nats?.stop();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}

async function tokensOf(nc: NatsConnection, id: number): Promise<number> {
  const objects = new JetStreamStateObjects(nc);
  let total = 0;
  for (const a of PLAN.apps) {
    for (const kind of ['state', 'channels'] as const) {
      const info = await objects.info(TENANT, objectName(id, a.server, a.app, kind));
      if (!info.ok) {
        if (kind === 'channels') continue;
        throw new Error(`state of ${a.server}/${a.app} in checkpoint ${id}: ${info.error.message}`);
      }
      const bytes = await objects.get(TENANT, info.value);
      if (!bytes.ok) throw new Error(bytes.error.message);
      if (kind === 'state') total += decodeTokens(bytes.value);
      else {
        const decoded = decodeChannelState(bytes.value);
        if (!decoded.ok) throw new Error(decoded.error.message);
        for (const msgs of Object.values(decoded.value)) for (const m of msgs) total += decodeTokens(m.payload);
      }
    }
  }
  return total;
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        duration: { type: 'string' },
        'interval-ms': { type: 'string', default: '1000' },
        level: { type: 'string', default: 'app' },
        'rollback-after': { type: 'string', default: '3' },
        tokens: { type: 'string', default: '1000' },
        grpc: { type: 'string', default: '127.0.0.1:50051' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    say(HELP);
    return 0;
  }
  const level = values.level as ConsistencyLevel;
  if (level !== 'app' && level !== 'none') {
    console.error(`--level must be app or none (crash is not available yet), got ${values.level}`);
    return 2;
  }
  const durationS = values.duration === undefined ? Infinity : Number(values.duration);
  const intervalMs = Number(values['interval-ms']);
  const rollbackAfter = Number(values['rollback-after']);
  const initialTokens = Number(values.tokens);
  if (!(durationS > 0) || !(intervalMs > 0) || !Number.isInteger(rollbackAfter) || rollbackAfter < 1 || !(initialTokens >= 0)) {
    console.error(`invalid option value\n\n${HELP}`);
    return 2;
  }
  const total = initialTokens * PLAN.apps.length;
  let interrupted = false;
  process.once('SIGINT', () => {
    interrupted = true;
  });
  process.once('SIGTERM', () => {
    interrupted = true;
  });

  let url = process.env['NATS_URL'];
  if (url) say(`using NATS at ${url}`);
  else {
    say('starting nats-server with JetStream ...');
    try {
      nats = await startNatsServer();
    } catch (error) {
      console.error(error instanceof Error ? error.message : String(error));
      return 2;
    }
    url = nats.url;
    say(`  nats-server on ${url}`);
  }
  workDir = mkdtempSync(join(tmpdir(), 'snapshot-demo-'));

  say('starting the coordinator ...');
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the coordinator did not start within 20 s')), 20_000);
    const child = startChild('coordinator', ['coordinator/main.ts', '--nats', url as string, '--listen', values.grpc as string, '--log-level', 'warn'], (line) => {
      const m = /^listening on (.+)$/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    });
    child.once('exit', () => {
      clearTimeout(timer);
      reject(new Error(`the coordinator could not start on ${values.grpc} (is the port taken? try --grpc 127.0.0.1:0)`));
    });
  });
  say(`  coordinator gRPC on ${address}  (try: SNAPCTL_ADDRESS=${address} npm run -s snapctl -- list)`);

  say('starting three agents (s1/APP1, s2/APP2, s3/APP3) ...');
  for (const a of PLAN.apps) {
    const config = agentConfigJson(PLAN, a.server, a.app, url as string, { logLevel: 'warn' });
    const file = join(workDir, `${a.server}.json`);
    writeFileSync(file, JSON.stringify(config, null, 2));
    startChild(`agent ${a.server}`, ['agent/main.ts', '--config', file, '--demo-app', 'tokens', '--initial-tokens', String(initialTokens)]);
  }

  const client = new CoordinatorClient(address);
  const nc = await connect({ servers: url });
  try {
    const registered = await client.registerPlan(PLAN, 0);
    if (!registered.ok) throw new Error(`registering the plan failed: ${registered.error.message}`);
    // Wait until every agent registered, so the first checkpoint does not time out on a late start.
    for (let i = 0; ; i++) {
      const agents = await client.listAgents(TENANT);
      if (agents.ok && agents.value.filter((x) => x.status === 'online').length === PLAN.apps.length) break;
      if (i > 100) throw new Error('the agents did not register within 20 s');
      await new Promise((r) => setTimeout(r, 200));
    }
    say(`plan "demo" registered; agents online; ${total} tokens in the system\n`);
    const deadline = Date.now() + durationS * 1000;
    say(`taking ${level}-level checkpoints every ${intervalMs} ms while tokens flow${Number.isFinite(durationS) ? ` for ${durationS} s` : ' (Ctrl-C to stop)'}:`);

    const rows: Row[] = [];
    let rolledBackTo: number | undefined;
    let failures = 0;
    while (!interrupted && Date.now() < deadline) {
      const started = Date.now();
      const taken = await client.takeSnapshot({ planId: 'demo', level, options: { timeoutMs: 10_000 } });
      if (!taken.ok) {
        // A checkpoint or rollback started from snapctl meanwhile is not a failure of the demo.
        const busy = taken.error.codeName === 'FAILED_PRECONDITION' && /still running/.test(taken.error.message);
        say(`  ${busy ? 'skipped: another checkpoint of the plan is running' : `! take failed: ${taken.error.message}`}`);
        if (!busy) failures += 1;
      } else {
        const id = taken.value.id;
        const final = await new Promise<string>((resolve) => {
          const w = client.watchCheckpoint(id, (e) => {
            if (e.checkpoint.state === 'completed' || e.checkpoint.state === 'aborted') {
              w.cancel();
              resolve(e.checkpoint.state === 'aborted' ? `aborted: ${e.checkpoint.failureDetail ?? ''}` : 'completed');
            }
          });
          void w.done.then(() => resolve('watch ended'));
        });
        const durationMs = Date.now() - started;
        if (final !== 'completed') {
          failures += 1;
          rows.push({ id, state: final, durationMs, tokens: undefined, verified: false, note: '' });
          say(`  checkpoint ${id}: ${final}`);
        } else {
          const verified = await client.verify(id);
          const tokens = await tokensOf(nc, id);
          const ok = verified.ok && verified.value.ok;
          const conserved = tokens === total;
          if (level === 'app' && (!ok || !conserved)) failures += 1;
          const problems = verified.ok ? verified.value.problems.length : 0;
          const note = rolledBackTo !== undefined && rows.every((r) => r.note !== 'first after rollback') ? 'first after rollback' : '';
          rows.push({ id, state: 'completed', durationMs, tokens, verified: ok, note });
          say(
            `  checkpoint ${String(id).padStart(3)}  completed in ${String(durationMs).padStart(4)} ms  tokens ${tokens}/${total} ${conserved ? 'conserved' : 'NOT CONSERVED'}  verify ${ok ? 'ok' : `FAILED (${problems} problem${problems === 1 ? '' : 's'})`}${note ? `  (${note})` : ''}`,
          );
          const completed = rows.filter((r) => r.state === 'completed');
          if (rolledBackTo === undefined && completed.length === rollbackAfter) {
            const target = completed[0] as Row;
            say(`\nrolling back every app to checkpoint ${target.id} (a safety checkpoint is taken first) ...`);
            const rolled = await client.rollback(target.id, false);
            if (!rolled.ok) {
              say(`  ! rollback failed: ${rolled.error.message}`);
              failures += 1;
            } else {
              rolledBackTo = target.id;
              say(`  rolled back to ${target.id}: safety checkpoint ${rolled.value.safetyCheckpointId}, now at epoch ${rolled.value.epoch}\n`);
            }
          }
        }
      }
      const wait = intervalMs - (Date.now() - started);
      if (wait > 0) await new Promise((r) => setTimeout(r, Math.min(wait, Math.max(0, deadline - Date.now()))));
    }

    const completed = rows.filter((r) => r.state === 'completed');
    const conserved = completed.filter((r) => r.tokens === total).length;
    say('\nsummary');
    say('  id  state                 ms   tokens  verified  note');
    for (const r of rows) {
      say(`  ${String(r.id).padStart(2)}  ${r.state.slice(0, 20).padEnd(20)} ${String(r.durationMs).padStart(4)}  ${String(r.tokens ?? '-').padStart(6)}  ${(r.verified ? 'yes' : 'no').padEnd(8)}  ${r.note}`);
    }
    say(`\n  ${completed.length} of ${rows.length} checkpoints completed; ${conserved} conserved all ${total} tokens; rollback ${rolledBackTo !== undefined ? `to ${rolledBackTo} done` : 'not reached'}`);
    if (level === 'none') say('  level none takes each app on its own: the cut checker (verify) shows what that gets wrong');
    const passed = level === 'none' ? true : failures === 0 && completed.length > 0;
    say(`  verdict: ${passed ? 'every check passed' : 'SOME CHECKS FAILED'}`);
    return passed ? 0 : 1;
  } finally {
    client.close();
    await nc.drain().catch(() => undefined);
  }
}

main()
  .catch((error: unknown) => {
    console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  })
  .then(async (code) => {
    say('\nstopping the agents, the coordinator and nats-server ...');
    await stopAll();
    say('stopped.');
    process.exit(code);
  });
