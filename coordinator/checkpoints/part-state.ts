/**
 * An app's state in a checkpoint is either an object of the tenant's bucket or, when it was small,
 * inline in the record (AppPart.inlineState). Whoever needs the bytes (restore, verify, the demo's
 * conservation check) goes through here, so both places are read and checked the same way.
 */
import { sha256Digest, type StateObjects } from '../../adapters/state-store.js';
import { isSealed, parseSealedHeader } from '../../adapters/state-crypto.js';
import { decodeStoredChannelState, type AppState, type StoredChannelState } from '../../src/wire/index.js';
import type { AppPart, CheckpointRecord } from '../model.js';

export type PartStateResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly message: string };

/** What an agent gets back of a part's state: the object's ref, or the inline bytes once their digest checks out. */
export function appStateOf(p: AppPart): PartStateResult<AppState> {
  const who = `${p.server}/${p.app}`;
  if (p.state) return { ok: true, value: { kind: 'object', ref: p.state } };
  if (!p.inlineState) return { ok: false, message: `${who} has no stored state` };
  const bytes = Buffer.from(p.inlineState.base64, 'base64');
  const digest = sha256Digest(bytes);
  if (bytes.byteLength !== p.inlineState.sizeBytes || digest !== p.inlineState.digest) {
    return { ok: false, message: `${who}: the inline state in the record is ${bytes.byteLength} bytes with digest ${digest}, the app acked ${p.inlineState.sizeBytes} bytes with digest ${p.inlineState.digest}` };
  }
  return { ok: true, value: { kind: 'inline', bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) } };
}

/** The bytes of a part's state, checked against the digest the app acked, wherever they are kept. */
export async function readPartState(tenant: string, p: AppPart, objects: StateObjects): Promise<PartStateResult<Uint8Array>> {
  const state = appStateOf(p);
  if (!state.ok) return state;
  if (state.value.kind === 'inline') return { ok: true, value: state.value.bytes };
  const read = await objects.get(tenant, state.value.ref);
  return read.ok ? read : { ok: false, message: read.error.message };
}

/**
 * A part's channel state as stored (recorded messages and log ranges). A state sealed by the agent
 * (docs/security.md) is read from its public part: the same channel state without payloads.
 */
export async function readChannelState(tenant: string, p: AppPart, objects: StateObjects): Promise<PartStateResult<StoredChannelState>> {
  if (!p.channelState) return { ok: true, value: { messages: {}, logRanges: {} } };
  const bytes = await objects.get(tenant, p.channelState);
  if (!bytes.ok) return { ok: false, message: bytes.error.message };
  let plain: Uint8Array = bytes.value;
  if (isSealed(plain)) {
    const header = parseSealedHeader(plain);
    if (!header.ok) return { ok: false, message: header.error.message };
    plain = header.value.publicPart;
  }
  const decoded = decodeStoredChannelState(plain);
  return decoded.ok ? decoded : { ok: false, message: `unreadable: ${decoded.error.message}` };
}

/** The objects a record's parts name: app states and channel states. */
export function storedObjectNames(record: Pick<CheckpointRecord, 'parts'>): string[] {
  return record.parts.flatMap((p) => [p.state?.name, p.channelState?.name].filter((n): n is string => n !== undefined));
}

/**
 * Deletes every object of a checkpoint that did not complete: those its parts name, those an app
 * stored but never acked, found by the checkpoint's prefix (agent/endpoint.ts objectName:
 * cp/<id>/<server>/<app>/<kind>), and `also` (named by acks that came after the abort).
 */
export async function deleteCheckpointObjects(objects: StateObjects, record: Pick<CheckpointRecord, 'id' | 'tenant' | 'parts'>, also: readonly string[] = []): Promise<PartStateResult<void>> {
  const listed = await objects.list(record.tenant, `cp/${record.id}/`);
  const deleted = await objects.delete(record.tenant, [...new Set([...storedObjectNames(record), ...also, ...(listed.ok ? listed.value : [])])]);
  if (!deleted.ok) return { ok: false, message: deleted.error.message };
  return listed.ok ? { ok: true, value: undefined } : { ok: false, message: `not every object could be listed: ${listed.error.message}` };
}
