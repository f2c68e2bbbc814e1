/**
 * The local API end to end over a real unix socket: the server from agent/local-api/ in front of an
 * in-memory fake AppHost (this is the app side of the agent, not NATS), with the TypeScript SDK or a
 * raw gRPC client (to write what the SDK never would) on the other end.
 *
 * Pins down: Hello/Welcome with the app's channels; a send resolves when link.send does and rejects
 * with the host's AppSendError kind; deliveries arrive in order and the next waits for the previous
 * DeliverDone; snapshot and restore carry the app's bytes; an answer that never comes times out with
 * a typed error; garbage and a first message that is not Hello get an Error while other apps are
 * still served; detaching (close or vanish) calls link.close(); paused holds sends; a snapshot that
 * races a send and a send made during a restore are refused; the socket is 0600 and a stale one is
 * replaced.
 *
 * Waits are bounded polls on a condition, never fixed sleeps, except where a test shows that
 * something does NOT happen (a send that must not resolve yet).
 */
import { lstat, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { AppSendError, type AppHandler, type AppHost, type AppLink, type AttachError } from '../../agent/app.js';
import {
  attachPath,
  decodeAgentToApp,
  encodeAppToAgent,
  type AgentToApp,
  type AppToAgent,
} from '../../agent/local-api/protocol.js';
import { AppCallError, LocalApiStartError, startLocalApi, type LocalApi, type LocalApiLimits } from '../../agent/local-api/server.js';
import { connectApp, SdkError, type ConnectAppOptions, type ConnectedApp } from '../../agent/sdk/index.js';
import { startOrdersApp } from '../../examples/sdk-app.js';

const WAIT_TIMEOUT_MS = 10_000;
const POLL_EVERY_MS = 5;
/** Long enough that nothing times out by accident on a loaded CI machine. */
const RELAXED_LIMITS: Partial<LocalApiLimits> = {
  helloTimeoutMs: 10_000,
  deliverAckTimeoutMs: 10_000,
  snapshotReplyTimeoutMs: 10_000,
  restoreReplyTimeoutMs: 10_000,
};

const ORDERS_IN = 'srv1/web->srv1/orders';
const ORDERS_OUT = 'srv1/orders->srv2/billing';
const ORDERS_OUT_2 = 'srv1/orders->srv3/audit';

async function waitFor(what: string, condition: () => boolean, timeoutMs = WAIT_TIMEOUT_MS): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_EVERY_MS));
  }
}

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Settles-or-not without waiting: 'pending' unless the promise has already settled. */
async function stateOf(promise: Promise<unknown>): Promise<'pending' | 'resolved' | 'rejected'> {
  const marker = Symbol('pending');
  try {
    const value = await Promise.race([promise, new Promise((resolve) => setImmediate(() => resolve(marker)))]);
    return value === marker ? 'pending' : 'resolved';
  } catch {
    return 'rejected';
  }
}

function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function text(b: Uint8Array): string {
  return new TextDecoder().decode(b);
}

// ------------------------------------------------------------------------------------------------
// The fake host: records what the server does and lets the test play the agent.
// ------------------------------------------------------------------------------------------------

class FakeLink implements AppLink {
  readonly sends: { channel: string; payload: string }[] = [];
  closeCalls = 0;
  /** What link.send does; by default the message is "on the wire" at once. */
  sendBehavior: (channel: string, payload: Uint8Array) => Promise<void> = async () => {};

  constructor(
    readonly app: string,
    readonly inputs: readonly string[],
    readonly outputs: readonly string[],
    private readonly onClose: () => void,
  ) {}

  send(channel: string, payload: Uint8Array): Promise<void> {
    this.sends.push({ channel, payload: text(payload) });
    return this.sendBehavior(channel, payload);
  }

  async close(): Promise<void> {
    this.closeCalls += 1;
    this.onClose();
  }
}

/** The handler as the agent uses it: every call a promise (the server's are; AppHandler allows sync ones). */
interface AgentSide {
  deliver(channel: string, payload: Uint8Array): Promise<void>;
  snapshot(checkpointId: number): Promise<Uint8Array>;
  restore(state: Uint8Array, checkpointId: number): Promise<void>;
  paused(): void;
  resumed(): void;
}

function agentSide(handler: AppHandler): AgentSide {
  return {
    deliver: async (channel, payload) => handler.deliver(channel, payload),
    snapshot: async (checkpointId) => handler.snapshot(checkpointId),
    restore: async (state, checkpointId) => handler.restore(state, checkpointId),
    paused: () => handler.paused?.(),
    resumed: () => handler.resumed?.(),
  };
}

