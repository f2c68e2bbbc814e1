/**
 * The freeze status file, `<stateDir>/freeze-status.json`: what `snapagent status` prints, and what
 * an agent restarted after a crash reads to thaw a guest its predecessor left frozen.
 *
 * Written on every change of the freeze state, atomically (a temporary file renamed over the old
 * one), so a reader sees the old or the new status, never half of one. Writes are asynchronous and
 * queued: the watchdog must never wait behind a write (the state directory is checked at start-up
 * not to lie on a frozen mount, but a blocked write would then stall only the write, not the
 * agent). No fsync: a machine that crashes comes back thawed, so only process crashes matter.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CheckpointId } from '../src/ids.js';

export const FREEZE_STATUS_FILE = 'freeze-status.json';

export type FreezeState = 'thawed' | 'freezing' | 'frozen' | 'thawing';

export interface LastThaw {
  readonly checkpointId: CheckpointId;
  /**
   * 0 when that checkpoint never got frozen (a failed freeze), or when it is not known: the
   * watchdog process thawed after the agent died before its status file said frozen.
   */
  readonly frozenAtUnixMs: number;
  readonly thawedAtUnixMs: number;
  /** Who thawed it: a thaw command, the watchdog, the agent stopping, or recovery at start-up. */
  readonly cause: ThawCause;
}

export type ThawCause = 'command' | 'watchdog' | 'failed-freeze' | 'shutdown' | 'recovery';

export interface FreezeStatus {
  /** True unless fully thawed: while freezing and thawing, something may be frozen. */
  readonly frozen: boolean;
  readonly state: FreezeState;
  readonly checkpointId?: CheckpointId;
  /** When the last freeze step finished (state `frozen`). */
  readonly frozenAtUnixMs?: number;
  /** When the watchdog thaws, at the latest. */
  readonly deadlineAtUnixMs?: number;
  /** Mounts frozen now (fsfreeze -f succeeded, -u not yet run). */
  readonly frozenMounts: readonly string[];
  /** The watchdog process armed for this freeze (agent/freeze-watchdog.ts): its pid and id. */
  readonly watchdog?: { readonly pid: number; readonly id: string };
  readonly lastThaw?: LastThaw;
  /** The agent process that wrote this. */
  readonly pid: number;
  readonly updatedAtUnixMs: number;
}

export class FreezeStatusFile {
  private queue: Promise<void> = Promise.resolve();
  private latest: FreezeStatus | undefined;
  private scheduled = false;
  private failures = 0;

  constructor(
    readonly dir: string,
    private readonly onError: (error: unknown) => void,
  ) {}

  get path(): string {
    return join(this.dir, FREEZE_STATUS_FILE);
  }

  /** Queues a write of `status`; writes that queue up behind a slow one collapse into the latest. */
  write(status: FreezeStatus): void {
    this.latest = status;
    if (this.scheduled) return;
    this.scheduled = true;
    this.queue = this.queue.then(async () => {
      this.scheduled = false;
      const s = this.latest;
      if (!s) return;
      const tmp = join(this.dir, `.${FREEZE_STATUS_FILE}.${process.pid}.${randomBytes(4).toString('hex')}`);
      try {
        await mkdir(this.dir, { recursive: true });
        await writeFile(tmp, `${JSON.stringify(s, null, 2)}\n`, { mode: 0o644 });
        await rename(tmp, this.path);
      } catch (error) {
        this.failures += 1;
        await rm(tmp, { force: true }).catch(() => undefined);
        this.onError(error);
      }
    });
  }

  get writeFailures(): number {
    return this.failures;
  }

  /** Resolves when every queued write is on disk (or failed). */
  flush(): Promise<void> {
    return this.queue;
  }
}

export type ReadStatus = { ok: true; status: FreezeStatus } | { ok: false; missing: boolean; message: string };

export async function readFreezeStatus(stateDir: string): Promise<ReadStatus> {
  const path = join(stateDir, FREEZE_STATUS_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    return { ok: false, missing, message: missing ? `no freeze status at ${path}: the agent has not run with this state directory` : `cannot read ${path}: ${(error as Error).message}` };
  }
  try {
    const json = JSON.parse(text) as Partial<FreezeStatus>;
    if (typeof json.frozen !== 'boolean' || typeof json.state !== 'string' || typeof json.pid !== 'number') throw new Error('missing frozen, state or pid');
    return { ok: true, status: { frozenMounts: [], ...json } as FreezeStatus };
  } catch (error) {
    return { ok: false, missing: false, message: `${path} is not a freeze status: ${(error as Error).message}` };
  }
}

/** Whether a process with this pid exists (EPERM: it exists, owned by someone else). */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
