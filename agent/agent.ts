/**
 * The agent daemon: one per VM, the only NATS client in the VM. It registers, heartbeats, takes the
 * coordinator's commands from its control subject (deduplicated by request id, fenced by epoch),
 * hosts one `Endpoint` per attached app, and publishes what they report. Anything that arrives on a
 * subject and does not decode is logged, counted and dropped; nothing crashes the daemon.
 */
import { randomBytes } from 'node:crypto';
import { connect, Events, type NatsConnection, type Subscription } from 'nats';
import type { Logger } from 'pino';
import type { RecordedMessage } from '../src/core/types.js';
import type { ChannelId, Epoch } from '../src/ids.js';
import {
  controlSubject,
  decodeChannelState,
  decodeControl,
  encodeEvent,
  eventSubject,
  type AgentEventBody,
  type AppRestore,
  type Control,
  type WireDeclineReason,
} from '../src/wire/index.js';
import type { AppHandler, AppHost, AppLink, AttachError } from './app.js';
import { openInbound, openOutbound } from './channels/index.js';
import type { AgentConfig } from './config.js';
import { Endpoint, type StatePort } from './endpoint.js';
import { JetStreamStateObjects, type StateObjects } from './state-store.js';

export const AGENT_VERSION = '0.1.0';

export interface AgentCounters {
  malformedControl: number;
  duplicateControl: number;
  foreignControl: number;
  staleEpochControl: number;
  eventsPublished: number;
  eventsUnencodable: number;
}

export class Agent implements AppHost {
  private readonly endpoints = new Map<string, Promise<Endpoint>>();
  private readonly seenRequests = new Map<string, true>();
  private readonly bootId = randomBytes(4).toString('hex');
  private eventCounter = 0;
  private epochNow: Epoch = 0;
  private heartbeat: NodeJS.Timeout | undefined;
  private sub: Subscription | undefined;
  private stopped = false;
  readonly counters: AgentCounters = {
    malformedControl: 0,
    duplicateControl: 0,
    foreignControl: 0,
    staleEpochControl: 0,
    eventsPublished: 0,
    eventsUnencodable: 0,
  };

  static async start(config: AgentConfig, logger: Logger, nc?: NatsConnection): Promise<Agent> {
    const connection =
      nc ??
      (await connect({
        servers: [...config.nats.servers],
        name: `snapshot-agent ${config.tenant}/${config.server}`,
        maxReconnectAttempts: -1,
        ...(config.nats.user !== undefined ? { user: config.nats.user } : {}),
        ...(config.nats.pass !== undefined ? { pass: config.nats.pass } : {}),
        ...(config.nats.token !== undefined ? { token: config.nats.token } : {}),
      }));
    const agent = new Agent(config, logger.child({ tenant: config.tenant, server: config.server }), connection, new JetStreamStateObjects(connection));
    await agent.begin();
    return agent;
  }

  private constructor(
    private readonly config: AgentConfig,
    private readonly log: Logger,
    readonly nc: NatsConnection,
    private readonly objects: StateObjects,
  ) {}

  get epoch(): Epoch {
    return this.epochNow;
  }

  private async begin(): Promise<void> {
    this.sub = this.nc.subscribe(controlSubject(this.config.tenant, this.config.server), {
      callback: (err, msg) => {
        if (err) {
          this.log.error({ err }, 'control subscription failed');
          return;
        }
        this.onControl(msg.data);
      },
    });
    await this.nc.flush();
    this.register();
    this.heartbeat = setInterval(() => this.sendHeartbeat(undefined), this.config.heartbeatIntervalMs);
    this.heartbeat.unref();
    void (async () => {
      for await (const s of this.nc.status()) {
        if (s.type === Events.Reconnect) {
          this.log.info('reconnected to NATS: registering again');
          this.register();
        } else if (s.type === Events.Disconnect) {
          this.log.warn('disconnected from NATS');
        }
      }
    })().catch(() => undefined);
    this.log.info({ apps: this.config.apps.map((a) => a.name) }, 'agent started');
  }

  // ---- apps -------------------------------------------------------------------------------------