interface Attached {
  readonly handler: AgentSide;
  readonly link: FakeLink;
}

class FakeHost implements AppHost {
  readonly attachCalls: string[] = [];
  readonly attached = new Map<string, Attached>();
  /** Every link ever handed out, also after detach. */
  readonly links: FakeLink[] = [];
  /** Runs inside attach(), before it returns: for tests of what the agent does at that moment. */
  duringAttach: ((handler: AppHandler) => void) | undefined;

  constructor(private readonly apps: Record<string, { inputs: string[]; outputs: string[] }>) {}

  attach(app: string, handler: AppHandler): { ok: true; link: AppLink } | { ok: false; error: AttachError } {
    this.attachCalls.push(app);
    const config = this.apps[app];
    if (config === undefined) return { ok: false, error: { kind: 'unknown-app', message: `${app} is not hosted here` } };
    if (this.attached.has(app)) return { ok: false, error: { kind: 'already-attached', message: `${app} is already attached` } };
    const link = new FakeLink(app, config.inputs, config.outputs, () => this.attached.delete(app));
    this.attached.set(app, { handler: agentSide(handler), link });
    this.links.push(link);
    this.duringAttach?.(handler);
    return { ok: true, link };
  }

  async waitAttached(app: string): Promise<Attached> {
    await waitFor(`${app} to attach`, () => this.attached.has(app));
    return this.attached.get(app) as Attached;
  }
}

// ------------------------------------------------------------------------------------------------
// Fixtures
// ------------------------------------------------------------------------------------------------

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'local-api-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Setup {
  readonly host: FakeHost;
  readonly api: LocalApi;
  readonly socketPath: string;
  readonly logs: Record<string, unknown>[];
}

async function setup(limits: Partial<LocalApiLimits> = {}, socketPath = join(tempDir(), 'agent.sock')): Promise<Setup> {
  const host = new FakeHost({
    orders: { inputs: [ORDERS_IN], outputs: [ORDERS_OUT, ORDERS_OUT_2] },
    billing: { inputs: [ORDERS_OUT], outputs: [] },
  });
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const api = await startLocalApi({ host, socketPath, logger, limits: { ...RELAXED_LIMITS, ...limits } });
  cleanups.push(() => api.close());
  return { host, api, socketPath, logs };
}

type AppCallbacks = Pick<ConnectAppOptions, 'onMessage' | 'snapshot' | 'restore' | 'onPaused' | 'onResumed' | 'onDisconnect'>;

async function connect(s: Setup, app = 'orders', callbacks: Partial<AppCallbacks> = {}): Promise<ConnectedApp> {
  const connected = await connectApp({
    socketPath: s.socketPath,
    app,
    onMessage: () => {},
    snapshot: () => new Uint8Array(0),
    restore: () => {},
    connectTimeoutMs: 5_000,
    ...callbacks,
  });
  cleanups.push(() => connected.close());
  return connected;
}

/** A gRPC client that writes whatever the test says, to play a client the SDK would never be. */
class RawClient {
  readonly received: AgentToApp[] = [];
  ended = false;
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<Uint8Array, Buffer>;

  constructor(socketPath: string) {
    this.client = new grpc.Client(`unix://${socketPath}`, grpc.credentials.createInsecure());
    this.call = this.client.makeBidiStreamRequest(attachPath, (b: Uint8Array) => Buffer.from(b), (b: Buffer) => b);
    this.call.on('data', (b: Buffer) => {
      const decoded = decodeAgentToApp(b);
      if (!decoded.ok) throw new Error(`the server wrote something that does not decode: ${decoded.error.message}`);
      this.received.push(decoded.value);
    });
    this.call.on('end', () => (this.ended = true));
    this.call.on('error', () => (this.ended = true));
    cleanups.push(() => {
      this.call.cancel();
      this.client.close();
    });
  }

  writeRaw(b: Uint8Array): void {
    this.call.write(b);
  }

  write(message: AppToAgent): void {
    const encoded = encodeAppToAgent(message);
    if (!encoded.ok) throw new Error(encoded.error.message);
    this.call.write(encoded.value);
  }

  cancel(): void {
    this.call.cancel();
  }

  async waitFor<T extends AgentToApp['type']>(type: T): Promise<Extract<AgentToApp, { type: T }>> {
    await waitFor(`a ${type} message`, () => this.received.some((m) => m.type === type));
    return this.received.find((m) => m.type === type) as Extract<AgentToApp, { type: T }>;
  }

