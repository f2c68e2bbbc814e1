/** A benchmark's environment: its own nats-server and its worker processes, always torn down. */
import { readdirSync, readFileSync } from 'node:fs';
import { startNatsServer, type NatsServerHandle } from '../../examples/nats-server.js';
import { WorkerPool } from './workers.js';

export interface BenchEnv {
  readonly nats: NatsServerHandle;
  readonly pool: WorkerPool;
}

export async function withEnv<T>(workers: number, fn: (env: BenchEnv) => Promise<T>): Promise<T> {
  const nats = await startNatsServer();
  let pool: WorkerPool | undefined;
  try {
    pool = await WorkerPool.start(workers);
    return await fn({ nats, pool });
  } finally {
    await pool?.stop();
    await nats.stop();
  }
}

/** Waits until `check` holds, polling; throws after `timeoutMs`. */
export async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** CPU seconds used so far by this process, each worker and the nats-server (Linux /proc; 0 elsewhere). */
export interface CpuSnapshot {
  readonly main: number;
  readonly workers: number;
  readonly perWorker: readonly number[];
  readonly natsServer: number;
}

export async function cpuSnapshot(env: BenchEnv): Promise<CpuSnapshot> {
  const own = process.cpuUsage();
  const workers = await env.pool.all<{ user: number; system: number }>('cpu', () => ({}));
  const perWorker = workers.map((c) => (c.user + c.system) / 1e6);
  return {
    main: (own.user + own.system) / 1e6,
    workers: perWorker.reduce((s, x) => s + x, 0),
    perWorker,
    natsServer: natsServerCpuSeconds(env.nats.port),
  };
}

/** CPU per unit of work (a message) between two snapshots, in microseconds, for each worker. */
export function cpuPerItemByWorker(a: CpuSnapshot, b: CpuSnapshot, items: number): number[] {
  return b.perWorker.map((x, i) => Math.round((((x - (a.perWorker[i] ?? 0)) * 1e6) / items) * 10) / 10);
}

/** CPU per round between two snapshots, in ms, by process kind. */
export function cpuPerRound(a: CpuSnapshot, b: CpuSnapshot, rounds: number): Record<string, number> {
  const ms = (x: number): number => Math.round(((x * 1000) / rounds) * 10) / 10;
  return { main: ms(b.main - a.main), workers: ms(b.workers - a.workers), natsServer: ms(b.natsServer - a.natsServer) };
}

function natsServerCpuSeconds(port: number): number {
  try {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      let cmd: string;
      try {
        cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        continue;
      }
      const args = cmd.split('\0');
      if (!args[0]?.endsWith('nats-server') || args[args.indexOf('-p') + 1] !== String(port)) continue;
      // Fields 14 and 15 of /proc/<pid>/stat (after the command in parentheses): utime, stime in ticks.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / 100;
    }
  } catch {
    // Not Linux: no figure.
  }
  return 0;
}
