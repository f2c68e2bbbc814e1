/**
 * The benchmarks' process layout: a few worker processes (child processes, each its own event loop
 * and heap, as agents on separate VMs would be), driven over IPC by the main process, which hosts
 * the coordinator (or, for the floor, the plain-NATS gatherer). A worker hosts many NATS
 * connections: one per agent, or one per plain-NATS member in the floor runs.
 *
 * IPC carries commands and their answers only; nothing timed crosses it except where a benchmark
 * says so (the channel benchmark's start and end, seconds apart).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface WorkerRequest {
  readonly id: number;
  readonly cmd: string;
  readonly args: unknown;
}

export type WorkerReply = { readonly id: number; readonly ok: true; readonly value: unknown } | { readonly id: number; readonly ok: false; readonly error: string };

const WORKER_ENTRY = fileURLToPath(new URL('../worker.ts', import.meta.url));
const WORKER_START_TIMEOUT_MS = 30_000;

export class WorkerPool {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; cmd: string }>();
  private stopping = false;

  private constructor(private readonly children: ChildProcess[]) {
    children.forEach((child, index) => {
      child.on('message', (m: WorkerReply) => {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        if (m.ok) p.resolve(m.value);
        else p.reject(new Error(`worker ${index}: ${p.cmd}: ${m.error}`));
      });
      child.on('exit', (code, signal) => {
        if (this.stopping) return;
        const error = new Error(`worker ${index} exited (code ${code}, signal ${signal})`);
        for (const [id, p] of this.pending) {
          this.pending.delete(id);
          p.reject(error);
        }
      });
    });
  }

  /** Forks `count` workers (TypeScript through tsx, like the main process) and waits until each answers; `entry`: a worker module of another benchmark. */
  static async start(count: number, entry: string = WORKER_ENTRY): Promise<WorkerPool> {
    if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`workers must be a positive integer, got ${count}`);
    // BENCH_CPU_PROF=DIR: every worker writes a V8 CPU profile there when it exits (node --cpu-prof).
    const prof = process.env['BENCH_CPU_PROF'];
    const execArgv = ['--import', 'tsx', '--expose-gc', ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [])];
    const children = Array.from({ length: count }, (_, i) => fork(entry, [String(i)], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    const pool = new WorkerPool(children);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`workers did not start within ${WORKER_START_TIMEOUT_MS} ms`)), WORKER_START_TIMEOUT_MS);
    });
    try {
      await Promise.race([Promise.all(children.map((_, i) => pool.call(i, 'ping', {}))), timedOut]);
    } catch (error) {
      for (const c of children) c.kill('SIGKILL');
      throw error;
    } finally {
      clearTimeout(timer);
    }
    return pool;
  }

  get size(): number {
    return this.children.length;
  }

  pid(index: number): number {
    return this.children[index]?.pid ?? 0;
  }

  call<T = unknown>(index: number, cmd: string, args: unknown): Promise<T> {
    const child = this.children[index];
    if (!child) return Promise.reject(new RangeError(`no worker ${index}`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, cmd });
      child.send({ id, cmd, args } satisfies WorkerRequest);
    });
  }

  /** The same command on every worker, with per-worker arguments. */
  all<T = unknown>(cmd: string, args: (index: number) => unknown): Promise<T[]> {
    return Promise.all(this.children.map((_, i) => this.call<T>(i, cmd, args(i))));
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.children.map((_, i) => this.call(i, 'stop', {})));
    this.stopping = true;
    await Promise.all(
      this.children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const t = setTimeout(() => c.kill('SIGKILL'), 5_000);
            c.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
          }),
      ),
    );
  }
}

/** Spreads items over `workers` round-robin: item i goes to worker i mod workers. */
export function spread<T>(items: readonly T[], workers: number): T[][] {
  const out: T[][] = Array.from({ length: workers }, () => []);
  items.forEach((item, i) => (out[i % workers] as T[]).push(item));
  return out;
}