  async hello(app = 'orders'): Promise<void> {
    this.write({ type: 'hello', app });
    await this.waitFor('welcome');
  }
}

// ------------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------------

describe('local API: attaching', () => {
  it('hello/welcome: the app learns its inputs and outputs and the host sees one attach', async () => {
    const s = await setup();
    const app = await connect(s);
    expect(app.app).toBe('orders');
    expect(app.inputs).toEqual([ORDERS_IN]);
    expect(app.outputs).toEqual([ORDERS_OUT, ORDERS_OUT_2]);
    expect(app.paused).toBe(false);
    expect(s.host.attachCalls).toEqual(['orders']);
    expect(s.api.stats.attached).toBe(1);
  });

  it('an app the agent does not host fails to connect with connect-failed / unknown-app, and the stream ends', async () => {
    const s = await setup();
    const error = await connect(s, 'payroll').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SdkError);
    expect((error as SdkError).kind).toBe('connect-failed');
    expect((error as SdkError).agentErrorKind).toBe('unknown-app');
  });

  it('a second stream for an attached app is refused with already-attached; the first keeps working', async () => {
    const s = await setup();
    const first = await connect(s);
    const error = (await connect(s).catch((e: unknown) => e)) as SdkError;
    expect([error.kind, error.agentErrorKind]).toEqual(['connect-failed', 'already-attached']);
    await first.send(ORDERS_OUT, bytes('still here'));
    expect(s.host.links[0]?.sends).toEqual([{ channel: ORDERS_OUT, payload: 'still here' }]);
  });

  it('no agent on the socket: connect-failed at once', async () => {
    const error = (await connectApp({
      socketPath: join(tempDir(), 'nobody.sock'),
      app: 'orders',
      onMessage: () => {},
      snapshot: () => new Uint8Array(0),
      restore: () => {},
    }).catch((e: unknown) => e)) as SdkError;
    expect(error).toBeInstanceOf(SdkError);
    expect(error.kind).toBe('connect-failed');
  });

  it('garbage as the first message: an Error, a log line, the stream ends, and other apps are still served', async () => {
    const s = await setup();
    const raw = new RawClient(s.socketPath);
    raw.writeRaw(new Uint8Array([0xff, 0xff, 0xff, 0xff]));
    const error = await raw.waitFor('error');
    expect(error.kind).toBe('protocol');
    expect(error.message).toMatch(/malformed/);
    await waitFor('the stream to end', () => raw.ended);
    expect(s.api.stats.malformed).toBe(1);
    expect(s.logs.some((l) => l['msg'] === 'ending an app stream' && l['kind'] === 'protocol')).toBe(true);
    expect(s.host.attachCalls).toEqual([]);

    const app = await connect(s, 'billing');
    expect(app.inputs).toEqual([ORDERS_OUT]);
  });

  it('a first message that is not Hello: an Error and the stream ends, without attaching anything', async () => {
    const s = await setup();
    const raw = new RawClient(s.socketPath);
    raw.write({ type: 'send', requestId: 1, channel: ORDERS_OUT, payload: bytes('sneaky') });
    const error = await raw.waitFor('error');
    expect(error.kind).toBe('protocol');
    expect(error.message).toMatch(/first message must be Hello/);
    await waitFor('the stream to end', () => raw.ended);
    expect(s.host.attachCalls).toEqual([]);
    expect(s.api.stats.unexpected).toBe(1);
  });

  it('no Hello within helloTimeoutMs: Error hello-timeout and the stream ends', async () => {
    const s = await setup({ helloTimeoutMs: 100 });
    const raw = new RawClient(s.socketPath);
    const error = await raw.waitFor('error');
    expect(error.kind).toBe('hello-timeout');
    await waitFor('the stream to end', () => raw.ended);
  });

  it('handler calls the agent makes inside attach() reach the app after Welcome', async () => {
    const s = await setup();
    s.host.duringAttach = (handler) => handler.paused?.();
    const raw = new RawClient(s.socketPath);
    await raw.hello();
    await raw.waitFor('paused');
    expect(raw.received.map((m) => m.type)).toEqual(['welcome', 'paused']);
  });
});