  attach(app: string, handler: AppHandler): { ok: true; link: AppLink } | { ok: false; error: AttachError } {
    const cfg = this.config.apps.find((a) => a.name === app);
    if (!cfg) {
      return { ok: false, error: { kind: 'unknown-app', message: `${app} is not configured on ${this.config.server}; configured: ${this.config.apps.map((a) => a.name).join(', ')}` } };
    }
    if (this.endpoints.has(app)) return { ok: false, error: { kind: 'already-attached', message: `${app} is already attached` } };
    const tenant = this.config.tenant;
    const limits = this.config.channels;
    const log = this.log.child({ component: 'endpoint' });
    const ready = Endpoint.open({
      server: this.config.server,
      app,
      inputs: cfg.inputs,
      outputs: cfg.outputs,
      epoch: this.epochNow,
      handler,
      openOutbound: (channel, epoch, lastSentSeq) => openOutbound(this.nc, { tenant, channel, epoch, lastSentSeq, limits, logger: log }),
      openInbound: (channel, epoch, deliveredSeq, onEnvelope) => openInbound(this.nc, { tenant, channel, epoch, deliveredSeq, limits, logger: log, onEnvelope }),
      state: this.statePort(),
      publish: (event) => this.publish(event),
      clock: {
        nowMs: () => performance.now(),
        setTimer: (afterMs, fire) => {
          const t = setTimeout(fire, afterMs);
          t.unref();
          return () => clearTimeout(t);
        },
      },
      logger: log,
      limits: { triggerWaitMs: this.config.triggerWaitMs },
    });
    this.endpoints.set(app, ready);
    ready.catch((error: unknown) => {
      this.log.error({ app, err: error }, 'could not open the app endpoint');
      this.endpoints.delete(app);
    });
    const link: AppLink = {
      app,
      inputs: cfg.inputs,
      outputs: cfg.outputs,
      send: (channel, payload) => ready.then((e) => e.send(channel, payload)),
      close: async () => {
        const e = await ready.catch(() => undefined);
        this.endpoints.delete(app);
        await e?.close();
      },
    };
    return { ok: true, link };
  }

  /** Resolves when every attached app's channels are open. */
  async ready(): Promise<void> {
    await Promise.all(this.endpoints.values());
  }

  private statePort(): StatePort {
    const tenant = this.config.tenant;
    return {
      put: async (name, bytes) => {
        const r = await this.objects.put(tenant, name, bytes);
        if (!r.ok) throw new Error(r.error.message);
        return r.value;
      },
      get: async (ref) => {
        const r = await this.objects.get(tenant, ref);
        if (!r.ok) throw new Error(r.error.message);
        return r.value;
      },
    };
  }

  // ---- the coordinator's commands ----------------------------------------------------------------

  private onControl(bytes: Uint8Array): void {
    const decoded = decodeControl(bytes);
    if (!decoded.ok) {
      this.counters.malformedControl += 1;
      this.log.warn({ error: decoded.error.message, field: decoded.error.field }, 'malformed control message dropped');
      return;
    }
    const c = decoded.value;
    if (c.tenant !== this.config.tenant || c.server !== this.config.server) {
      this.counters.foreignControl += 1;
      this.log.warn({ to: `${c.tenant}/${c.server}` }, 'control message for another agent dropped');
      return;
    }
    if (this.seenRequests.has(c.requestId)) {
      this.counters.duplicateControl += 1;
      this.log.debug({ requestId: c.requestId }, 'duplicate control message dropped');
      return;
    }
    this.seenRequests.set(c.requestId, true);
    if (this.seenRequests.size > this.config.controlIdsRememberedMax) {
      this.seenRequests.delete(this.seenRequests.keys().next().value as string);
    }
    // A restore brings the new epoch; everything else must be of the epoch we are in.
    if (c.epoch < this.epochNow || (c.type !== 'restore' && c.type !== 'ping' && c.epoch > this.epochNow)) {
      this.counters.staleEpochControl += 1;
      this.log.warn({ type: c.type, epoch: c.epoch, agentEpoch: this.epochNow }, 'control message of another epoch');
      if (c.type === 'trigger') this.declineAll(c, 'stale-epoch', `agent ${this.config.server} is at epoch ${this.epochNow}, the trigger at ${c.epoch}`);
      return;
    }
    this.handle(c).catch((error: unknown) => this.log.error({ type: c.type, err: error }, 'control handling failed'));
  }

  private async handle(c: Control): Promise<void> {
    const log = this.log.child({ requestId: c.requestId, ...('checkpointId' in c ? { checkpointId: c.checkpointId } : {}) });
    switch (c.type) {
      case 'trigger': {
        log.info({ policy: c.policy.kind, initiators: c.initiatorApps }, 'trigger');
        for (const cfg of this.config.apps) {
          const ready = this.endpoints.get(cfg.name);
          if (!ready) {
            this.publish({ type: 'decline', checkpointId: c.checkpointId, app: cfg.name, reason: 'unknown-app', detail: `${cfg.name} is not attached to the agent on ${this.config.server}` }, c.requestId);
            continue;
          }
          const e = await ready;
          e.trigger({
            checkpointId: c.checkpointId,
            policy: c.policy,
            timeoutMs: c.timeoutMs,
            initiator: c.initiatorApps.includes(cfg.name),
            backEdgeInputs: c.backEdgeChannels.filter((ch) => e.inputs.includes(ch)),
          });
        }
        return;
      }
      case 'abort':
        log.info({ reason: c.reason }, 'abort');
        for (const e of await this.attached()) e.abort(c.checkpointId);
        return;
      case 'complete':
        for (const e of await this.attached()) e.complete(c.checkpointId);
        return;
      case 'restore':
        return this.restore(c, log);
      case 'resume':
        for (const e of await this.attached()) e.resume();
        this.publish({ type: 'resumed' }, c.requestId);
        log.info('resumed');
        return;
      case 'ping':
        this.sendHeartbeat(c.requestId);
        return;
      case 'freeze':
      case 'thaw':
        this.publish({ type: 'decline', checkpointId: c.checkpointId, reason: 'freeze-failed', detail: `${c.type} is not supported by agent ${AGENT_VERSION}` }, c.requestId);
        return;
    }
  }

