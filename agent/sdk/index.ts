/**
 * The TypeScript SDK: a Node app joins the checkpoints of its VM's agent in a few lines, through the
 * agent's local API (proto/snapshot/v1/local.proto, agent/local-api/server.ts).
 *
 *   const app = await connectApp({ socketPath, app: 'orders',
 *     onMessage: async (channel, payload) => { ... },
 *     snapshot: async (checkpointId) => stateBytes,
 *     restore: async (state, checkpointId) => { ... } });
 *   await app.send('srv1/orders->srv2/billing', bytes);   // resolves when on the wire
 *   await app.close();
 *
 * What the SDK does for the app: it answers the agent's requests one at a time, in the order they
 * came (so onMessage, snapshot and restore never overlap), acknowledges each delivery only after
 * onMessage returned, holds sends while the agent has paused the app, drops sends held across a
 * restore (they came from the state the restore abandons), and tells the agent which Sends were
 * written before each snapshot so that a snapshot racing a send is declined rather than stored.
 *
 * There is no reconnect, on purpose: when the agent restarts, the checkpoints it was running are
 * gone and the app's position in its channels is unknown to the new agent. `closed` resolves with an
 * SdkError and `onDisconnect` is called; the app should exit and let its supervisor (systemd, the
 * container runtime) start it again, so that it attaches afresh.
 */
import { stat } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type Logger, pino } from 'pino';
import type { ChannelId, CheckpointId } from '../../src/ids.js';
import {
  attachPath,
  decodeAgentToApp,
  describeWireError,
  encodeAppToAgent,
  streamEndingErrorKinds,
  type AgentToApp,
  type AppToAgent,
  type LocalErrorKind,
  type LocalSendErrorKind,
} from '../local-api/protocol.js';

export type { LocalErrorKind, LocalSendErrorKind } from '../local-api/protocol.js';

/**
 * - `connect-failed`: no agent on the socket, the agent refused the Hello (`agentErrorKind` says
 *   why: unknown-app, already-attached, ...), or no Welcome within `connectTimeoutMs`;
 * - `send-failed`: the agent (or the SDK, checking the same rules first) refused a send;
 *   `sendErrorKind` says why: unknown-channel, queue-full, channel-failed, closed,
 *   payload-too-large, discarded-by-restore;
 * - `closed`: the link is gone, closed by the app or ended by the agent.
 */
export type SdkErrorKind = 'connect-failed' | 'send-failed' | 'closed';

export class SdkError extends Error {
  readonly kind: SdkErrorKind;
  /** With `send-failed`: the agent's reason. */
  readonly sendErrorKind: LocalSendErrorKind | undefined;
  /** With `connect-failed` or `closed`: the agent's Error kind, when it sent one. */
  readonly agentErrorKind: LocalErrorKind | undefined;

  constructor(
    kind: SdkErrorKind,
    message: string,
    details: { sendErrorKind?: LocalSendErrorKind; agentErrorKind?: LocalErrorKind; cause?: unknown } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'SdkError';
    this.kind = kind;
    this.sendErrorKind = details.sendErrorKind;
    this.agentErrorKind = details.agentErrorKind;
  }
}

export interface ConnectAppOptions {
  /** The agent's local API socket (the agent's configuration says where). */
  readonly socketPath: string;
  /** This app's name on the server, as in the agent's configuration. */
  readonly app: string;
  /**
   * A message from an input channel. Messages come one at a time, in channel order; the next one
   * comes after the returned promise settles. A throw is reported to the agent (it cannot be undone:
   * make onMessage apply a message fully or not at all).
   */
  onMessage(channel: ChannelId, payload: Uint8Array): void | Promise<void>;
  /**
   * Capture the app's state at this point of the cut. Copy it synchronously, before any await:
   * whatever runs after the first await may already be past the cut.
   */
  snapshot(checkpointId: CheckpointId): Uint8Array | Promise<Uint8Array>;
  /** Replace the app's state with this one (rollback or restore). Called while paused. */
  restore(state: Uint8Array, checkpointId: CheckpointId): void | Promise<void>;
  /** The agent paused the app (sync checkpoint, restore); sends wait until resumed. */
  onPaused?(): void;
  onResumed?(): void;
  /** The agent ended the link (it stopped or restarted). The app should exit and be restarted. */
  onDisconnect?(error: SdkError): void;
  /** How long to wait for the agent's Welcome; default 10 s. */
  readonly connectTimeoutMs?: number;
  /** Where the SDK reports what it cannot report otherwise (a callback that threw, ...); silent by default. */
  readonly logger?: Logger;
}

