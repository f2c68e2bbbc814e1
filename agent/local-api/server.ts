/**
 * The agent's local API: a gRPC server on a unix socket through which an app in any language takes
 * part in checkpoints (proto/snapshot/v1/local.proto; docs/apps.md). One Attach stream per app: the
 * server turns the stream into an AppHandler for the agent (deliver, snapshot, restore, paused,
 * resumed become requests on the stream, answered by the app) and the app's Sends into calls of the
 * AppLink the agent handed back.
 *
 * A thin shell: it makes no checkpoint decision. What it owns is the stream discipline: Hello
 * first, answers matched to requests by id, a named timeout on every request, size limits, and the
 * rule that nothing an app writes can crash the agent (a message that does not decode or is not
 * expected gets an Error message, a log line and a counter).
 *
 * Access control is the socket file's mode: 0600 by default, so only the user the agent runs as (the
 * VM's app user) can connect. A deployment where the agent and the apps run as different users puts
 * both in one group and sets `socketMode: 0o660`; the socket should live in a directory only those
 * users can enter (e.g. /run/snapshot-agent, 0750), which also closes the short window between
 * bind() and chmod() during which the socket has the process umask's mode.
 */
import { chmod, lstat, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { resolve as resolvePath } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { ChannelId, CheckpointId } from '../../src/ids.js';
import { AppSendError, type AppHandler, type AppHost, type AppLink } from '../app.js';
import {
  agentLocalService,
  decodeAppToAgent,
  describeWireError,
  encodeAgentToApp,
  type AgentToApp,
  type AppToAgent,
  type LocalErrorKind,
  type LocalSendErrorKind,
} from './protocol.js';

// ------------------------------------------------------------------------------------------------
// Limits
// ------------------------------------------------------------------------------------------------

export interface LocalApiLimits {
  /** Largest Send payload accepted; a larger one is answered PAYLOAD_TOO_LARGE. */
  readonly sendPayloadBytesMax: number;
  /** Largest state an app may return from a snapshot; a larger one declines the checkpoint. */
  readonly stateBytesMax: number;
  /** How long a new stream may take to say Hello before it is ended. */
  readonly helloTimeoutMs: number;
  /** How long the app may take to handle one delivered message (Deliver -> DeliverDone). */
  readonly deliverAckTimeoutMs: number;
  /** How long the app may take to capture its state (SnapshotRequest -> SnapshotReply). */
  readonly snapshotReplyTimeoutMs: number;
  /** How long the app may take to take a state back (RestoreRequest -> RestoreDone). */
  readonly restoreReplyTimeoutMs: number;
}

export const LOCAL_API_LIMITS_DEFAULT: LocalApiLimits = {
  // The NATS server's default max_payload: a larger message could not travel on a channel anyway.
  sendPayloadBytesMax: 1024 * 1024,
  stateBytesMax: 64 * 1024 * 1024,
  helloTimeoutMs: 5_000,
  deliverAckTimeoutMs: 30_000,
  snapshotReplyTimeoutMs: 30_000,
  restoreReplyTimeoutMs: 60_000,
};

/** Room for the protobuf framing around the largest payload or state, in the gRPC message limit. */
const frameOverheadBytes = 64 * 1024;
/** sun_path is 108 bytes on Linux, including the terminating NUL. */
const socketPathBytesMax = 107;

/**
 * Fills in defaults and validates every limit once, at start-up, so a bad setting fails there with
 * every problem named rather than as a strange timeout later.
 */
export function checkLocalApiLimits(
  limits: Partial<LocalApiLimits> = {},
): { ok: true; value: LocalApiLimits } | { ok: false; problems: string[] } {
  const value: LocalApiLimits = { ...LOCAL_API_LIMITS_DEFAULT, ...limits };
  const problems: string[] = [];
  for (const [name, v] of Object.entries(value) as [keyof LocalApiLimits, unknown][]) {
    if (!(name in LOCAL_API_LIMITS_DEFAULT)) problems.push(`${name} is not a local API limit`);
    else if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) problems.push(`${name} must be a positive integer, got ${String(v)}`);
  }
  // Timers are 32-bit in Node: a longer timeout would fire at once.
  for (const name of ['helloTimeoutMs', 'deliverAckTimeoutMs', 'snapshotReplyTimeoutMs', 'restoreReplyTimeoutMs'] as const) {
    if (value[name] > 0x7fff_ffff) problems.push(`${name} must be at most ${0x7fff_ffff} ms, got ${value[name]}`);
  }
  // grpc-js keeps message lengths in 32-bit signed integers.
  if (Math.max(value.sendPayloadBytesMax, value.stateBytesMax) + frameOverheadBytes > 0x7fff_ffff) {
    problems.push(`sendPayloadBytesMax and stateBytesMax must stay below ${0x7fff_ffff - frameOverheadBytes} bytes`);
  }
  return problems.length === 0 ? { ok: true, value } : { ok: false, problems };
}

