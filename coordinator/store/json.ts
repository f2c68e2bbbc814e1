/**
 * Values are stored as JSON. Reading checks the little the store itself relies on (the id matches
 * the key, the required strings are there); a value that fails is reported as INTERNAL naming the
 * key, since only a bug or a hand edit of the bucket can produce one.
 *
 * A value whose JSON is above `JSON_GZIP_ABOVE_BYTES` is stored gzip-compressed: a KV value must fit
 * nats-server's max_payload (1 MiB by default), and the record of a checkpoint of 3,000 apps is
 * about that much JSON, most of it the same keys again and again: the 352 KB record of 1,000 apps
 * compresses to 7 KB in 0.25 ms, less than the socket write it saves. Smaller values stay readable
 * JSON (`nats kv get`). Readers tell the two apart by gzip's magic bytes, which JSON text never
 * starts with.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { fail, ok, type Result } from '../errors.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export const JSON_GZIP_ABOVE_BYTES = 64 * 1024;
/** The most a compressed value may inflate to: a bound against a hand-edited value. */
const INFLATED_BYTES_MAX = 256 * 1024 * 1024;

export function encodeJson(value: unknown): Uint8Array {
  const json = encoder.encode(JSON.stringify(value));
  // Level 1: most of the gain (repeated keys) for a fraction of the default level's time.
  return json.byteLength > JSON_GZIP_ABOVE_BYTES ? new Uint8Array(gzipSync(json, { level: 1 })) : json;
}

function isGzip(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

export function decodeJsonObject(bytes: Uint8Array, key: string): Result<Record<string, unknown>> {
  let value: unknown;
  try {
    const text = isGzip(bytes) ? gunzipSync(bytes, { maxOutputLength: INFLATED_BYTES_MAX }) : bytes;
    value = JSON.parse(decoder.decode(text));
  } catch (error) {
    return fail('internal', `stored value of ${key} is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail('internal', `stored value of ${key} is not a JSON object`);
  }
  return ok(value as Record<string, unknown>);
}

/** A decimal counter value as the meta bucket stores it. */
export function decodeCounter(bytes: Uint8Array, key: string): Result<number> {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    return fail('internal', `counter ${key} is not UTF-8`);
  }
  if (!/^(0|[1-9][0-9]{0,15})$/.test(text)) return fail('internal', `counter ${key} holds ${JSON.stringify(text.slice(0, 40))}, not a number`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) return fail('internal', `counter ${key} holds ${text}, beyond the safe integer range`);
  return ok(n);
}

export function encodeCounter(n: number): Uint8Array {
  return encoder.encode(String(n));
}
