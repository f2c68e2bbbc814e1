/**
 * Listing over a KV bucket: the keys under a prefix (headers only, so cheap), sorted, then values
 * fetched in small parallel batches until a page is full. Values are read only as far as the page
 * needs, so the first page of a large bucket costs a key scan plus about one page of reads.
 */
import type { KV, KvEntry } from 'nats';
import type { Page } from '../api.js';
import { fail, ok, type Result } from '../errors.js';
import { decodePageToken, encodePageToken, filterFingerprint, validatePageSize } from './page-token.js';
import { storeError } from './nats-errors.js';

/** Values read in parallel while a page is filled. */
export const FETCH_CONCURRENCY_MAX = 16;

/**
 * How long a key listing may take, from its request to its last key. nats.js's `kv.keys()` ends
 * only when a message tells it nothing is pending, and has no deadline; nats.js says of its watcher's
 * end-of-data signal, made from the same counts, that it never fires if the ordered consumer was
 * reset meanwhile (as missed heartbeats in a node's fault do). A listing that never ended is the
 * likeliest cause of a rollback's call and plan held for ever (docs/RELIABILITY.md F10). One that works
 * takes far less: 20 000 keys in 1.8 s to 2.6 s on this machine at a load of 13 (nats-server 2.9.10).
 */
export const KEY_LISTING_MS_MAX = 30_000;

/**
 * A listing that has received nothing for this long is started again. On one nats-server at a load
 * of 30, a listing of a few keys sometimes got no end for the whole 30 s (a retention pass then
 * waited that long, test/integration/api-lifecycle.test.ts); a fresh one answers in milliseconds.
 */
export const KEY_LISTING_STALL_MS = 5_000;

type Attempt = { readonly kind: 'done'; readonly keys: string[] } | { readonly kind: 'stalled' } | { readonly kind: 'failed'; readonly error: unknown };

/** One `kv.keys()`: its keys, or `stalled` when no key nor its end came for `stallMs` (or by `deadline`). */
async function listOnce(kv: KV, filter: string, stallMs: number, deadline: number): Promise<Attempt> {
  let timer: NodeJS.Timeout | undefined;
  let iterator: Awaited<ReturnType<KV['keys']>> | undefined;
  let stalled = false;
  let resolveStalled: (a: Attempt) => void = () => undefined;
  const stall = new Promise<Attempt>((resolve) => {
    resolveStalled = resolve;
  });
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(
      () => {
        stalled = true;
        // Ends the loop below; nats.js keeps its own subscription until the listing's end arrives.
        iterator?.stop();
        resolveStalled({ kind: 'stalled' });
      },
      Math.max(0, Math.min(stallMs, deadline - Date.now())),
    );
  };
  arm();
  const keys: string[] = [];
  const listing = (async (): Promise<Attempt> => {
    const it = await kv.keys(filter);
    iterator = it;
    if (stalled) it.stop();
    for await (const key of it) {
      keys.push(key);
      if (!stalled) arm();
    }
    return { kind: 'done', keys };
  })().catch((error: unknown): Attempt => ({ kind: 'failed', error }));
  try {
    const outcome = await Promise.race([listing, stall]);
    return stalled ? { kind: 'stalled' } : outcome;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The keys matching `filter`; a listing that stalls is started again (KEY_LISTING_STALL_MS), and
 * UNAVAILABLE when NATS does not list them all within `deadlineMs`.
 */
export async function listKeys(kv: KV, filter: string, deadlineMs = KEY_LISTING_MS_MAX, stallMs = KEY_LISTING_STALL_MS): Promise<Result<string[]>> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const attempt = await listOnce(kv, filter, stallMs, deadline);
    if (attempt.kind === 'done') return ok(attempt.keys);
    if (attempt.kind === 'failed') return { ok: false, error: storeError(attempt.error, `listing keys ${filter}`) };
    if (Date.now() >= deadline) return fail('unavailable', `the store (NATS JetStream) did not list keys ${filter} within ${deadlineMs} ms; retry`);
  }
}

/** The live value of a key, undefined when absent or deleted. */
export async function getLive(kv: KV, key: string): Promise<Result<KvEntry | undefined>> {
  try {
    const entry = await kv.get(key);
    return ok(entry === null || entry.operation !== 'PUT' ? undefined : entry);
  } catch (error) {
    return { ok: false, error: storeError(error, `reading ${key}`) };
  }
}

export interface PageScan<T> {
  /** Keys in page order, already past the page token. */
  readonly keys: readonly string[];
  readonly pageSize: number;
  /** Decodes a live entry; undefined skips it (filtered out). */
  readonly decode: (entry: KvEntry) => Result<T | undefined>;
  /** Of the filter, carried in the next page token (see page-token.ts). */
  readonly fingerprint: string;
}

export async function scanPage<T>(kv: KV, scan: PageScan<T>): Promise<Result<Page<T>>> {
  const items: T[] = [];
  let lastKey = '';
  for (let at = 0; at < scan.keys.length; at += FETCH_CONCURRENCY_MAX) {
    const batch = scan.keys.slice(at, at + FETCH_CONCURRENCY_MAX);
    const entries = await Promise.all(batch.map((key) => getLive(kv, key)));
    for (let i = 0; i < batch.length; i++) {
      const entry = entries[i];
      if (entry === undefined) continue;
      if (!entry.ok) return entry;
      if (entry.value === undefined) continue; // deleted between the key scan and the read
      const item = scan.decode(entry.value);
      if (!item.ok) return item;
      if (item.value === undefined) continue;
      if (items.length === scan.pageSize) {
        // One more match exists, so there is a next page; it resumes after the last item kept.
        return ok({ items, nextPageToken: encodePageToken(scan.fingerprint, lastKey) });
      }
      items.push(item.value);
      lastKey = batch[i] ?? '';
    }
  }
  return ok({ items, nextPageToken: '' });
}

/**
 * One page of the values under a key prefix, in plain code-unit order of their keys (the same in
 * every language, so a client can predict it); `filter` is carried in the page token, so a token
 * is refused with another filter.
 */
export async function listPrefixed<T>(
  kv: KV,
  prefix: string,
  page: { readonly filter: object; readonly pageSize: number; readonly pageSizeMax: number; readonly pageToken: string },
  decode: (entry: KvEntry) => Result<T | undefined>,
): Promise<Result<Page<T>>> {
  const size = validatePageSize(page.pageSize, page.pageSizeMax);
  if (!size.ok) return size;
  const fingerprint = filterFingerprint(page.filter);
  const after = decodePageToken(page.pageToken, fingerprint);
  if (!after.ok) return after;
  const keys = await listKeys(kv, `${prefix}*`);
  if (!keys.ok) return keys;
  const sorted = keys.value.sort().filter((key) => after.value === undefined || key > after.value);
  return scanPage(kv, { keys: sorted, pageSize: page.pageSize, fingerprint, decode });
}