// ------------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------------

export type LocalApiStartErrorKind = 'invalid-limits' | 'socket-path-too-long' | 'socket-in-use' | 'not-a-socket' | 'bind-failed';

/** startLocalApi could not start; the message says what to change. */
export class LocalApiStartError extends Error {
  constructor(
    readonly kind: LocalApiStartErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'LocalApiStartError';
  }
}

/** The three calls the agent makes into a local-API app and waits on. */
export type AppCallName = 'deliver' | 'snapshot' | 'restore';

/**
 * Why a call into a local-API app failed. The agent declines what needed the answer:
 * - `timeout`: no answer within the call's named limit (the app is stuck or too slow);
 * - `detached`: the app's stream ended (the app exited or closed) before it answered;
 * - `app-failed`: the app answered ok=false (its callback threw), or broke the protocol;
 * - `state-too-large`: the snapshot state is over `stateBytesMax`;
 * - `send-raced`: the app captured its state after writing a Send that reached the agent only after
 *   the cut; the state disagrees with the channel counts, so this snapshot must not be used;
 * - `invalid-request`: the agent asked something the protocol cannot carry (a bug in the agent).
 */
export type AppCallErrorKind = 'timeout' | 'detached' | 'app-failed' | 'state-too-large' | 'send-raced' | 'invalid-request';

export class AppCallError extends Error {
  constructor(
    readonly kind: AppCallErrorKind,
    readonly call: AppCallName,
    message: string,
  ) {
    super(message);
    this.name = 'AppCallError';
  }
}

// ------------------------------------------------------------------------------------------------
// The server
// ------------------------------------------------------------------------------------------------

export interface LocalApiOptions {
  readonly host: AppHost;
  /** Where the socket file goes; a stale socket there is replaced, anything else is refused. */
  readonly socketPath: string;
  readonly logger: Logger;
  readonly limits?: Partial<LocalApiLimits>;
  /** The socket file's mode; 0o600 unless the apps run as another user of the agent's group. */
  readonly socketMode?: number;
}

/** Counters for the agent's stats and tests; each grows only. */
export interface LocalApiStats {
  streams: number;
  attached: number;
  /** Messages that did not decode or validate. */
  malformed: number;
  /** Messages that decoded but were not expected (no Hello first, unknown request id, ...). */
  unexpected: number;
  /** Answers that came after their request timed out (or twice): dropped quietly. */
  lateReplies: number;
  replyTimeouts: number;
  /** Snapshots refused because a Send raced the cut. */
  sendsRaced: number;
}

export interface LocalApi {
  /** The absolute socket path the server listens on. */
  readonly socketPath: string;
  readonly limits: LocalApiLimits;
  readonly stats: Readonly<LocalApiStats>;
  /** Tells every attached app (Error SHUTTING_DOWN), detaches it, stops listening, removes the socket. */
  close(): Promise<void>;
}

/** Shutdown waits this long for streams to finish before it cuts them. */
const shutdownGraceMs = 2_000;

