/**
 * The coordinator shell's store calls, as the real one makes them over JetStream: a read or an
 * idempotent delete is retried until it succeeds (the client's own retry on a timeout), and a
 * read-modify-write is a compare-and-set loop that never gives up under contention (issue 9, defect
 * 5: id allocation must not fail). A loop dies with its process: replies to a crashed process are dropped.
 */
import type { Io, IoOwner } from './io.js';
import type { KvEntry, SimKv } from './stores.js';

/** Wait between two attempts of a retried call. */
export const RETRY_MS = 20;

export class StoreCalls {
  constructor(
    private readonly io: Io,
    private readonly kv: SimKv,
    private readonly owner: IoOwner,
    private readonly later: (ms: number, fn: () => void) => void,
  ) {}

  /** Retried until it succeeds. */
  retried<T>(label: string, apply: () => T, done: (value: T) => void): void {
    this.io.call(this.owner, label, apply, (r) => {
      if (r.ok) done(r.value);
      else this.later(RETRY_MS, () => this.retried(label, apply, done));
    });
  }

  read(key: string, done: (entry: KvEntry | undefined) => void): void {
    this.retried(`get ${key}`, () => this.kv.get(key), done);
  }

  /**
   * Reads `key`, asks `change` for the new value (undefined: leave it), writes it at the revision
   * read, and starts over on a conflict or an error (a write whose reply was lost may have landed:
   * the next read shows it, and `change` must then see that its work is done).
   */
  update<T>(key: string, change: (current: T | undefined) => T | undefined, done: (written: T | undefined) => void): void {
    this.read(key, (entry) => {
      const next = change(entry?.value as T | undefined);
      if (next === undefined) {
        done(undefined);
        return;
      }
      this.io.call(
        this.owner,
        `cas ${key}`,
        () => (entry === undefined ? this.kv.create(key, next) : this.kv.update(key, next, entry.revision)),
        (r) => {
          if (r.ok && r.value.ok) done(next);
          else this.later(r.ok ? 1 : RETRY_MS, () => this.update(key, change, done));
        },
      );
    });
  }

  /** A counter's next value; the counter starts at 0. */
  increment(key: string, done: (value: number) => void): void {
    this.update<number>(key, (n) => (n ?? 0) + 1, (v) => done(v as number));
  }

  /** A plain write, tried once; `done` says whether it is known to have landed. */
  put(key: string, value: unknown, done: (ok: boolean, error?: string) => void): void {
    this.io.call(this.owner, `put ${key}`, () => this.kv.put(key, value), (r) => (r.ok ? done(true) : done(false, r.error)));
  }
}