  private async restore(c: Extract<Control, { type: 'restore' }>, log: Logger): Promise<void> {
    log.info({ epoch: c.epoch, apps: c.apps.map((a) => a.app) }, 'restore');
    const restored: string[] = [];
    try {
      for (const a of c.apps) {
        const ready = this.endpoints.get(a.app);
        if (!ready) throw new RestoreError('unknown-app', `${a.app} is not attached on ${this.config.server}`);
        const endpoint = await ready;
        const port = this.statePort();
        const state = await port.get(a.state);
        const channelStates = a.channelState ? this.channelStates(a, await port.get(a.channelState)) : {};
        await endpoint.restore(
          { checkpointId: c.checkpointId, epoch: c.epoch, state: a.state, ...(a.channelState ? { channelState: a.channelState } : {}), counts: a.counts, channelAliases: a.channelAliases },
          channelStates,
          state,
        );
        restored.push(a.app);
      }
      this.epochNow = c.epoch;
      this.publish({ type: 'restored', checkpointId: c.checkpointId, apps: restored }, c.requestId);
      log.info({ epoch: c.epoch }, 'restored');
    } catch (error) {
      const reason: WireDeclineReason = error instanceof RestoreError ? error.reason : 'restore-failed';
      const detail = error instanceof Error ? error.message : String(error);
      log.error({ err: error }, 'restore failed');
      this.publish({ type: 'decline', checkpointId: c.checkpointId, reason, detail }, c.requestId);
    }
  }

  /** Decodes an app's recorded channel state and renames channels restored into other apps. */
  private channelStates(a: AppRestore, bytes: Uint8Array): Record<ChannelId, RecordedMessage<Uint8Array>[]> {
    const decoded = decodeChannelState(bytes);
    if (!decoded.ok) throw new RestoreError('restore-failed', `channel state of ${a.app} is unreadable: ${decoded.error.message}`);
    const out: Record<ChannelId, RecordedMessage<Uint8Array>[]> = {};
    for (const [recorded, msgs] of Object.entries(decoded.value)) out[a.channelAliases[recorded] ?? recorded] = [...msgs];
    return out;
  }

  private async attached(): Promise<Endpoint[]> {
    const settled = await Promise.allSettled(this.endpoints.values());
    return settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  }

  private declineAll(c: Extract<Control, { type: 'trigger' }>, reason: WireDeclineReason, detail: string): void {
    for (const cfg of this.config.apps) this.publish({ type: 'decline', checkpointId: c.checkpointId, app: cfg.name, reason, detail }, c.requestId);
  }

  // ---- events -----------------------------------------------------------------------------------

  private register(): void {
    this.publish({ type: 'register', apps: this.config.apps.map((a) => a.name), version: AGENT_VERSION });
  }

  private sendHeartbeat(inReplyTo: string | undefined): void {
    void this.attached().then((endpoints) => {
      const inFlight = [...new Set(endpoints.flatMap((e) => e.inFlight()))].sort((a, b) => a - b);
      this.publish({ type: 'heartbeat', frozen: false, checkpointsInFlight: inFlight }, inReplyTo);
    });
  }

  private publish(body: AgentEventBody, inReplyTo?: string): void {
    if (this.stopped || this.nc.isClosed()) return;
    this.eventCounter += 1;
    const encoded = encodeEvent({
      requestId: `${this.config.server}:${this.bootId}:${this.eventCounter}`,
      ...(inReplyTo !== undefined ? { inReplyTo } : {}),
      tenant: this.config.tenant,
      server: this.config.server,
      epoch: this.epochNow,
      ...body,
    });
    if (!encoded.ok) {
      this.counters.eventsUnencodable += 1;
      this.log.error({ event: body.type, error: encoded.error.message, field: encoded.error.field }, 'event not encodable: dropped');
      return;
    }
    this.nc.publish(eventSubject(this.config.tenant, this.config.server), encoded.value);
    this.counters.eventsPublished += 1;
  }

  /** Graceful stop: no new commands, apps detached (their pending checkpoints declined), NATS drained. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.sub?.unsubscribe();
    for (const e of await this.attached()) await e.close();
    this.stopped = true;
    this.endpoints.clear();
    if (!this.nc.isClosed()) await this.nc.drain().catch(() => undefined);
    this.log.info('agent stopped');
  }
}

class RestoreError extends Error {
  constructor(
    readonly reason: WireDeclineReason,
    message: string,
  ) {
    super(message);
  }
}