export async function startLocalApi(options: LocalApiOptions): Promise<LocalApi> {
  const checked = checkLocalApiLimits(options.limits);
  if (!checked.ok) throw new LocalApiStartError('invalid-limits', `local API limits: ${checked.problems.join('; ')}`);
  const limits = checked.value;
  const socketPath = resolvePath(options.socketPath);
  if (Buffer.byteLength(socketPath) > socketPathBytesMax) {
    throw new LocalApiStartError(
      'socket-path-too-long',
      `socket path ${socketPath} is ${Buffer.byteLength(socketPath)} bytes; a unix socket path is at most ${socketPathBytesMax}`,
    );
  }
  const log = options.logger.child({ component: 'local-api' });
  await removeStaleSocket(socketPath);

  const stats: LocalApiStats = { streams: 0, attached: 0, malformed: 0, unexpected: 0, lateReplies: 0, replyTimeouts: 0, sendsRaced: 0 };
  const sessions = new Set<Session>();
  let closing = false;

  const server = new grpc.Server({
    'grpc.max_receive_message_length': Math.max(limits.sendPayloadBytesMax, limits.stateBytesMax) + frameOverheadBytes,
    'grpc.max_send_message_length': -1,
  });
  server.addService(agentLocalService, {
    attach: (call: grpc.ServerDuplexStream<Buffer, Uint8Array>) => {
      stats.streams += 1;
      const session = new Session(call, { host: options.host, limits, log, stats, forget: (s) => sessions.delete(s) });
      if (closing) {
        session.fail('shutting-down', 'the agent is shutting down');
        return;
      }
      sessions.add(session);
      session.start();
    },
  });

  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (error) => {
      if (error) reject(new LocalApiStartError('bind-failed', `cannot listen on ${socketPath}: ${error.message}`, { cause: error }));
      else resolve();
    });
  });
  try {
    await chmod(socketPath, options.socketMode ?? 0o600);
  } catch (error) {
    server.forceShutdown();
    throw new LocalApiStartError('bind-failed', `cannot set the mode of ${socketPath}: ${errorText(error)}`, { cause: error });
  }
  log.info({ socketPath, limits }, 'local API listening');

  return {
    socketPath,
    limits,
    stats,
    async close() {
      if (closing) return;
      closing = true;
      for (const session of [...sessions]) session.fail('shutting-down', 'the agent is shutting down');
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, shutdownGraceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      await rm(socketPath, { force: true });
      log.info({ socketPath }, 'local API closed');
    },
  };
}

/**
 * A socket file left by an agent that died cannot be bound again, so it is removed, but only when
 * it is a socket and nobody answers on it: never another agent's live socket, never a regular file.
 */
