/**
 * The test harness itself: a real nats-server starts on its own port with JetStream, carries core
 * pub/sub, a KV bucket (with the compare-and-set the checkpoint records rely on) and an Object
 * Store bucket (with the digests the state uploads rely on), and stops without leaving anything.
 */
import { existsSync } from 'node:fs';
import { connect, type NatsConnection, StringCodec } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NatsServerHandle, startNatsServer } from '../support/nats-server.js';

const sc = StringCodec();

describe('nats test harness', () => {
  let server: NatsServerHandle;
  let nc: NatsConnection;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
  });

  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it('listens on its own loopback port, not the default 4222', () => {
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
    expect(server.port).not.toBe(4222);
    expect(existsSync(server.storeDir)).toBe(true);
  });

  it('a published message reaches a subscriber', async () => {
    const sub = nc.subscribe('harness.ping', { max: 1 });
    const received = (async () => {
      for await (const msg of sub) return sc.decode(msg.data);
      return undefined;
    })();
    nc.publish('harness.ping', sc.encode('hello'));
    expect(await received).toBe('hello');
  });

  it('a JetStream KV bucket stores values and enforces compare-and-set on revisions', async () => {
    const kv = await nc.jetstream().views.kv('harness_kv');
    const first = await kv.create('checkpoint.1', sc.encode('pending'));
    const second = await kv.update('checkpoint.1', sc.encode('completed'), first);
    expect(second).toBeGreaterThan(first);
    // A writer holding the old revision loses: the store refuses the stale update.
    await expect(kv.update('checkpoint.1', sc.encode('aborted'), first)).rejects.toThrow();
    const entry = await kv.get('checkpoint.1');
    expect(entry === null ? undefined : sc.decode(entry.value)).toBe('completed');
  });

  it('a JetStream Object Store bucket stores a blob and reports its digest', async () => {
    const os = await nc.jetstream().views.os('harness_os');
    const blob = new Uint8Array(200_000).map((_, i) => i % 251);
    const info = await os.putBlob({ name: 'srv1/APP1/state' }, blob);
    expect(info.size).toBe(blob.byteLength);
    expect(info.digest).toMatch(/^SHA-256=/);
    expect(await os.getBlob('srv1/APP1/state')).toEqual(blob);
  });
});

describe('nats test harness: start and stop', () => {
  it('stop ends the server and removes its store directory, and a second stop is harmless', async () => {
    const server = await startNatsServer();
    await server.stop();
    await server.stop();
    expect(existsSync(server.storeDir)).toBe(false);
    await expect(connect({ servers: server.url, reconnect: false, timeout: 500 })).rejects.toThrow();
  });

  it('a missing binary fails with the install command in the message', async () => {
    await expect(startNatsServer({ binary: '/nonexistent/nats-server' })).rejects.toThrow(/apt-get install -y nats-server/);
  });

  it('a server that cannot start fails with its own output in the message', async () => {
    // `false` exits 1 at once: stands in for a nats-server that rejects its arguments.
    await expect(startNatsServer({ binary: 'false' })).rejects.toThrow(/exited during start-up \(exit code 1\)/);
  });
});
