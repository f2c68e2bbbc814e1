/**
 * The live values of a KV bucket's keys under a pattern, kept current by a watch, so that a read on
 * every checkpoint (the plan, its epoch) costs no round trip to JetStream. Until the watch has
 * delivered the initial values, and whenever it is down (NATS gone, the consumer lost), `ready` is
 * false and callers read the store. Writes made through this process are noted at once, so a read
 * that follows a write sees it even before the watch delivers it; a value the watch delivers is
 * taken only if it is newer than what is held: by revision (revisions only grow per key), or by a
 * rank of the value where the value itself only grows (an epoch counter).
 */
import type { KV, KvEntry } from 'nats';
import type { Logger } from 'pino';

interface Held<T> {
  /** The key's revision (or the value's rank); a delete noted by this process holds the last revision + 0.5 until the watch brings the real one. */
  readonly revision: number;
  /** undefined: deleted. */
  readonly value: T | undefined;
}

/** After the watch ended without being stopped, it is opened again after this long. */
const REWATCH_DELAY_MS = 500;

export class WatchedKeys<T> {
  private readonly held = new Map<string, Held<T>>();
  private initialized = false;
  private stopped = false;
  private stopWatch: (() => void) | undefined;

  constructor(
    private readonly kv: KV,
    private readonly pattern: string,
    /** The value of a live entry; undefined drops the entry (it does not decode: reads go to the store). */
    private readonly decode: (entry: KvEntry) => T | undefined,
    private readonly log: Logger | undefined,
    /** Orders values by themselves instead of by revision: for keys whose value only grows. */
    private readonly rank?: (value: T) => number,
  ) {
    void this.watch();
  }

  get ready(): boolean {
    return this.initialized && !this.stopped;
  }

  /** What is held for `key`: a value, 'deleted', or 'unknown' (never seen: absent from the bucket, when ready). */
  get(key: string): { readonly value: T } | 'deleted' | 'unknown' {
    const h = this.held.get(key);
    if (h === undefined) return 'unknown';
    return h.value === undefined ? 'deleted' : { value: h.value };
  }

  /** A value this process wrote at `revision` (ignored when values are ranked by themselves). */
  noteWritten(key: string, revision: number, value: T): void {
    this.take(key, revision, value);
  }

  /** A delete this process made (its revision is not known: the watch brings it). */
  noteDeleted(key: string): void {
    const h = this.held.get(key);
    this.held.set(key, { revision: (h?.revision ?? 0) + 0.5, value: undefined });
  }

  stop(): void {
    this.stopped = true;
    this.stopWatch?.();
  }

  private take(key: string, revision: number, value: T | undefined): void {
    const order = this.rank !== undefined && value !== undefined ? this.rank(value) : revision;
    const h = this.held.get(key);
    if (h !== undefined && h.revision >= order) return;
    this.held.set(key, { revision: order, value });
  }

  private async watch(): Promise<void> {
    while (!this.stopped) {
      try {
        const iter = await this.kv.watch({ key: this.pattern, initializedFn: () => (this.initialized = true) });
        this.stopWatch = () => iter.stop();
        for await (const e of iter) {
          if (e.operation === 'PUT') {
            const value = this.decode(e);
            if (value === undefined) this.held.delete(e.key);
            else this.take(e.key, e.revision, value);
          } else this.take(e.key, e.revision, undefined);
        }
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        // The connection is going away for good: nothing to watch any more.
        if (code === 'CONNECTION_CLOSED' || code === 'CONNECTION_DRAINING') this.stopped = true;
        else if (!this.stopped) this.log?.warn({ pattern: this.pattern, err: error }, 'watch of cached keys failed: reading the store until it is back');
      }
      // Whatever came in while no watch ran is unknown: reads go to the store until the next watch is initialized.
      this.initialized = false;
      if (!this.stopped) await new Promise((r) => setTimeout(r, REWATCH_DELAY_MS).unref());
    }
  }
}