async function removeStaleSocket(socketPath: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(socketPath)).isSocket();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new LocalApiStartError('bind-failed', `cannot inspect ${socketPath}: ${errorText(error)}`, { cause: error });
  }
  if (!isSocket) throw new LocalApiStartError('not-a-socket', `${socketPath} exists and is not a socket; refusing to replace it`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect({ path: socketPath });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new LocalApiStartError('socket-in-use', `another process is listening on ${socketPath} (is an agent already running?)`);
  await rm(socketPath, { force: true });
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ------------------------------------------------------------------------------------------------
// One Attach stream
// ------------------------------------------------------------------------------------------------

interface SessionDeps {
  readonly host: AppHost;
  readonly limits: LocalApiLimits;
  readonly log: Logger;
  readonly stats: LocalApiStats;
  readonly forget: (session: Session) => void;
}

interface Pending {
  readonly call: AppCallName;
  readonly resolve: (value: Uint8Array) => void;
  readonly reject: (error: AppCallError) => void;
  readonly timer: NodeJS.Timeout;
  /** For a snapshot: the id of the last Send received when the request was made. */
  readonly lastSendIdAtRequest: number;
}

const replyType: Record<AppCallName, AppToAgent['type']> = {
  deliver: 'deliver-done',
  snapshot: 'snapshot-reply',
  restore: 'restore-done',
};

const timeoutName: Record<AppCallName, 'deliverAckTimeoutMs' | 'snapshotReplyTimeoutMs' | 'restoreReplyTimeoutMs'> = {
  deliver: 'deliverAckTimeoutMs',
  snapshot: 'snapshotReplyTimeoutMs',
  restore: 'restoreReplyTimeoutMs',
};

const sendErrorKinds: ReadonlySet<string> = new Set<LocalSendErrorKind>([
  'unknown-channel',
  'queue-full',
  'channel-failed',
  'closed',
  'payload-too-large',
  'discarded-by-restore',
]);

class Session {
  private phase: 'awaiting-hello' | 'attached' | 'ended' = 'awaiting-hello';
  private log: Logger;
  private link: AppLink | undefined;
  private helloTimer: NodeJS.Timeout | undefined;
  /** Messages the agent wrote before Welcome went out (it may call the handler inside attach()). */
  private beforeWelcome: Uint8Array[] | undefined = [];
  /** The id of the agent's last request on this stream; its requests are numbered 1, 2, 3, ... */
  private lastRequestId = 0;
  private readonly pending = new Map<number, Pending>();
  /** The id of the app's last Send; they must increase. */
  private lastSendId = 0;
  private restoresPending = 0;

  constructor(
    private readonly call: grpc.ServerDuplexStream<Buffer, Uint8Array>,
    private readonly deps: SessionDeps,
  ) {
    this.log = deps.log;
  }

  start(): void {
    this.call.on('data', (bytes: Buffer) => this.onData(bytes));
    this.call.on('end', () => this.end('the app ended the stream', true));
    this.call.on('cancelled', () => this.end('the stream was cancelled (the app went away)', false));
    this.call.on('error', (error: Error) => this.end(`stream error: ${error.message}`, false));
    this.helloTimer = setTimeout(() => {
      this.fail('hello-timeout', `no Hello within helloTimeoutMs=${this.deps.limits.helloTimeoutMs} ms`);
    }, this.deps.limits.helloTimeoutMs);
  }

  /** Tells the app why with an Error, then ends the stream and detaches. */
  fail(kind: LocalErrorKind, message: string): void {
    if (this.phase === 'ended') return;
    this.log[kind === 'shutting-down' ? 'info' : 'warn']({ kind, reason: message }, 'ending an app stream');
    this.write({ type: 'error', kind, message, requestId: 0 });
    this.end(message, true);
  }

  // ---- from the app ---------------------------------------------------------------------------

  private onData(bytes: Buffer): void {
    if (this.phase === 'ended') return;
    const decoded = decodeAppToAgent(bytes);
    if (!decoded.ok) {
      this.deps.stats.malformed += 1;
      this.refuse(`malformed message: ${describeWireError(decoded.error)}`);
      return;
    }
    const message = decoded.value;
    if (this.phase === 'awaiting-hello') {
      if (message.type !== 'hello') {
        this.deps.stats.unexpected += 1;
        this.refuse(`the first message must be Hello, got ${message.type}`);
        return;
      }
      this.attach(message.app);
      return;
    }
    switch (message.type) {
      case 'hello':
        this.deps.stats.unexpected += 1;
        this.refuse('Hello again: the app is already attached');
        return;
      case 'send':
        this.onSend(message);
        return;
      case 'deliver-done':
      case 'snapshot-reply':
      case 'restore-done':
        this.onReply(message);
        return;
    }
  }

  /**
   * A message that breaks the protocol: an Error to the app and a log line. Before the app is
   * attached nothing can be salvaged, so the stream ends; afterwards the session goes on (a lost
   * answer surfaces as that request's timeout).
   */
  private refuse(message: string): void {
    if (this.phase === 'awaiting-hello') {
      this.fail('protocol', message);
      return;
    }
    this.log.warn({ reason: message }, 'protocol violation by the app');
    this.write({ type: 'error', kind: 'protocol', message, requestId: 0 });
  }

  private attach(app: string): void {
    clearTimeout(this.helloTimer);
    this.log = this.deps.log.child({ app });
    let result: ReturnType<AppHost['attach']>;
    try {
      result = this.deps.host.attach(app, this.handler());
    } catch (error) {
      this.log.error({ err: error }, 'host.attach threw');
      this.fail('internal', `the agent could not attach ${app}: ${errorText(error)}`);
      return;
    }
    if (!result.ok) {
      this.fail(result.error.kind, result.error.message);
      return;
    }
    this.link = result.link;
    this.phase = 'attached';
    this.deps.stats.attached += 1;
    this.write({
      type: 'welcome',
      app: result.link.app,
      inputs: result.link.inputs,
      outputs: result.link.outputs,
      sendPayloadBytesMax: this.deps.limits.sendPayloadBytesMax,
      stateBytesMax: this.deps.limits.stateBytesMax,
    });
    const queued = this.beforeWelcome ?? [];
    this.beforeWelcome = undefined;
    for (const bytes of queued) this.call.write(bytes);
    this.log.info({ inputs: result.link.inputs, outputs: result.link.outputs }, 'app attached');
  }

  private onSend(message: Extract<AppToAgent, { type: 'send' }>): void {
    const { requestId, channel, payload } = message;
    if (requestId <= this.lastSendId) {
      this.deps.stats.unexpected += 1;
      this.refuse(`Send request_id ${requestId} does not increase (the last was ${this.lastSendId}); not sent`);
      return;
    }
    this.lastSendId = requestId;
    if (payload.byteLength > this.deps.limits.sendPayloadBytesMax) {
      this.sendResult(requestId, 'payload-too-large', `payload is ${payload.byteLength} bytes; sendPayloadBytesMax is ${this.deps.limits.sendPayloadBytesMax}`);
      return;
    }
    if (this.restoresPending > 0) {
      // Written before the app took its restored state: a message of the abandoned future.
      this.sendResult(requestId, 'discarded-by-restore', 'sent while the app was being restored; dropped');
      return;
    }
    const link = this.link as AppLink;
    let sent: Promise<void>;
    try {
      sent = link.send(channel, payload);
    } catch (error) {
      sent = Promise.reject(error);
    }
    sent.then(
      () => this.write({ type: 'send-result', requestId, ok: true }),
      (error: unknown) => {
        if (error instanceof AppSendError && sendErrorKinds.has(error.kind)) {
          this.sendResult(requestId, error.kind, error.message);
        } else {
          this.log.error({ err: error, channel }, 'link.send failed with something other than an AppSendError');
          this.sendResult(requestId, 'channel-failed', errorText(error));
        }
      },
    );
  }

  private sendResult(requestId: number, errorKind: LocalSendErrorKind, errorMessage: string): void {
    this.write({ type: 'send-result', requestId, ok: false, errorKind, errorMessage });
  }

  private onReply(message: Extract<AppToAgent, { type: 'deliver-done' | 'snapshot-reply' | 'restore-done' }>): void {
    const { requestId } = message;
    const pending = this.pending.get(requestId);
    if (pending === undefined) {
      if (requestId <= this.lastRequestId) {
        // Too late (its request timed out and the app was told) or twice: an outcome, not a fault.
        this.deps.stats.lateReplies += 1;
        this.log.debug({ requestId, type: message.type }, 'late or duplicate answer dropped');
      } else {
        this.deps.stats.unexpected += 1;
        this.refuse(`${message.type} answers request ${requestId}, which the agent never made`);
      }
      return;
    }
    if (replyType[pending.call] !== message.type) {
      this.deps.stats.unexpected += 1;
      this.refuse(`request ${requestId} is a ${pending.call} request; ${message.type} does not answer it`);
      return;
    }
    this.settle(requestId, pending);
    if (!message.ok) {
      pending.reject(new AppCallError('app-failed', pending.call, `the app failed to ${pending.call}: ${message.error || '(no reason given)'}`));
      return;
    }
    if (message.type !== 'snapshot-reply') {
      pending.resolve(new Uint8Array(0));
      return;
    }
    const { state, lastSendRequestId } = message;
    if (state.byteLength > this.deps.limits.stateBytesMax) {
      const text = `state is ${state.byteLength} bytes; stateBytesMax is ${this.deps.limits.stateBytesMax}`;
      this.write({ type: 'error', kind: 'state-too-large', message: text, requestId });
      pending.reject(new AppCallError('state-too-large', 'snapshot', text));
      return;
    }
    if (lastSendRequestId > this.lastSendId) {
      this.deps.stats.unexpected += 1;
      const text = `snapshot reply claims Send ${lastSendRequestId} was written before it, but the last Send received is ${this.lastSendId}`;
      this.refuse(text);
      pending.reject(new AppCallError('app-failed', 'snapshot', text));
      return;
    }
    if (lastSendRequestId > pending.lastSendIdAtRequest) {
      this.deps.stats.sendsRaced += 1;
      const text =
        `the app captured its state after writing Send ${lastSendRequestId}, which reached the agent after the cut ` +
        `(the last Send before it was ${pending.lastSendIdAtRequest}); this snapshot would disagree with the channel counts`;
      this.log.info({ requestId, lastSendRequestId, lastSendIdAtRequest: pending.lastSendIdAtRequest }, 'snapshot raced a send');
      pending.reject(new AppCallError('send-raced', 'snapshot', text));
      return;
    }
    pending.resolve(state);
  }

  private settle(requestId: number, pending: Pending): void {
    clearTimeout(pending.timer);
    this.pending.delete(requestId);
    if (pending.call === 'restore') this.restoresPending -= 1;
  }

  // ---- from the agent -------------------------------------------------------------------------

  private handler(): AppHandler {
    return {
      deliver: async (channel: ChannelId, payload: Uint8Array) => {
        await this.request('deliver', (requestId) => ({ type: 'deliver', requestId, channel, payload }));
      },
      snapshot: (checkpointId: CheckpointId) =>
        this.request('snapshot', (requestId) => ({ type: 'snapshot-request', requestId, checkpointId })),
      restore: async (state: Uint8Array, checkpointId: CheckpointId) => {
        await this.request('restore', (requestId) => ({ type: 'restore-request', requestId, checkpointId, state }));
      },
      paused: () => this.write({ type: 'paused' }),
      resumed: () => this.write({ type: 'resumed' }),
    };
  }

  private request(call: AppCallName, make: (requestId: number) => AgentToApp): Promise<Uint8Array> {
    if (this.phase === 'ended') {
      return Promise.reject(new AppCallError('detached', call, `the app's stream has ended; cannot ${call}`));
    }
    const requestId = ++this.lastRequestId;
    const message = make(requestId);
    const encoded = encodeAgentToApp(message);
    if (!encoded.ok) {
      return Promise.reject(new AppCallError('invalid-request', call, `cannot encode the ${call} request: ${describeWireError(encoded.error)}`));
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      const limitName = timeoutName[call];
      const timeoutMs = this.deps.limits[limitName];
      const timer = setTimeout(() => {
        const pending = this.pending.get(requestId);
        if (pending === undefined) return;
        this.settle(requestId, pending);
        this.deps.stats.replyTimeouts += 1;
        const text = `no ${replyType[call]} for request ${requestId} within ${limitName}=${timeoutMs} ms`;
        this.log.warn({ requestId, call, [limitName]: timeoutMs }, 'the app did not answer in time');
        this.write({ type: 'error', kind: 'reply-timeout', message: text, requestId });
        reject(new AppCallError('timeout', call, text));
      }, timeoutMs);
      this.pending.set(requestId, { call, resolve, reject, timer, lastSendIdAtRequest: this.lastSendId });
      if (call === 'restore') this.restoresPending += 1;
      this.writeBytes(message.type, encoded.value);
    });
  }

  private write(message: AgentToApp): void {
    if (this.phase === 'ended') return;
    const encoded = encodeAgentToApp(message);
    if (!encoded.ok) {
      this.log.error({ type: message.type, error: encoded.error }, 'bug: the agent made a message it cannot encode');
      return;
    }
    this.writeBytes(message.type, encoded.value);
  }

  /** Welcome goes first: anything but an Error written before it waits for it. */
  private writeBytes(type: AgentToApp['type'], bytes: Uint8Array): void {
    if (this.phase === 'ended') return;
    if (this.beforeWelcome !== undefined && type !== 'welcome' && type !== 'error') {
      this.beforeWelcome.push(bytes);
      return;
    }
    this.call.write(bytes);
  }

  // ---- the end --------------------------------------------------------------------------------

  private end(reason: string, endStream: boolean): void {
    if (this.phase === 'ended') return;
    const wasAttached = this.phase === 'attached';
    this.phase = 'ended';
    clearTimeout(this.helloTimer);
    this.deps.forget(this);
    for (const [requestId, pending] of [...this.pending]) {
      this.settle(requestId, pending);
      pending.reject(new AppCallError('detached', pending.call, `the app's stream ended before it answered: ${reason}`));
    }
    if (endStream) {
      try {
        this.call.end();
      } catch (error) {
        this.log.debug({ err: error }, 'ending an already closed stream');
      }
    }
    if (wasAttached && this.link !== undefined) {
      this.log.info({ reason }, 'app detached');
      this.link.close().catch((error: unknown) => this.log.error({ err: error }, 'link.close failed'));
    }
  }
}