describe('local API: sending', () => {
  it('send resolves only once link.send resolves (the message is on the wire)', async () => {
    const s = await setup();
    const app = await connect(s);
    const { link } = await s.host.waitAttached('orders');
    const onTheWire = deferred();
    link.sendBehavior = () => onTheWire.promise;
    const sent = app.send(ORDERS_OUT, bytes('order 1'));
    await waitFor('link.send to be called', () => link.sends.length === 1);
    expect(link.sends[0]).toEqual({ channel: ORDERS_OUT, payload: 'order 1' });
    // Waiting on purpose: the send must not resolve while the agent has not put it on the wire.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await stateOf(sent)).toBe('pending');
    onTheWire.resolve();
    await sent;
  });

  it("send rejects with send-failed and the host's AppSendError kind", async () => {
    const s = await setup();
    const app = await connect(s);
    const { link } = await s.host.waitAttached('orders');
    link.sendBehavior = async () => {
      throw new AppSendError('queue-full', '64 messages already wait on the channel');
    };
    const error = (await app.send(ORDERS_OUT, bytes('x')).catch((e: unknown) => e)) as SdkError;
    expect(error).toBeInstanceOf(SdkError);
    expect([error.kind, error.sendErrorKind]).toEqual(['send-failed', 'queue-full']);
    expect(error.message).toMatch(/64 messages/);
  });

  it('sends on several channels resolve independently and reach link.send in the order they were made', async () => {
    const s = await setup();
    const app = await connect(s);
    const { link } = await s.host.waitAttached('orders');
    await Promise.all([app.send(ORDERS_OUT, bytes('a')), app.send(ORDERS_OUT_2, bytes('b')), app.send(ORDERS_OUT, bytes('c'))]);
    expect(link.sends.map((x) => x.payload)).toEqual(['a', 'b', 'c']);
  });

  it('a channel that is not an output, or a payload over the limit, fails in the SDK without reaching the agent', async () => {
    const s = await setup({ sendPayloadBytesMax: 8 });
    const app = await connect(s);
    const { link } = await s.host.waitAttached('orders');
    const unknown = (await app.send(ORDERS_IN, bytes('x')).catch((e: unknown) => e)) as SdkError;
    expect([unknown.kind, unknown.sendErrorKind]).toEqual(['send-failed', 'unknown-channel']);
    const large = (await app.send(ORDERS_OUT, bytes('123456789')).catch((e: unknown) => e)) as SdkError;
    expect([large.kind, large.sendErrorKind]).toEqual(['send-failed', 'payload-too-large']);
    expect(link.sends).toEqual([]);
  });

  it('the server refuses a payload over sendPayloadBytesMax with PAYLOAD_TOO_LARGE (a client that does not check)', async () => {
    const s = await setup({ sendPayloadBytesMax: 8 });
    const raw = new RawClient(s.socketPath);
    await raw.hello();
    raw.write({ type: 'send', requestId: 1, channel: ORDERS_OUT, payload: bytes('123456789') });
    const result = await raw.waitFor('send-result');
    expect(result).toMatchObject({ requestId: 1, ok: false, errorKind: 'payload-too-large' });
    expect(s.host.links[0]?.sends).toEqual([]);
  });

  it('a Send whose request_id does not increase is refused with an Error; the session goes on', async () => {
    const s = await setup();
    const raw = new RawClient(s.socketPath);
    await raw.hello();
    raw.write({ type: 'send', requestId: 5, channel: ORDERS_OUT, payload: bytes('five') });
    raw.write({ type: 'send', requestId: 5, channel: ORDERS_OUT, payload: bytes('five again') });
    raw.write({ type: 'send', requestId: 6, channel: ORDERS_OUT, payload: bytes('six') });
    await waitFor('two SendResults', () => raw.received.filter((m) => m.type === 'send-result').length === 2);
    expect(raw.received.find((m) => m.type === 'error')).toMatchObject({ kind: 'protocol' });
    expect(s.host.links[0]?.sends.map((x) => x.payload)).toEqual(['five', 'six']);
    expect(raw.ended).toBe(false);
  });

  it('paused: sends wait, in order, until resumed', async () => {
    const s = await setup();
    const events: string[] = [];
    const app = await connect(s, 'orders', { onPaused: () => events.push('paused'), onResumed: () => events.push('resumed') });
    const { handler, link } = await s.host.waitAttached('orders');
    handler.paused();
    await waitFor('the app to see paused', () => app.paused);
    const first = app.send(ORDERS_OUT, bytes('1'));
    const second = app.send(ORDERS_OUT_2, bytes('2'));
    // Waiting on purpose: nothing may reach the agent while paused.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(link.sends).toEqual([]);
    expect(await stateOf(first)).toBe('pending');
    handler.resumed();
    await Promise.all([first, second]);
    expect(link.sends.map((x) => x.payload)).toEqual(['1', '2']);
    expect(events).toEqual(['paused', 'resumed']);
    expect(app.paused).toBe(false);
  });

  it('a restore drops the sends held while paused (discarded-by-restore): they came from the abandoned state', async () => {
    const s = await setup();
    const app = await connect(s);
    const { handler, link } = await s.host.waitAttached('orders');
    handler.paused();
    await waitFor('the app to see paused', () => app.paused);
    const held = app.send(ORDERS_OUT, bytes('from the old state')).catch((e: unknown) => e);
    await handler.restore(bytes('restored'), 3);
    handler.resumed();
    const error = (await held) as SdkError;
    expect([error.kind, error.sendErrorKind]).toEqual(['send-failed', 'discarded-by-restore']);
    await app.send(ORDERS_OUT, bytes('from the restored state'));
    expect(link.sends.map((x) => x.payload)).toEqual(['from the restored state']);
  });

  it('a Send that reaches the agent while a restore is in progress is discarded, never sent', async () => {
    const s = await setup();
    const raw = new RawClient(s.socketPath);
    await raw.hello();
    const { handler, link } = await s.host.waitAttached('orders');
    const restored = handler.restore(bytes('state'), 4);
    const request = await raw.waitFor('restore-request');
    raw.write({ type: 'send', requestId: 1, channel: ORDERS_OUT, payload: bytes('old') });
    raw.write({ type: 'restore-done', requestId: request.requestId, ok: true, error: '' });
    await restored;
    expect(await raw.waitFor('send-result')).toMatchObject({ requestId: 1, ok: false, errorKind: 'discarded-by-restore' });
    expect(link.sends).toEqual([]);
  });
});

