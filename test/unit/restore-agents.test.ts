/**
 * The checks a rollback or restore makes before anything changes (coordinator/checkpoints/restore.ts):
 * every server has a live agent, and every part can be read back with the digest its app acked.
 * A failure names every server or part at fault.
 */
import { describe, expect, it } from 'vitest';
import { sha256Digest, type StateObjects, type StateResult } from '../../adapters/state-store.js';
import type { AgentPresence } from '../../coordinator/agents.js';
import { checkAgentsPresent, checkPartsReadable } from '../../coordinator/checkpoints/restore.js';
import type { AgentInfo, AgentStatus } from '../../coordinator/model.js';
import type { ObjectRef } from '../../src/wire/index.js';
import { checkpointRecord } from '../support/coordinator-fixtures.js';

function agents(statuses: Record<string, AgentStatus>): AgentPresence {
  return {
    get: (tenant: string, server: string): AgentInfo | undefined => {
      const status = statuses[server];
      if (status === undefined) return undefined;
      return { tenant, server, apps: [], version: 'test', status, registeredAtUnixMs: 1, lastHeartbeatAtUnixMs: 1, frozen: false };
    },
  };
}

describe('restore and rollback check for live agents first', () => {
  it('servers no agent ever registered on, and offline ones: FAILED_PRECONDITION naming them', () => {
    const result = checkAgentsPresent('acme', ['s7', 's8', 's9'], agents({ s8: 'online', s9: 'offline' }), 'restore of checkpoint 7');
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.kind).toBe('failed-precondition');
    expect(result.error.message).toMatch(/^restore of checkpoint 7 not started: no live agent of tenant acme on s7 \(no agent has registered\), s9 \(its agent is offline\);/);
    expect(result.error.message).not.toContain('s8');
  });

  it('online and late agents pass: a late one may only be busy, and the operation\'s resends judge it', () => {
    expect(checkAgentsPresent('acme', ['srv1', 'srv2', 'srv1'], agents({ srv1: 'online', srv2: 'late' }), 'restore').ok).toBe(true);
  });

  it('without an agent registry the check is skipped', () => {
    expect(checkAgentsPresent('acme', ['nowhere'], undefined, 'restore').ok).toBe(true);
  });
});

/** Objects in memory; `get` checks the digest as the real store does, `unavailable` makes every read time out. */
function objects(stored: Record<string, Uint8Array>, unavailable = false): StateObjects {
  const none = async (): Promise<StateResult<never>> => ({ ok: false, error: { kind: 'store-failed', message: 'not used' } });
  return {
    put: none,
    info: none,
    list: none,
    delete: none,
    get: async (_tenant: string, ref: ObjectRef): Promise<StateResult<Uint8Array>> => {
      if (unavailable) return { ok: false, error: { kind: 'unavailable', message: `reading ${ref.name} timed out` } };
      const bytes = stored[ref.name];
      if (bytes === undefined) return { ok: false, error: { kind: 'not-found', message: `object ${ref.name} of tenant acme does not exist` } };
      if (sha256Digest(bytes) !== ref.digest) return { ok: false, error: { kind: 'digest-mismatch', message: `object ${ref.name} has another digest` } };
      return { ok: true, value: bytes };
    },
  };
}

const counts = { sent: {}, received: {} };
const bytes = new TextEncoder().encode('state of APP2');
const ref = (name: string, of: Uint8Array = bytes): ObjectRef => ({ name, digest: sha256Digest(of), sizeBytes: of.byteLength });
const inline = (of: Uint8Array) => ({ base64: Buffer.from(of).toString('base64'), digest: sha256Digest(of), sizeBytes: of.byteLength });

describe('every part is read back before anything changes', () => {
  const record = checkpointRecord({
    id: 7,
    state: 'completed',
    parts: [
      { server: 'srv1', app: 'APP1', acked: true, counts, inlineState: inline(new TextEncoder().encode('state of APP1')) },
      { server: 'srv2', app: 'APP2', acked: true, counts, state: ref('cp/7/srv2/APP2/state'), channelState: ref('cp/7/srv2/APP2/channels') },
    ],
  });

  it('parts that read back with their digests pass', async () => {
    const r = await checkPartsReadable(record, objects({ 'cp/7/srv2/APP2/state': bytes, 'cp/7/srv2/APP2/channels': bytes }));
    expect(r).toEqual({ ok: true, value: undefined });
  });

  it('a tampered inline state, a missing object and a replaced one: FAILED_PRECONDITION naming each part', async () => {
    const tampered = checkpointRecord({
      ...record,
      parts: [{ ...(record.parts[0] as (typeof record.parts)[number]), inlineState: { ...inline(bytes), base64: Buffer.from('tampered').toString('base64') } }, record.parts[1] as (typeof record.parts)[number]],
    });
    const r = await checkPartsReadable(tampered, objects({ 'cp/7/srv2/APP2/state': new TextEncoder().encode('replaced') }));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.kind).toBe('failed-precondition');
    expect(r.error.message).toContain('checkpoint 7 cannot be restored: ');
    expect(r.error.message).toContain('srv1/APP1: the inline state in the record is 8 bytes');
    expect(r.error.message).toContain('srv2/APP2: object cp/7/srv2/APP2/state has another digest');
    expect(r.error.message).toContain('srv2/APP2 (channel state): object cp/7/srv2/APP2/channels of tenant acme does not exist');
  });

  it('a store that does not answer: UNAVAILABLE (a retry may pass), not a refusal of the checkpoint', async () => {
    const r = await checkPartsReadable(record, objects({}, true));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.kind).toBe('unavailable');
  });

  it('a part without acked counts cannot be restored', async () => {
    const r = await checkPartsReadable(checkpointRecord({ id: 7, parts: [{ server: 'srv1', app: 'APP1', acked: false }] }), objects({}));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toContain('srv1/APP1 has no acked counts');
  });
});
