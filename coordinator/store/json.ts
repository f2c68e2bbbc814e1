/**
 * Values are stored as JSON. Reading checks the little the store itself relies on (the id matches
 * the key, the required strings are there); a value that fails is reported as INTERNAL naming the
 * key, since only a bug or a hand edit of the bucket can produce one.
 */
import { fail, ok, type Result } from '../errors.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

export function decodeJsonObject(bytes: Uint8Array, key: string): Result<Record<string, unknown>> {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
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