describe('local API: deliveries, snapshots and restores', () => {
  it('deliveries arrive in order, and the next resolves only after the app handled the previous', async () => {
    const s = await setup();
    const received: string[] = [];
    const gates = [deferred(), deferred(), deferred()];
    let inside = 0;
    let overlapped = false;
    await connect(s, 'orders', {
      onMessage: async (channel, payload) => {
        inside += 1;
        if (inside > 1) overlapped = true;
        received.push(`${channel} ${text(payload)}`);
        await gates[received.length - 1]?.promise;
        inside -= 1;
      },
    });
    const { handler } = await s.host.waitAttached('orders');

    const first = handler.deliver(ORDERS_IN, bytes('m1'));
    await waitFor('m1 to reach the app', () => received.length === 1);
    expect(await stateOf(first)).toBe('pending');
    gates[0]?.resolve();
    await first;

    // Even if the agent does not wait, the app handles one message at a time, in order.
    const rest = [handler.deliver(ORDERS_IN, bytes('m2')), handler.deliver(ORDERS_IN, bytes('m3'))];
    await waitFor('m2 to reach the app', () => received.length === 2);
    expect(await stateOf(rest[0] as Promise<void>)).toBe('pending');
    expect(received).toHaveLength(2);
    gates[1]?.resolve();
    gates[2]?.resolve();
    await Promise.all(rest);
    expect(received).toEqual([`${ORDERS_IN} m1`, `${ORDERS_IN} m2`, `${ORDERS_IN} m3`]);
    expect(overlapped).toBe(false);
  });

  it('a delivery the app fails to handle rejects with app-failed and names the reason', async () => {
    const s = await setup();
    await connect(s, 'orders', {
      onMessage: () => {
        throw new Error('bad order');
      },
    });
    const { handler } = await s.host.waitAttached('orders');
    const error = (await handler.deliver(ORDERS_IN, bytes('m')).catch((e: unknown) => e)) as AppCallError;
    expect(error).toBeInstanceOf(AppCallError);
    expect([error.kind, error.call]).toEqual(['app-failed', 'deliver']);
    expect(error.message).toMatch(/bad order/);
  });

  it('snapshot returns the bytes the app captured for that checkpoint (sends made inside onMessage never race it)', async () => {
    const s = await setup();
    const asked: number[] = [];
    let counter = 41;
    let app: ConnectedApp | undefined;
    app = await connect(s, 'orders', {
      onMessage: async () => {
        counter += 1;
        // Sends made while handling a delivery are all at the agent before the next request.
        await app?.send(ORDERS_OUT, bytes(`counter is ${counter}`));
      },
      snapshot: (checkpointId) => {
        asked.push(checkpointId);
        return bytes(`counter=${counter}`);
      },
    });
    const { handler } = await s.host.waitAttached('orders');
    await handler.deliver(ORDERS_IN, bytes('m'));
    expect(text(await handler.snapshot(7))).toBe('counter=42');
    expect(asked).toEqual([7]);
    expect(s.api.stats.sendsRaced).toBe(0);
  });

  it('a snapshot callback that throws rejects with app-failed', async () => {
    const s = await setup();
    await connect(s, 'orders', {
      snapshot: () => {
        throw new Error('disk full');
      },
    });
    const { handler } = await s.host.waitAttached('orders');
    const error = (await handler.snapshot(1).catch((e: unknown) => e)) as AppCallError;
    expect([error.kind, error.call]).toEqual(['app-failed', 'snapshot']);
    expect(error.message).toMatch(/disk full/);
  });

  it('a state over stateBytesMax is refused (state-too-large from the server, app-failed from the SDK which checks first)', async () => {
    const s = await setup({ stateBytesMax: 4 });
    await connect(s, 'orders', { snapshot: () => bytes('too large') });
    const { handler } = await s.host.waitAttached('orders');
    const viaSdk = (await handler.snapshot(1).catch((e: unknown) => e)) as AppCallError;
    expect([viaSdk.kind, viaSdk.call]).toEqual(['app-failed', 'snapshot']);
    expect(viaSdk.message).toMatch(/at most 4/);

    const s2 = await setup({ stateBytesMax: 4 });
    const raw = new RawClient(s2.socketPath);
    await raw.hello();
    const attached = await s2.host.waitAttached('orders');
    const snap = attached.handler.snapshot(2).catch((e: unknown) => e);
    const request = await raw.waitFor('snapshot-request');
    raw.write({ type: 'snapshot-reply', requestId: request.requestId, ok: true, state: bytes('12345'), error: '', lastSendRequestId: 0 });
    expect(((await snap) as AppCallError).kind).toBe('state-too-large');
    expect((await raw.waitFor('error')).kind).toBe('state-too-large');
  });

  it('restore hands the app the state and checkpoint id, and resolves when the app is done', async () => {
    const s = await setup();
    let state = 'fresh';
    const restoredFrom: number[] = [];
    await connect(s, 'orders', {
      snapshot: () => bytes(state),
      restore: async (bytesIn, checkpointId) => {
        await new Promise((resolve) => setImmediate(resolve));
        state = text(bytesIn);
        restoredFrom.push(checkpointId);
      },
    });
    const { handler } = await s.host.waitAttached('orders');
    await handler.restore(bytes('from checkpoint 9'), 9);
    expect(restoredFrom).toEqual([9]);
    expect(text(await handler.snapshot(10))).toBe('from checkpoint 9');
  });

  it('a restore callback that throws rejects with app-failed', async () => {
    const s = await setup();
    await connect(s, 'orders', {
      restore: () => {
        throw new Error('corrupt state');
      },
    });
    const { handler } = await s.host.waitAttached('orders');
    const error = (await handler.restore(bytes('x'), 1).catch((e: unknown) => e)) as AppCallError;
    expect([error.kind, error.call]).toEqual(['app-failed', 'restore']);
  });

  it('a reply that never comes times out with AppCallError timeout naming the limit; the app is told; a late reply is dropped', async () => {
    const s = await setup({ snapshotReplyTimeoutMs: 150, deliverAckTimeoutMs: 150 });
    const snapshotGate = deferred<Uint8Array>();
    const deliverGate = deferred();
    await connect(s, 'orders', { snapshot: () => snapshotGate.promise, onMessage: () => deliverGate.promise });
    const { handler } = await s.host.waitAttached('orders');

    const snap = (await handler.snapshot(5).catch((e: unknown) => e)) as AppCallError;
    expect(snap).toBeInstanceOf(AppCallError);
    expect([snap.kind, snap.call]).toEqual(['timeout', 'snapshot']);
    expect(snap.message).toMatch(/snapshotReplyTimeoutMs=150/);

    snapshotGate.resolve(bytes('too late'));
    await waitFor('the late reply to be dropped', () => s.api.stats.lateReplies === 1);

    const delivery = (await handler.deliver(ORDERS_IN, bytes('m')).catch((e: unknown) => e)) as AppCallError;
    expect([delivery.kind, delivery.call]).toEqual(['timeout', 'deliver']);
    expect(delivery.message).toMatch(/deliverAckTimeoutMs=150/);
    expect(s.api.stats.replyTimeouts).toBe(2);
    deliverGate.resolve();
  });

  it('a raw client is told REPLY_TIMEOUT with the request id', async () => {
    const s = await setup({ restoreReplyTimeoutMs: 100 });
    const raw = new RawClient(s.socketPath);
    await raw.hello();
    const { handler } = await s.host.waitAttached('orders');
    const restore = handler.restore(bytes('x'), 2).catch((e: unknown) => e);
    const request = await raw.waitFor('restore-request');
    expect(((await restore) as AppCallError).kind).toBe('timeout');
    expect(await raw.waitFor('error')).toMatchObject({ kind: 'reply-timeout', requestId: request.requestId });
  });

  it('a snapshot captured after a Send that reached the agent after the cut is refused with send-raced', async () => {
    const s = await setup();
    const raw = new RawClient(s.socketPath);
    await raw.hello();
    const { handler } = await s.host.waitAttached('orders');
    // The agent places its cut and asks; the app, not having read the request yet, sends...
    const snap = handler.snapshot(8).catch((e: unknown) => e);
    raw.write({ type: 'send', requestId: 1, channel: ORDERS_OUT, payload: bytes('racing') });
    const request = await raw.waitFor('snapshot-request');
    // ...and then captures a state that already reflects that send.
    raw.write({ type: 'snapshot-reply', requestId: request.requestId, ok: true, state: bytes('s'), error: '', lastSendRequestId: 1 });
    const error = (await snap) as AppCallError;
    expect([error.kind, error.call]).toEqual(['send-raced', 'snapshot']);
    expect(s.api.stats.sendsRaced).toBe(1);

    // A Send the agent had before it asked is fine.
    const next = handler.snapshot(9);
    await waitFor('the second request', () => raw.received.filter((m) => m.type === 'snapshot-request').length === 2);
    const second = raw.received.filter((m) => m.type === 'snapshot-request')[1] as Extract<AgentToApp, { type: 'snapshot-request' }>;
    raw.write({ type: 'snapshot-reply', requestId: second.requestId, ok: true, state: bytes('ok'), error: '', lastSendRequestId: 1 });
    expect(text(await next)).toBe('ok');
  });

  it('after the app is attached, a malformed message or an answer to no request gets an Error and the session goes on', async () => {
    const s = await setup();
    const raw = new RawClient(s.socketPath);
    await raw.hello();
    raw.writeRaw(new Uint8Array([0x0a, 0x05, 0x01]));
    raw.write({ type: 'deliver-done', requestId: 99, ok: true, error: '' });
    await waitFor('two Errors', () => raw.received.filter((m) => m.type === 'error').length === 2);
    expect(raw.received.filter((m) => m.type === 'error').map((m) => (m as { kind: string }).kind)).toEqual(['protocol', 'protocol']);
    raw.write({ type: 'send', requestId: 1, channel: ORDERS_OUT, payload: bytes('still attached') });
    expect(await raw.waitFor('send-result')).toMatchObject({ ok: true });
    expect(s.api.stats.malformed).toBe(1);
    expect(s.api.stats.unexpected).toBe(1);
  });
});

