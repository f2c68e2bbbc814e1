/**
 * Moving a checkpoint's stored objects (app states, channel states) from one object store to
 * another: to a site (CopyCheckpoint) and back from a site (a restore from it). Every object is read
 * at the source against the digest its app acked, written at the target, and read back there
 * against the same digest; a target whose object differs is refused, never recorded. Inline states
 * travel in the record and keep their own digest.
 */
import type { StateError, StateObjects, StateResult } from '../../adapters/state-store.js';
import { parseSha256Digest } from '../../adapters/state-store.js';
import type { ObjectRef } from '../../src/wire/index.js';
import { fail, type CoordinatorError, ok, type Result } from '../errors.js';
import type { AppPart, CheckpointRecord } from '../model.js';

export interface CopyRetry {
  /** Tries of one object step (read, write, read-back) when the store is unavailable. */
  readonly attemptsMax: number;
  readonly retryDelayMs: number;
}

export const copyRetryDefault: CopyRetry = { attemptsMax: 3, retryDelayMs: 1_000 };

export interface ObjectMove {
  readonly tenant: string;
  readonly from: StateObjects;
  /** Named in error messages: `this site`, `site dr`. */
  readonly fromName: string;
  readonly to: StateObjects;
  readonly toName: string;
  /** The object's name at the target. */
  readonly rename: (name: string) => string;
  readonly retry: CopyRetry;
  readonly sleep?: (ms: number) => Promise<void>;
}

export interface MovedParts {
  readonly parts: readonly AppPart[];
  readonly objects: number;
  readonly bytes: number;
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The record's parts with every object ref renamed to its copy at the target, once every copy is
 * verified there. On failure, the objects written so far are deleted at the target (best effort:
 * an unreachable target keeps them, and they are never listed, since no record names them).
 */
export async function moveParts(record: CheckpointRecord, move: ObjectMove): Promise<Result<MovedParts>> {
  const written: string[] = [];
  let bytes = 0;
  const copyRef = async (ref: ObjectRef): Promise<Result<ObjectRef>> => {
    const moved = await moveObject(ref, move);
    if (!moved.ok) return moved;
    written.push(moved.value.name);
    bytes += ref.sizeBytes;
    return moved;
  };
  const parts: AppPart[] = [];
  for (const p of record.parts) {
    let part: AppPart = p;
    if (p.state !== undefined) {
      const state = await copyRef(p.state);
      if (!state.ok) return abandon(state, written, move);
      part = { ...part, state: state.value };
    }
    if (p.channelState !== undefined) {
      const channelState = await copyRef(p.channelState);
      if (!channelState.ok) return abandon(channelState, written, move);
      part = { ...part, channelState: channelState.value };
    }
    parts.push(part);
  }
  return ok({ parts, objects: written.length, bytes });
}

async function abandon<T>(failure: Result<T>, written: readonly string[], move: ObjectMove): Promise<Result<T>> {
  if (written.length > 0) await move.to.delete(move.tenant, written);
  return failure;
}

async function moveObject(ref: ObjectRef, move: ObjectMove): Promise<Result<ObjectRef>> {
  const name = move.rename(ref.name);
  const bytes = await retried(move, () => move.from.get(move.tenant, ref));
  if (!bytes.ok) return fail(kindOf(bytes.error), `${ref.name} at ${move.fromName}: ${bytes.error.message}`);
  const put = await retried(move, () => move.to.put(move.tenant, name, bytes.value));
  if (!put.ok) return fail(kindOf(put.error), `writing ${name} at ${move.toName}: ${put.error.message}`);
  const want = parseSha256Digest(ref.digest);
  const got = parseSha256Digest(put.value.digest);
  const copy: ObjectRef = { name, digest: ref.digest, sizeBytes: ref.sizeBytes };
  if (want === undefined || got === undefined || !want.equals(got) || put.value.sizeBytes !== ref.sizeBytes) {
    await move.to.delete(move.tenant, [name]);
    return fail('failed-precondition', `${name} at ${move.toName} was stored with digest ${put.value.digest} (${put.value.sizeBytes} bytes), not ${ref.digest} (${ref.sizeBytes} bytes): the copy is refused`);
  }
  // Read back through the target's own reader: its stored data, not only its metadata, must match.
  const back = await retried(move, () => move.to.get(move.tenant, copy));
  if (!back.ok) {
    if (back.error.kind === 'digest-mismatch' || back.error.kind === 'size-mismatch') await move.to.delete(move.tenant, [name]);
    return fail(kindOf(back.error), `reading back ${name} at ${move.toName}: ${back.error.message}${back.error.kind === 'digest-mismatch' ? ': the copy is refused' : ''}`);
  }
  return ok(copy);
}

async function retried<T>(move: ObjectMove, call: () => Promise<StateResult<T>>): Promise<StateResult<T>> {
  const sleep = move.sleep ?? defaultSleep;
  for (let attempt = 1; ; attempt++) {
    const result = await call();
    if (result.ok || result.error.kind !== 'unavailable' || attempt >= move.retry.attemptsMax) return result;
    await sleep(move.retry.retryDelayMs);
  }
}

function kindOf(error: StateError): CoordinatorError['kind'] {
  switch (error.kind) {
    case 'unavailable':
      return 'unavailable';
    case 'not-found':
    case 'size-mismatch':
    case 'digest-mismatch':
      return 'failed-precondition';
    case 'invalid-name':
    case 'invalid-ref':
    case 'too-large':
    case 'store-failed':
      return 'internal';
  }
}
