/**
 * App and channel state in the per-tenant Object Store against a real nats-server: what is put
 * comes back byte for byte, and tampering of any kind (the object replaced, its data rewritten
 * behind the metadata's back, its data gone) is a typed error naming the expected and the actual
 * digest, never wrong bytes.
 */
import { connect, type NatsConnection } from 'nats';
import { objectName } from '../../agent/endpoint.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  JetStreamStateObjects,
  parseSha256Digest,
  sha256Digest,
  stateBucketName,
  type StateResult,
} from '../../adapters/state-store.js';
import { type NatsServerHandle, startNatsServer } from '../support/nats-server.js';

function value<T>(result: StateResult<T>): T {
  if (!result.ok) throw new Error(`expected ok, got ${result.error.kind}: ${result.error.message}`);
  return result.value;
}

function blob(size: number, seed: number): Uint8Array {
  return new Uint8Array(size).map((_, i) => (i * 31 + seed) % 251);
}

describe('state objects on a JetStream Object Store', () => {
  let server: NatsServerHandle;
  let nc: NatsConnection;
  let objects: JetStreamStateObjects;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
    objects = new JetStreamStateObjects(nc);
  });

  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  /** Rewrites an object's data chunks in the stream, leaving its metadata (and digest) as it was. */
  async function rewriteChunks(tenant: string, name: string, data: Uint8Array | undefined): Promise<void> {
    const os = await nc.jetstream().views.os(stateBucketName(tenant));
    const info = await os.info(name);
    if (info === null) throw new Error(`no object ${name}`);
    const jsm = await nc.jetstreamManager();
    const subject = `$O.${info.bucket}.C.${info.nuid}`;
    await jsm.streams.purge(`OBJ_${info.bucket}`, { filter: subject });
    if (data !== undefined) await nc.jetstream().publish(subject, data);
  }

  it('put returns the ref with the digest as NATS writes it, and get returns the same bytes', async () => {
    const bytes = blob(300_000, 1); // several chunks
    const name = objectName(1, 'srv1', 'APP1', 'state');
    const ref = value(await objects.put('acme', name, bytes));
    expect(ref).toEqual({ name, digest: sha256Digest(bytes), sizeBytes: bytes.byteLength });
    expect(ref.digest).toMatch(/^SHA-256=[A-Za-z0-9_-]{43}=$/);
    expect(value(await objects.get('acme', ref))).toEqual(bytes);
    expect(value(await objects.info('acme', name))).toEqual(ref);
  });

  it('an empty object round-trips', async () => {
    const name = objectName(1, 'srv1', 'APP1', 'channels');
    const ref = value(await objects.put('acme', name, new Uint8Array(0)));
    expect(ref.sizeBytes).toBe(0);
    expect(value(await objects.get('acme', ref))).toEqual(new Uint8Array(0));
  });

  it('an object replaced after it was acked is a digest mismatch naming both digests', async () => {
    const name = objectName(2, 'srv1', 'APP1', 'state');
    const ref = value(await objects.put('acme', name, blob(1000, 2)));
    const replaced = value(await objects.put('acme', name, blob(1000, 3)));
    const got = await objects.get('acme', ref);
    expect(got.ok).toBe(false);
    if (got.ok) return;
    expect(got.error.kind).toBe('digest-mismatch');
    expect(got.error.expected).toEqual({ digest: ref.digest, sizeBytes: 1000 });
    expect(got.error.actual?.digest).toBe(replaced.digest);
    expect(got.error.message).toContain(ref.digest);
    expect(got.error.message).toContain(replaced.digest);
  });

  it('data rewritten in the stream behind unchanged metadata is caught by hashing what was read', async () => {
    const name = objectName(3, 'srv2', 'APP2', 'state');
    const original = blob(4096, 4);
    const ref = value(await objects.put('acme', name, original));
    const tampered = original.slice();
    tampered[100] = (tampered[100] ?? 0) ^ 0xff;
    await rewriteChunks('acme', name, tampered);
    const got = await objects.get('acme', ref);
    expect(got.ok).toBe(false);
    if (got.ok) return;
    expect(got.error.kind).toBe('digest-mismatch');
    expect(got.error.expected?.digest).toBe(ref.digest);
    expect(got.error.actual).toEqual({ digest: sha256Digest(tampered), sizeBytes: 4096 });
  });

  it('data gone from the stream is a size mismatch, not an empty state', async () => {
    const name = objectName(4, 'srv2', 'APP2', 'state');
    const ref = value(await objects.put('acme', name, blob(2048, 5)));
    await rewriteChunks('acme', name, undefined);
    const got = await objects.get('acme', ref);
    expect(got.ok ? 'ok' : got.error.kind).toBe('size-mismatch');
    if (!got.ok) expect(got.error.actual?.sizeBytes).toBe(0);
  });

  it('a ref with another size, or a digest that is not SHA-256, is refused before any data is read', async () => {
    const name = objectName(5, 'srv1', 'APP1', 'state');
    const ref = value(await objects.put('acme', name, blob(10, 6)));
    const wrongSize = await objects.get('acme', { ...ref, sizeBytes: 11 });
    expect(wrongSize.ok ? 'ok' : wrongSize.error.kind).toBe('size-mismatch');
    const md5 = await objects.get('acme', { ...ref, digest: 'MD5=abc' });
    expect(md5.ok ? 'ok' : md5.error.kind).toBe('invalid-ref');
  });

  it('digests compare as bytes: hex and unpadded base64 forms of the same digest are accepted', async () => {
    const bytes = blob(77, 7);
    const name = objectName(6, 'srv1', 'APP1', 'state');
    const ref = value(await objects.put('acme', name, bytes));
    const raw = parseSha256Digest(ref.digest);
    expect(raw).toBeDefined();
    const hex = `SHA-256=${raw?.toString('hex')}`;
    const b64 = `SHA-256=${raw?.toString('base64').replace(/=+$/, '')}`;
    expect(value(await objects.get('acme', { ...ref, digest: hex }))).toEqual(bytes);
    expect(value(await objects.get('acme', { ...ref, digest: b64 }))).toEqual(bytes);
  });

  it('tenants are separate buckets: one tenant cannot read another tenant\'s object by its ref', async () => {
    const name = objectName(7, 'srv1', 'APP1', 'state');
    const ref = value(await objects.put('acme', name, blob(10, 8)));
    const other = await objects.get('globex', ref);
    expect(other.ok ? 'ok' : other.error.kind).toBe('not-found');
  });

  it('list by prefix and delete (missing names are fine) clean up a checkpoint\'s parts', async () => {
    const names = ['APP1', 'APP2'].map((app) => objectName(9, 'srv1', app, 'state'));
    for (const name of names) value(await objects.put('acme', name, blob(5, 9)));
    value(await objects.put('acme', objectName(10, 'srv1', 'APP1', 'state'), blob(5, 9)));
    expect(value(await objects.list('acme', 'cp/9/'))).toEqual(names);
    value(await objects.delete('acme', [...names, 'cp/9/never/was/state']));
    expect(value(await objects.list('acme', 'cp/9/'))).toEqual([]);
    expect(value(await objects.list('acme', 'cp/10/'))).toHaveLength(1);
    const gone = await objects.info('acme', names[0] ?? '');
    expect(gone.ok ? 'ok' : gone.error.kind).toBe('not-found');
  });

  it('an invalid tenant is refused with invalid-name', async () => {
    const put = await objects.put('no.dots', 'x', blob(1, 1));
    expect(put.ok ? 'ok' : put.error.kind).toBe('invalid-name');
  });
});