describe('local API: detaching', () => {
  it('closing the app calls link.close() once, and pending calls reject with detached', async () => {
    const s = await setup();
    const neverAnswers = deferred<Uint8Array>();
    const app = await connect(s, 'orders', { snapshot: () => neverAnswers.promise });
    const { handler, link } = await s.host.waitAttached('orders');
    const snap = handler.snapshot(3).catch((e: unknown) => e);
    await app.close();
    await waitFor('link.close', () => link.closeCalls === 1);
    expect(((await snap) as AppCallError).kind).toBe('detached');
    expect(await app.closed).toBeUndefined();
    expect(((await app.send(ORDERS_OUT, bytes('x')).catch((e: unknown) => e)) as SdkError).kind).toBe('closed');
    expect(((await handler.deliver(ORDERS_IN, bytes('x')).catch((e: unknown) => e)) as AppCallError).kind).toBe('detached');
    // The app can attach again once detached.
    await connect(s);
    expect(s.host.attachCalls).toEqual(['orders', 'orders']);
    expect(link.closeCalls).toBe(1);
  });

  it('an app that vanishes without closing (stream cancelled) is detached: link.close() is called', async () => {
    const s = await setup();
    const raw = new RawClient(s.socketPath);
    await raw.hello();
    const { link } = await s.host.waitAttached('orders');
    raw.cancel();
    await waitFor('link.close', () => link.closeCalls === 1);
  });

  it('the agent shutting down ends every app: closed resolves with an SdkError (shutting-down) and onDisconnect is called', async () => {
    const s = await setup();
    const disconnects: SdkError[] = [];
    const app = await connect(s, 'orders', { onDisconnect: (e) => disconnects.push(e) });
    const { link } = await s.host.waitAttached('orders');
    await s.api.close();
    const error = await app.closed;
    expect(error).toBeInstanceOf(SdkError);
    expect([error?.kind, error?.agentErrorKind]).toEqual(['closed', 'shutting-down']);
    expect(disconnects).toHaveLength(1);
    expect(link.closeCalls).toBe(1);
    expect(() => statSync(s.socketPath)).toThrow();
  });
});

