/**
 * Listing over a KV bucket: the keys under a prefix (headers only, so cheap), sorted, then values
 * fetched in small parallel batches until a page is full. Values are read only as far as the page
 * needs, so the first page of a large bucket costs a key scan plus about one page of reads.
 */
import type { KV, KvEntry } from 'nats';
import type { Page } from '../api.js';
import { ok, type Result } from '../errors.js';
import { decodePageToken, encodePageToken, filterFingerprint, validatePageSize } from './page-token.js';
import { storeError } from './nats-errors.js';

/** Values read in parallel while a page is filled. */
export const FETCH_CONCURRENCY_MAX = 16;

export async function listKeys(kv: KV, filter: string): Promise<Result<string[]>> {
  try {
    const keys: string[] = [];
    for await (const key of await kv.keys(filter)) keys.push(key);
    return ok(keys);
  } catch (error) {
    return { ok: false, error: storeError(error, `listing keys ${filter}`) };
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
