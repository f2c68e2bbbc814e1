/**
 * Honest health against a real nats-server that is stopped and started again on the same port and
 * store: gRPC health turns NOT_SERVING while NATS is down and SERVING once it is back and the store
 * answers, and the coordinator logs the disconnect at warn and the reconnect at info.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, type Client, type ServiceError } from '@grpc/grpc-js';
import { connect, type NatsConnection } from 'nats';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CoordinatorApi } from '../../coordinator/api.js';
import { healthGrpc } from '../../coordinator/grpc/health.js';
import { storeProbe, watchReadiness, type ReadinessHandle } from '../../coordinator/grpc/readiness.js';
import { startGrpcServer, type GrpcServerHandle } from '../../coordinator/grpc/server.js';
import { openCoordinatorStore } from '../../coordinator/store/index.js';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One nats-server process on a fixed port and store directory, so that a restart is the same server. */
function natsServer(port: number, storeDir: string): { stop(): Promise<void> } {
  const child: ChildProcess = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir], { stdio: 'ignore' });
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.once('exit', () => child.kill('SIGKILL'));
  return {
    stop: async () => {
      child.kill('SIGTERM');
      await gone;
    },
  };
}

describe('health follows NATS', () => {
  const storeDir = mkdtempSync(join(tmpdir(), 'nats-health-'));
  let port: number;
  let server: { stop(): Promise<void> };
  let nc: NatsConnection;
  let grpc: GrpcServerHandle;
  let readiness: ReadinessHandle;
  let health: Client;
  const lines: { level: number; msg: string }[] = [];

  const check = (): Promise<string> =>
    new Promise((resolve) => {
      (health as unknown as { Check(r: object, cb: (e: ServiceError | null, r: { status: string }) => void): void }).Check({ service: 'snapshot.v1.Coordinator' }, (error, response) =>
        resolve(error ? `error ${error.code}` : response.status),
      );
    });

  beforeAll(async () => {
    port = await freePort();
    server = natsServer(port, storeDir);
    await until(async () => {
      try {
        const probe = await connect({ servers: `nats://127.0.0.1:${port}`, reconnect: false });
        await probe.jetstreamManager();
        await probe.close();
        return true;
      } catch {
        return false;
      }
    });
    nc = await connect({ servers: `nats://127.0.0.1:${port}`, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    const store = await openCoordinatorStore(nc, { requestTimeoutMs: 1_000 });
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
    // Health is all this test asks of the server: no API call is made.
    grpc = await startGrpcServer({ api: {} as CoordinatorApi, address: '127.0.0.1:0', logger });
    readiness = watchReadiness({ nc, probeStore: storeProbe(store.buckets), setStatus: (s) => grpc.health.setAll(s), logger, probeIntervalMs: 200, probeTimeoutMs: 1_000 });
    health = new (healthGrpc().Client)(`127.0.0.1:${grpc.port}`, credentials.createInsecure());
  }, 30_000);

  afterAll(async () => {
    readiness?.stop();
    health?.close();
    await grpc?.close();
    await nc?.close().catch(() => undefined);
    await server?.stop();
    rmSync(storeDir, { recursive: true, force: true });
  });

  it('NOT_SERVING while nats-server is stopped, SERVING again after it restarts; both logged', async () => {
    expect(await check()).toBe('SERVING');
    await server.stop();
    await until(async () => (await check()) === 'NOT_SERVING');
    expect(lines.some((l) => l.level === 40 && l.msg === 'NATS disconnected; reconnecting')).toBe(true);
    expect(lines.some((l) => l.level === 40 && l.msg.startsWith('health NOT_SERVING'))).toBe(true);
    // Still down a while later: nothing flips it back while NATS is away.
    await new Promise((r) => setTimeout(r, 600));
    expect(await check()).toBe('NOT_SERVING');
    server = natsServer(port, storeDir);
    await until(async () => (await check()) === 'SERVING', 20_000);
    expect(lines.some((l) => l.level === 30 && l.msg === 'NATS reconnected')).toBe(true);
    expect(lines.some((l) => l.level === 30 && l.msg.startsWith('health SERVING'))).toBe(true);
  }, 45_000);
});
