/**
 * VerifyCheckpoint when a channel state cannot be read (a NATS election, say): it says so and that the
 * cut was not checked, instead of running the cut checker without that state and reporting the
 * messages it holds as missing (docs/RELIABILITY.md, F7).
 */
import { describe, expect, it } from 'vitest';
import type { StateObjects } from '../../adapters/state-store.js';
import { verifyCheckpoint } from '../../coordinator/checkpoints/verify.js';
import type { CheckpointRecord, Plan } from '../../coordinator/model.js';
import { encodeChannelState } from '../../src/wire/index.js';

const CH = 'srv1/APP1->srv2/APP2';
const plan: Plan = {
  id: 'p',
  tenant: 'acme',
  servers: ['srv1', 'srv2'],
  apps: [
    { server: 'srv1', app: 'APP1' },
    { server: 'srv2', app: 'APP2' },
  ],
  channels: [{ from: { server: 'srv1', app: 'APP1' }, to: { server: 'srv2', app: 'APP2' }, kind: 'in-band' }],
  volumes: [],
  revision: 1,
  createdAtUnixMs: 1,
  updatedAtUnixMs: 1,
};

const ref = (name: string) => ({ name, digest: 'SHA-256=x', sizeBytes: 1 });

/** APP1 sent one message that APP2 had not received at the cut: it is in APP2's channel state. */
const record = {
  id: 7,
  planId: 'p',
  tenant: 'acme',
  levelRequested: 'app',
  levelAchieved: 'app',
  state: 'completed',
  epoch: 0,
  options: { timeoutMs: 1_000, alignmentMode: 'unaligned', alignmentTimeoutMs: 0, fallbackPolicy: 'fail', freezeDeadlineMs: 1_000 },
  createdAtUnixMs: 1,
  parts: [
    { server: 'srv1', app: 'APP1', acked: true, state: ref('s1'), counts: { sent: { [CH]: 1 }, received: {} } },
    { server: 'srv2', app: 'APP2', acked: true, state: ref('s2'), channelState: ref('c2'), counts: { sent: {}, received: { [CH]: 0 } } },
  ],
  volumes: [],
  safety: false,
} as unknown as CheckpointRecord;

function objects(channelState: 'readable' | 'unavailable'): StateObjects {
  const encoded = encodeChannelState({ [CH]: [{ seq: 1, payload: new Uint8Array([9]) }] });
  if (!encoded.ok) throw new Error(encoded.error.message);
  return {
    get: async (_t: string, r: { name: string }) =>
      r.name !== 'c2'
        ? { ok: true, value: new Uint8Array([1]) }
        : channelState === 'readable'
          ? { ok: true, value: encoded.value }
          : { ok: false, error: { kind: 'unavailable', message: 'NATS unavailable while reading c2: TIMEOUT' } },
  } as unknown as StateObjects;
}

describe('verify with a channel state it cannot read', () => {
  it('readable: the cut checks out', async () => {
    expect(await verifyCheckpoint(record, plan, objects('readable'))).toEqual({ ok: true, problems: [] });
  });

  it('unreadable: the read failure and "cut not checked", never a cut violation', async () => {
    const report = await verifyCheckpoint(record, plan, objects('unavailable'));
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual([
      { part: 'srv2/APP2 channel state', detail: 'NATS unavailable while reading c2: TIMEOUT' },
      { part: 'cut', detail: 'not checked: the channel state of srv2/APP2 could not be read (see above); verify again' },
    ]);
  });
});