describe('local API: the socket', () => {
  it('is created with mode 0600', async () => {
    const s = await setup();
    expect(statSync(s.socketPath).mode & 0o777).toBe(0o600);
  });

  it('a stale socket file (nobody listening) is replaced', async () => {
    const socketPath = join(tempDir(), 'agent.sock');
    await makeStaleSocket(socketPath);
    expect(await isSocketFile(socketPath)).toBe(true);
    const s = await setup({}, socketPath);
    await connect(s);
  });

  it('a regular file in the way is refused (not-a-socket), and a live socket (socket-in-use)', async () => {
    const dir = tempDir();
    const filePath = join(dir, 'file.sock');
    writeFileSync(filePath, 'not a socket');
    const host = new FakeHost({});
    const logger = pino({ level: 'silent' });
    const notSocket = (await startLocalApi({ host, socketPath: filePath, logger }).catch((e: unknown) => e)) as LocalApiStartError;
    expect([notSocket.name, notSocket.kind]).toEqual(['LocalApiStartError', 'not-a-socket']);

    const s = await setup({}, join(dir, 'live.sock'));
    const inUse = (await startLocalApi({ host, socketPath: s.socketPath, logger }).catch((e: unknown) => e)) as LocalApiStartError;
    expect(inUse.kind).toBe('socket-in-use');
    await connect(s);
  });

  it('invalid limits are refused at start-up with every problem named', async () => {
    const error = (await startLocalApi({
      host: new FakeHost({}),
      socketPath: join(tempDir(), 'a.sock'),
      logger: pino({ level: 'silent' }),
      limits: { deliverAckTimeoutMs: 0, stateBytesMax: -1 },
    }).catch((e: unknown) => e)) as LocalApiStartError;
    expect(error.kind).toBe('invalid-limits');
    expect(error.message).toMatch(/deliverAckTimeoutMs/);
    expect(error.message).toMatch(/stateBytesMax/);
  });
});

