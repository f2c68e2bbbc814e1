/**
 * The read-back that resolves a commit whose outcome is unknown (RecordWriter.readBack), over real
 * JetStream KV: a record that is not completed is written back unchanged, so that a commit write
 * still in flight (made against the revision before) can no longer land after the round decided
 * it did not; a completed record is returned as it is, not written.
 */
import { connect, type NatsConnection } from 'nats';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecordWriter } from '../../coordinator/checkpoints/record-writer.js';
import { openCoordinatorStore, type CoordinatorStore } from '../../coordinator/store/index.js';
import { checkpointRecord } from '../support/coordinator-fixtures.js';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.js';

const log = pino({ level: 'silent' });
let server: NatsServerHandle;
let nc: NatsConnection;
let store: CoordinatorStore;

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connect({ servers: server.url });
  store = await openCoordinatorStore(nc);
}, 30_000);

afterAll(async () => {
  await nc?.close();
  await server?.stop();
});

async function revisionOf(id: number): Promise<number> {
  const r = await store.checkpoints.get(id);
  if (!r.ok) throw new Error(r.error.message);
  return r.value.revision;
}

describe('reading the record back after a commit of unknown outcome', () => {
  it('a record still committing reads back as such, and a commit write made against the revision before can no longer land', async () => {
    const id = 101;
    const created = await store.checkpoints.create(checkpointRecord({ id, planId: 'rb-committing', state: 'committing' }));
    if (!created.ok) throw new Error(created.error.message);
    const before = await store.checkpoints.get(id);
    if (!before.ok) throw new Error(before.error.message);
    const writer = new RecordWriter(store.checkpoints, id, log);
    const read = await writer.readBack();
    expect(read.ok && read.value.state).toBe('committing');
    expect(await revisionOf(id)).toBeGreaterThan(before.value.revision);
    // The late commit write, as the writer would send it: one compare-and-set against the old
    // revision. It finds the record moved on and must re-read, which shows the decided state.
    let attempts = 0;
    const late = await store.checkpoints.update(
      id,
      (r) => {
        attempts++;
        return attempts === 1 ? { ...r, state: 'completed' } : undefined;
      },
      before.value,
    );
    expect(late.ok && late.value.record.state).toBe('committing');
    expect(attempts).toBe(2);
  });

  it('a completed record reads back as completed and is not written', async () => {
    const id = 102;
    const created = await store.checkpoints.create(checkpointRecord({ id, planId: 'rb-completed', state: 'completed', finishedAtUnixMs: 5 }));
    if (!created.ok) throw new Error(created.error.message);
    const revision = await revisionOf(id);
    const read = await new RecordWriter(store.checkpoints, id, log).readBack();
    expect(read.ok && [read.value.state, read.value.finishedAtUnixMs]).toEqual(['completed', 5]);
    expect(await revisionOf(id)).toBe(revision);
  });
});
