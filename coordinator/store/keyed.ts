/**
 * Idempotency keys of the calls on one checkpoint (DeleteCheckpoint, CancelCheckpoint,
 * PinCheckpoint, UnpinCheckpoint), in `snap-checkpoints` under `key.<call>.<sha-256 of the key>`.
 * A call claims its key with a compare-and-set create holding the request in words, then records
 * its result there; a retry finds the result and returns it without doing the work again. A key
 * reused for another request is refused naming both. A call that failed gives its key back, so a
 * retry runs again; a claim whose call never finished (its coordinator died) is taken over after
 * `claimStaleMs`. (TakeSnapshot keys live with the records, checkpoints.ts; rollback and restore
 * keys with their operations, operations.ts.)
 */
import { createHash } from 'node:crypto';
import type { KV } from 'nats';
import { fail, failWith, ok, type Result } from '../errors.js';
import { decodeJsonObject, encodeJson } from './json.js';
import { isWrongLastSequence, storeError } from './nats-errors.js';
import { getLive } from './scan.js';

export type KeyedCallKind = 'delete' | 'cancel' | 'pin' | 'unpin';

export interface KeyedCall {
  readonly kind: KeyedCallKind;
  readonly key: string;
  /** The request in words: the same words make a retry, other words a conflict. */
  readonly request: string;
}

export type KeyedClaim =
  /** Run the call, then `finish` (or `abandon` on failure) at this revision. */
  | { readonly fresh: true; readonly revision: number }
  /** A retry: the first call's result. */
  | { readonly fresh: false; readonly result: Record<string, unknown> };

export interface KeyedCallStore {
  claim(call: KeyedCall): Promise<Result<KeyedClaim>>;
  finish(call: KeyedCall, revision: number, result: Record<string, unknown>): Promise<Result<void>>;
  abandon(call: KeyedCall, revision: number): Promise<void>;
}

export function keyedCallKey(kind: KeyedCallKind, key: string): string {
  return `key.${kind}.${createHash('sha256').update(key, 'utf8').digest('hex')}`;
}

interface Stored {
  readonly request: string;
  readonly result?: Record<string, unknown>;
  readonly revision: number;
  readonly createdAtUnixMs: number;
}

export class JetStreamKeyedCallStore implements KeyedCallStore {
  constructor(
    private readonly kv: KV,
    private readonly claimStaleMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async claim(call: KeyedCall): Promise<Result<KeyedClaim>> {
    const k = keyedCallKey(call.kind, call.key);
    const value = encodeJson({ request: call.request });
    try {
      return ok({ fresh: true, revision: await this.kv.create(k, value) });
    } catch (error) {
      if (!isWrongLastSequence(error)) return { ok: false, error: storeError(error, `claiming an idempotency key`) };
    }
    const stored = await this.read(k);
    if (!stored.ok) return stored;
    if (stored.value === undefined) return fail('aborted', `the idempotency key ${JSON.stringify(call.key)} was released while this call claimed it; retry`);
    const s = stored.value;
    if (s.request !== call.request) {
      return failWith('invalid-argument', 'IDEMPOTENCY_KEY_REUSED', `idempotency_key ${JSON.stringify(call.key)} was first used for "${s.request}"; this call is "${call.request}": use a new key for a different request`, {
        idempotency_key: call.key,
      });
    }
    if (s.result !== undefined) return ok({ fresh: false, result: s.result });
    if (this.now() - s.createdAtUnixMs < this.claimStaleMs) {
      return fail('aborted', `a request with idempotency_key ${JSON.stringify(call.key)} ("${call.request}") is being processed; retry to get its result`);
    }
    try {
      return ok({ fresh: true, revision: await this.kv.update(k, value, s.revision) });
    } catch (error) {
      if (isWrongLastSequence(error)) return fail('aborted', `another request with idempotency_key ${JSON.stringify(call.key)} took it over just now; retry to get its result`);
      return { ok: false, error: storeError(error, `taking over an idempotency key`) };
    }
  }

  async finish(call: KeyedCall, revision: number, result: Record<string, unknown>): Promise<Result<void>> {
    try {
      await this.kv.update(keyedCallKey(call.kind, call.key), encodeJson({ request: call.request, result }), revision);
      return ok(undefined);
    } catch (error) {
      return { ok: false, error: storeError(error, `recording the result of a keyed ${call.kind}`) };
    }
  }

  async abandon(call: KeyedCall, revision: number): Promise<void> {
    await this.kv.delete(keyedCallKey(call.kind, call.key), { previousSeq: revision }).catch(() => undefined);
  }

  private async read(k: string): Promise<Result<Stored | undefined>> {
    const entry = await getLive(this.kv, k);
    if (!entry.ok) return entry;
    if (entry.value === undefined) return ok(undefined);
    const json = decodeJsonObject(entry.value.value, k);
    if (!json.ok) return json;
    const request = json.value['request'];
    const result = json.value['result'];
    if (typeof request !== 'string') return fail('internal', `stored value of ${k} holds no request`);
    return ok({
      request,
      ...(typeof result === 'object' && result !== null ? { result: result as Record<string, unknown> } : {}),
      revision: entry.value.revision,
      createdAtUnixMs: entry.value.created.getTime(),
    });
  }
}