export interface ConnectedApp {
  readonly app: string;
  readonly inputs: readonly ChannelId[];
  readonly outputs: readonly ChannelId[];
  /** True between the agent's Paused and Resumed. */
  readonly paused: boolean;
  /** Resolves when the link ends: undefined after close(), an SdkError when the agent ended it. */
  readonly closed: Promise<SdkError | undefined>;
  /**
   * Sends on an output channel. Resolves once the message is on the wire: awaiting it is how the app
   * feels backpressure. While the app is paused the message waits (in order) and goes out after
   * Resumed; a restore in between drops it (send-failed, discarded-by-restore). Rejects with an
   * SdkError. The payload is not copied before it is written; do not change it until this resolves.
   */
  send(channel: ChannelId, payload: Uint8Array): Promise<void>;
  /** Detaches: the agent declines this app's pending checkpoints. Sends not yet answered reject. */
  close(): Promise<void>;
}

export const CONNECT_TIMEOUT_MS_DEFAULT = 10_000;
/** close() waits this long for the agent to end its side of the stream. */
const closeGraceMs = 2_000;

type Call = grpc.ClientDuplexStream<Uint8Array, Buffer>;

export async function connectApp(options: ConnectAppOptions): Promise<ConnectedApp> {
  const connectTimeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS_DEFAULT;
  if (!Number.isSafeInteger(connectTimeoutMs) || connectTimeoutMs <= 0) {
    throw new SdkError('connect-failed', `connectTimeoutMs must be a positive integer, got ${String(connectTimeoutMs)}`);
  }
  const socketPath = resolvePath(options.socketPath);
  // A missing socket fails at once, rather than after connectTimeoutMs of gRPC retrying.
  try {
    if (!(await stat(socketPath)).isSocket()) throw new SdkError('connect-failed', `${socketPath} is not a socket`);
  } catch (error) {
    if (error instanceof SdkError) throw error;
    throw new SdkError('connect-failed', `no agent socket at ${socketPath} (is the agent running?): ${errorText(error)}`, { cause: error });
  }

  const client = new grpc.Client(`unix://${socketPath}`, grpc.credentials.createInsecure(), {
    // The agent is the trusted side of this socket and hands back states the app itself produced.
    'grpc.max_receive_message_length': -1,
  });
  const deadline = Date.now() + connectTimeoutMs;
  try {
    await new Promise<void>((resolve, reject) => client.waitForReady(deadline, (error) => (error ? reject(error) : resolve())));
  } catch (error) {
    client.close();
    throw new SdkError('connect-failed', `cannot reach the agent on ${socketPath}: ${errorText(error)}`, { cause: error });
  }

  const call: Call = client.makeBidiStreamRequest(
    attachPath,
    (value: Uint8Array) => Buffer.from(value.buffer, value.byteOffset, value.byteLength),
    (bytes: Buffer) => bytes,
  );
  const link = new Link(client, call, options);
  try {
    await link.hello(deadline);
  } catch (error) {
    link.abandon();
    throw error;
  }
  return link;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

interface Waiting {
  readonly resolve: () => void;
  readonly reject: (error: SdkError) => void;
}

interface Held extends Waiting {
  readonly channel: ChannelId;
  readonly payload: Uint8Array;
}

class Link implements ConnectedApp {
  app: string;
  inputs: readonly ChannelId[] = [];
  outputs: readonly ChannelId[] = [];
  paused = false;
  readonly closed: Promise<SdkError | undefined>;

  private readonly log: Logger;
  private resolveClosed!: (value: SdkError | undefined) => void;
  private welcomed: ((welcome: Extract<AgentToApp, { type: 'welcome' }>) => void) | undefined;
  private failHello: ((error: SdkError) => void) | undefined;
  /** Set once the link is over; every later send rejects with it. */
  private ended: SdkError | undefined;
  private closing: Promise<void> | undefined;
  private sendPayloadBytesMax = 0;
  private stateBytesMax = 0;
  /** The id of the last Send written; ids are given at write time, so they follow stream order. */
  private lastSendId = 0;
  private readonly inFlight = new Map<number, Waiting>();
  private held: Held[] = [];
  /** The agent's requests, answered one at a time in arrival order. */
  private chain: Promise<void> = Promise.resolve();
  /** The last stream-ending Error the agent sent, to say why the stream ended. */
  private agentError: Extract<AgentToApp, { type: 'error' }> | undefined;

  constructor(
    private readonly client: grpc.Client,
    private readonly call: Call,
    private readonly options: ConnectAppOptions,
  ) {
    this.app = options.app;
    this.log = (options.logger ?? pino({ enabled: false })).child({ component: 'snapshot-sdk', app: options.app });
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    call.on('data', (bytes: Buffer) => this.onData(bytes));
    call.on('error', (error: Error) => this.onStreamEnd(`stream error: ${error.message}`));
    call.on('end', () => this.onStreamEnd('the agent ended the stream'));
  }

  /** Says Hello and waits for Welcome (or the agent's Error, or the deadline). */
  async hello(deadline: number): Promise<void> {
    const welcome = new Promise<Extract<AgentToApp, { type: 'welcome' }>>((resolve, reject) => {
      this.welcomed = resolve;
      this.failHello = reject;
    });
    const timer = setTimeout(() => {
      this.failHello?.(new SdkError('connect-failed', `no Welcome from the agent within connectTimeoutMs`));
    }, Math.max(0, deadline - Date.now()));
    try {
      this.write({ type: 'hello', app: this.options.app });
      const w = await welcome;
      this.app = w.app;
      this.inputs = Object.freeze([...w.inputs]);
      this.outputs = Object.freeze([...w.outputs]);
      this.sendPayloadBytesMax = w.sendPayloadBytesMax;
      this.stateBytesMax = w.stateBytesMax;
    } finally {
      clearTimeout(timer);
      this.welcomed = undefined;
      this.failHello = undefined;
    }
  }

  /** After a failed hello: drop the stream and the channel without waiting for anything. */
  abandon(): void {
    this.ended ??= new SdkError('closed', 'the connection attempt failed');
    this.call.cancel();
    this.client.close();
    this.resolveClosed(this.ended);
  }

  // ---- the app's calls ------------------------------------------------------------------------

  send(channel: ChannelId, payload: Uint8Array): Promise<void> {
    if (this.ended !== undefined) return Promise.reject(new SdkError('closed', `cannot send: ${this.ended.message}`));
    if (!this.outputs.includes(channel)) {
      return Promise.reject(
        new SdkError('send-failed', `${channel} is not an output of ${this.app}; outputs: ${this.outputs.join(', ') || 'none'}`, {
          sendErrorKind: 'unknown-channel',
        }),
      );
    }
    if (!(payload instanceof Uint8Array)) {
      return Promise.reject(new TypeError('send: payload must be a Uint8Array'));
    }
    if (payload.byteLength > this.sendPayloadBytesMax) {
      return Promise.reject(
        new SdkError('send-failed', `payload is ${payload.byteLength} bytes; the agent accepts at most ${this.sendPayloadBytesMax}`, {
          sendErrorKind: 'payload-too-large',
        }),
      );
    }
    return new Promise<void>((resolve, reject) => {
      // Behind earlier held sends too, so that sends leave in the order they were made.
      if (this.paused || this.held.length > 0) this.held.push({ channel, payload, resolve, reject });
      else this.writeSend(channel, payload, { resolve, reject });
    });
  }

  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    if (this.ended !== undefined) return;
    this.finish(new SdkError('closed', `${this.app} closed its link`));
    // Half-close: the agent detaches the app and ends its side; then the channel can go.
    const ended = new Promise<void>((resolve) => {
      this.call.once('status', () => resolve());
      this.call.once('error', () => resolve());
      setTimeout(resolve, closeGraceMs).unref();
    });
    this.call.end();
    await ended;
    this.client.close();
    this.resolveClosed(undefined);
  }

  // ---- the stream -----------------------------------------------------------------------------

  private writeSend(channel: ChannelId, payload: Uint8Array, waiting: Waiting): void {
    const requestId = ++this.lastSendId;
    this.inFlight.set(requestId, waiting);
    this.write({ type: 'send', requestId, channel, payload });
  }

  private write(message: AppToAgent): void {
    if (this.ended !== undefined && message.type !== 'hello') return;
    const encoded = encodeAppToAgent(message);
    if (!encoded.ok) {
      // Only reachable with a bad app name in Hello: everything else is checked before.
      const error = new SdkError('connect-failed', `cannot say Hello as ${JSON.stringify(this.options.app)}: ${describeWireError(encoded.error)}`);
      if (this.failHello) this.failHello(error);
      else this.log.error({ type: message.type, error: encoded.error }, 'bug: the SDK made a message it cannot encode');
      return;
    }
    this.call.write(encoded.value);
  }

  private onData(bytes: Buffer): void {
    const decoded = decodeAgentToApp(bytes);
    if (!decoded.ok) {
      this.log.warn({ error: decoded.error }, 'malformed message from the agent dropped');
      return;
    }
    const message = decoded.value;
    if (this.welcomed !== undefined) {
      if (message.type === 'welcome') this.welcomed(message);
      else if (message.type === 'error') {
        this.failHello?.(new SdkError('connect-failed', `the agent refused ${this.options.app}: ${message.message}`, { agentErrorKind: message.kind }));
      } else this.log.warn({ type: message.type }, 'message before Welcome dropped');
      return;
    }
    if (this.ended !== undefined) return;
    switch (message.type) {
      case 'welcome':
        this.log.warn('a second Welcome dropped');
        return;
      case 'deliver':
      case 'snapshot-request':
      case 'restore-request':
        this.chain = this.chain.then(() => this.answer(message));
        return;
      case 'paused':
        this.paused = true;
        this.callback('onPaused', () => this.options.onPaused?.());
        return;
      case 'resumed':
        this.paused = false;
        this.callback('onResumed', () => this.options.onResumed?.());
        this.releaseHeld();
        return;
      case 'send-result':
        this.onSendResult(message);
        return;
      case 'error':
        if (streamEndingErrorKinds.has(message.kind)) this.agentError = message;
        this.log.warn({ kind: message.kind, requestId: message.requestId, reason: message.message }, 'error from the agent');
        return;
    }
  }

  private onSendResult(message: Extract<AgentToApp, { type: 'send-result' }>): void {
    const waiting = this.inFlight.get(message.requestId);
    if (waiting === undefined) {
      this.log.warn({ requestId: message.requestId }, 'SendResult for no pending send dropped');
      return;
    }
    this.inFlight.delete(message.requestId);
    if (message.ok) waiting.resolve();
    else waiting.reject(new SdkError('send-failed', message.errorMessage || message.errorKind, { sendErrorKind: message.errorKind }));
  }

  private releaseHeld(): void {
    while (!this.paused && this.held.length > 0 && this.ended === undefined) {
      const next = this.held.shift() as Held;
      this.writeSend(next.channel, next.payload, next);
    }
  }

  /** Answers one request of the agent; never throws (a failing callback becomes ok=false). */
  private async answer(message: Extract<AgentToApp, { type: 'deliver' | 'snapshot-request' | 'restore-request' }>): Promise<void> {
    if (this.ended !== undefined) return;
    const { requestId } = message;
    switch (message.type) {
      case 'deliver': {
        const failure = await this.run('onMessage', () => this.options.onMessage(message.channel, message.payload));
        this.write({ type: 'deliver-done', requestId, ok: failure === undefined, error: failure ?? '' });
        return;
      }
      case 'snapshot-request': {
        // Every Send written so far came before the capture; the agent checks that it had them all.
        const lastSendRequestId = this.lastSendId;
        let state: Uint8Array = new Uint8Array(0);
        let failure = await this.run('snapshot', async () => {
          state = await this.options.snapshot(message.checkpointId);
        });
        if (failure === undefined && !(state instanceof Uint8Array)) failure = 'snapshot() must return a Uint8Array';
        if (failure === undefined && state.byteLength > this.stateBytesMax) {
          failure = `state is ${state.byteLength} bytes; the agent accepts at most ${this.stateBytesMax}`;
        }
        this.write(
          failure === undefined
            ? { type: 'snapshot-reply', requestId, ok: true, state, error: '', lastSendRequestId }
            : { type: 'snapshot-reply', requestId, ok: false, state: new Uint8Array(0), error: failure, lastSendRequestId },
        );
        return;
      }
      case 'restore-request': {
        // Sends held from before the restore were made by the state it replaces.
        const dropped = this.held;
        this.held = [];
        for (const h of dropped) {
          h.reject(new SdkError('send-failed', 'dropped: held while paused, then the app was restored', { sendErrorKind: 'discarded-by-restore' }));
        }
        const failure = await this.run('restore', () => this.options.restore(message.state, message.checkpointId));
        this.write({ type: 'restore-done', requestId, ok: failure === undefined, error: failure ?? '' });
        return;
      }
    }
  }

  /** Runs an app callback; returns why it failed, or undefined. */
  private async run(name: string, callback: () => unknown): Promise<string | undefined> {
    try {
      await callback();
      return undefined;
    } catch (error) {
      this.log.error({ err: error }, `${name} threw`);
      return `${name} threw: ${errorText(error)}`;
    }
  }

  private callback(name: string, callback: () => void): void {
    try {
      callback();
    } catch (error) {
      this.log.error({ err: error }, `${name} threw`);
    }
  }

  // ---- the end --------------------------------------------------------------------------------

  private onStreamEnd(reason: string): void {
    if (this.welcomed !== undefined) {
      this.failHello?.(new SdkError('connect-failed', `the agent ended the stream before Welcome: ${reason}`));
      return;
    }
    if (this.ended !== undefined) return;
    const why = this.agentError === undefined ? reason : `${this.agentError.message} (${this.agentError.kind})`;
    const error = new SdkError('closed', `the agent ended the link: ${why}; restart the app to attach again`, {
      ...(this.agentError === undefined ? {} : { agentErrorKind: this.agentError.kind }),
    });
    this.finish(error);
    this.client.close();
    this.resolveClosed(error);
    this.callback('onDisconnect', () => this.options.onDisconnect?.(error));
  }

  /** Marks the link over and rejects every send that has not been answered. */
  private finish(error: SdkError): void {
    this.ended = error;
    const waiting = [...this.inFlight.values(), ...this.held];
    this.inFlight.clear();
    this.held = [];
    for (const w of waiting) w.reject(new SdkError('closed', `not known to be sent: ${error.message}`, { ...(error.agentErrorKind ? { agentErrorKind: error.agentErrorKind } : {}) }));
  }
}
