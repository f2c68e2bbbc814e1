/**
 * Opaque page tokens for the list calls. A token names the last item of the previous page (so a
 * page is "everything after this id", stable while items are added or removed) and fingerprints
 * the filter it was issued for, so a client that changes its filter between pages gets a clear
 * INVALID_ARGUMENT instead of a silently inconsistent listing.
 */
import { createHash } from 'node:crypto';
import { fail, ok, type Result } from '../errors.js';

const TOKEN_VERSION = 1;
/** Longer than any token this module issues; anything longer is rejected before decoding. */
const TOKEN_CHARS_MAX = 512;

interface TokenBody {
  readonly v: number;
  /** Fingerprint of the filter. */
  readonly f: string;
  /** The sort key of the last item returned. */
  readonly a: string;
}

/** A short, stable digest of a filter (any JSON value with keys in a fixed order). */
export function filterFingerprint(filter: unknown): string {
  return createHash('sha256').update(JSON.stringify(filter)).digest('base64url').slice(0, 16);
}

export function encodePageToken(fingerprint: string, afterKey: string): string {
  const body: TokenBody = { v: TOKEN_VERSION, f: fingerprint, a: afterKey };
  return Buffer.from(JSON.stringify(body), 'utf8').toString('base64url');
}

/** '' decodes to undefined (the first page). */
export function decodePageToken(token: string, fingerprint: string): Result<string | undefined> {
  if (token === '') return ok(undefined);
  const invalid = fail<string | undefined>('invalid-argument', 'page_token is not one this coordinator issued (start again with an empty page_token)');
  if (token.length > TOKEN_CHARS_MAX || !/^[A-Za-z0-9_-]+$/.test(token)) return invalid;
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    return invalid;
  }
  if (typeof body !== 'object' || body === null) return invalid;
  const { v, f, a } = body as Partial<TokenBody>;
  if (v !== TOKEN_VERSION || typeof f !== 'string' || typeof a !== 'string') return invalid;
  if (f !== fingerprint) {
    return fail('invalid-argument', 'page_token was issued for a different filter (tenant, plan or states); start again with an empty page_token');
  }
  return ok(a);
}

/** Limits every list call shares; validated where a store is built. */
export function validatePageSize(pageSize: number, pageSizeMax: number): Result<number> {
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > pageSizeMax) {
    return fail('invalid-argument', `page_size must be from 1 to ${pageSizeMax}, got ${pageSize}`);
  }
  return ok(pageSize);
}