/** Leaves a socket file with no listener behind: bind in a child process that is then killed. */
async function makeStaleSocket(socketPath: string): Promise<void> {
  const { spawn } = await import('node:child_process');
  const child = spawn(
    process.execPath,
    ['-e', `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => console.log('up'))`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  child.kill('SIGKILL');
  await new Promise<void>((resolve) => child.once('exit', () => resolve()));
}

function isSocketFile(path: string): Promise<boolean> {
  return new Promise((resolve) => lstat(path, (error, st) => resolve(!error && st.isSocket())));
}

describe('docs/apps.md example (examples/sdk-app.ts)', () => {
  it('counts orders, forwards each to billing, and a snapshot/restore round trip puts its state back', async () => {
    const s = await setup();
    const { app, state } = await startOrdersApp(s.socketPath);
    // Closed before the server (cleanups run in reverse), so its onDisconnect (exit) never fires.
    cleanups.push(() => app.close());
    const { handler, link } = await s.host.waitAttached('orders');
    await handler.deliver(ORDERS_IN, bytes('{"cents":250}'));
    await handler.deliver(ORDERS_IN, bytes('{"cents":100}'));
    expect(state()).toEqual({ orders: 2, totalCents: 350 });
    expect(link.sends).toEqual([
      { channel: ORDERS_OUT, payload: '{"cents":250}' },
      { channel: ORDERS_OUT, payload: '{"cents":100}' },
    ]);
    const checkpoint = await handler.snapshot(1);
    await handler.deliver(ORDERS_IN, bytes('{"cents":1}'));
    handler.paused();
    await handler.restore(checkpoint, 1);
    handler.resumed();
    expect(state()).toEqual({ orders: 2, totalCents: 350 });
  });
});
