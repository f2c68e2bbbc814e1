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
  type AgentEvent,
  type AgentEventBody,
  type AgentEventHeader,
  type AppRestore,
  type Control,
  type HookResult,
  type WireDeclineReason,
  wireFormat,
} from '../src/wire/index.js';
import type { AppHandler, AppHost, AppLink, AttachError } from './app.js';
import { openInbound, openOutbound } from './channels/index.js';
import type { AgentConfig } from './config.js';
import { Endpoint, objectName, type StatePort } from './endpoint.js';
import { OpaqueApps } from './opaque.js';
import { checkFreezeSetup, FreezeController, type ThawOutcome } from './freeze.js';
import { hookFailed } from './hooks/index.js';
import { lazyChild } from './lazy-log.js';
import { JetStreamStateObjects, type StateObjects } from '../adapters/state-store.js';

export const AGENT_VERSION = '0.1.0';

export interface AgentCounters {
  malformedControl: number;
  duplicateControl: number;
  foreignControl: number;
  staleEpochControl: number;
  eventsPublished: number;
  eventsUnencodable: number;
}

/**
 * Room for hook results in one event, in characters of stderr: far below the wire's message limit,
 * so that a server with many chatty hooks still gets its `frozen`, `thawed` or `decline` through.
 */
export const EVENT_HOOK_STDERR_CHARS_MAX = 256 * 1024;

export class Agent implements AppHost {
  private readonly endpoints = new Map<string, Promise<Endpoint>>();
  /** The endpoints of `endpoints` that are open, by app. */
  private readonly opened = new Map<string, Endpoint>();
  private readonly seenRequests = new Map<string, true>();
  private readonly bootId = randomBytes(4).toString('hex');
  private eventCounter = 0;
  /** When this agent last published anything (performance.now()). */
  private lastPublishedMs = Number.NEGATIVE_INFINITY;
  private epochNow: Epoch = 0;
  private heartbeat: NodeJS.Timeout | undefined;
  private sub: Subscription | undefined;
  private stopped = false;
  /** As the NATS client last reported it; only for saying in the log whether a report went out. */
  private natsConnected = true;
  readonly counters: AgentCounters = {
    malformedControl: 0,
    duplicateControl: 0,
    foreignControl: 0,
    staleEpochControl: 0,
    eventsPublished: 0,
    eventsUnencodable: 0,
  };

  static async start(config: AgentConfig, logger: Logger, nc?: NatsConnection): Promise<Agent> {
    const problems = await checkFreezeSetup(config);
    if (problems.length > 0) throw new Error(`the freeze setup of ${config.server} is not usable:\n  ${problems.join('\n  ')}`);
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
  ) {
    this.freezer = new FreezeController({
      tenant: config.tenant,
      server: config.server,
      apps: config.apps.map((a) => a.name),
      config: config.freeze,
      stateDir: config.stateDir,
      logger: log,
      onSelfThaw: (outcome) => this.reportSelfThaw(outcome),
    });
    this.opaque = new OpaqueApps({
      tenant: config.tenant,
      server: config.server,
      apps: config.apps,
      config: config.freeze,
      stateDir: config.stateDir,
      logger: log,
      store: (name, bytes) => this.statePort().put(name, bytes),
    });
  }

  /** Opaque apps: quiesce, capture and resume through their hooks (agent/opaque.ts). */
  private readonly opaque: OpaqueApps;

  /** Freeze, thaw and the freeze watchdog of this server (crash consistency, docs/hooks.md). */
  readonly freezer: FreezeController;

  get epoch(): Epoch {
    return this.epochNow;
  }

  private async begin(): Promise<void> {
    // Before any command can arrive: a guest that a crashed predecessor left frozen is thawed first.
    const recovered = await this.freezer.recover();
    if (recovered) this.publishThawed(recovered, undefined);
    await this.freezer.start();
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
    this.heartbeat = setInterval(() => {
      // Any event tells the coordinator this agent is alive: a busy agent (acking checkpoint after
      // checkpoint) needs no heartbeat on top, an idle one still sends one every interval. (Half an
      // interval: the last heartbeat itself went out a little after the previous tick.)
      if (performance.now() - this.lastPublishedMs >= this.config.heartbeatIntervalMs / 2) this.sendHeartbeat(undefined);
    }, this.config.heartbeatIntervalMs);
    this.heartbeat.unref();
    void (async () => {
      for await (const s of this.nc.status()) {
        if (s.type === Events.Reconnect) {
          this.natsConnected = true;
          this.log.info('reconnected to NATS: registering again');
          this.register();
        } else if (s.type === Events.Disconnect) {
          this.natsConnected = false;
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
    // Once open, sends go straight to the endpoint: a send is a producer's hot path, and a promise
    // step per message showed in its profile.
    let opened: Endpoint | undefined;
    ready.then(
      (e) => {
        opened = e;
        if (this.endpoints.get(app) === ready) this.opened.set(app, e);
      },
      (error: unknown) => {
        this.log.error({ app, err: error }, 'could not open the app endpoint');
        this.endpoints.delete(app);
      },
    );
    const link: AppLink = {
      app,
      inputs: cfg.inputs,
      outputs: cfg.outputs,
      send: (channel, payload) => (opened !== undefined ? opened.send(channel, payload) : ready.then((e) => e.send(channel, payload))),
      close: async () => {
        const e = await ready.catch(() => undefined);
        this.endpoints.delete(app);
        this.opened.delete(app);
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
    // A restore brings the new epoch; everything else must be of the epoch we are in. Except a thaw:
    // thawing only ever makes the guest safer, so no fence may keep one from running.
    if (c.type !== 'thaw' && (c.epoch < this.epochNow || (c.type !== 'restore' && c.type !== 'ping' && c.epoch > this.epochNow))) {
      this.counters.staleEpochControl += 1;
      this.log.warn({ type: c.type, epoch: c.epoch, agentEpoch: this.epochNow }, 'control message of another epoch');
      if (c.type === 'trigger') this.declineAll(c, 'stale-epoch', `agent ${this.config.server} is at epoch ${this.epochNow}, the trigger at ${c.epoch}`);
      if (c.type === 'freeze') this.publish({ type: 'decline', checkpointId: c.checkpointId, reason: 'stale-epoch', detail: `agent ${this.config.server} is at epoch ${this.epochNow}, the freeze at ${c.epoch}` }, c.requestId);
      return;
    }
    this.handle(c).catch((error: unknown) => this.log.error({ type: c.type, err: error }, 'control handling failed'));
  }

  private async handle(c: Control): Promise<void> {
    const log = lazyChild(this.log, { requestId: c.requestId, ...('checkpointId' in c ? { checkpointId: c.checkpointId } : {}) });
    switch (c.type) {
      case 'trigger': {
        log.info({ policy: c.policy.kind, initiators: c.initiatorApps }, 'trigger');
        // The previous checkpoint's complete notice travels with this trigger; it goes first, as it
        // would have had it come on its own.
        const attached = this.attachedNow() ?? (await this.attached());
        if (c.completedCheckpointId !== undefined) for (const e of attached) e.complete(c.completedCheckpointId);
        for (const cfg of this.config.apps) {
          const e = attached.find((a) => a.app === cfg.name);
          if (!e) {
            this.publish({ type: 'decline', checkpointId: c.checkpointId, app: cfg.name, reason: 'unknown-app', detail: `${cfg.name} is not attached to the agent on ${this.config.server}` }, c.requestId);
            continue;
          }
          e.trigger({
            checkpointId: c.checkpointId,
            policy: c.policy,
            timeoutMs: c.timeoutMs,
            initiator: c.initiatorApps.includes(cfg.name),
            backEdgeInputs: c.backEdgeChannels.filter((ch) => e.inputs.includes(ch)),
            inlineStateBytesMax: c.inlineStateBytesMax,
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
        if (c.apps.length > 0) {
          await Promise.all(c.apps.map((app) => this.opaque.resume(c.checkpointId, app)));
          this.publish({ type: 'resumed' }, c.requestId);
          log.info({ apps: c.apps }, 'opaque apps resumed');
          return;
        }
        for (const e of await this.attached()) e.resume();
        this.publish({ type: 'resumed' }, c.requestId);
        log.info('resumed');
        return;
      case 'quiesce':
        await Promise.all(
          c.apps.map(async (app) => {
            const inputs = this.config.apps.find((a) => a.name === app)?.inputs ?? [];
            const drainTo = Object.fromEntries(Object.entries(c.drainTo).filter(([ch]) => inputs.includes(ch)));
            const out = await this.opaque.quiesce(c.checkpointId, app, drainTo);
            if (out.ok) this.publish({ type: 'quiesced', checkpointId: c.checkpointId, app, outputPositions: out.outputPositions, hooks: fitHooks(out.hooks) }, c.requestId);
            else this.publish({ type: 'decline', checkpointId: c.checkpointId, app, reason: out.reason, detail: out.detail.slice(0, wireFormat.detailCharsMax), hooks: fitHooks(out.hooks) }, c.requestId);
          }),
        );
        return;
      case 'capture':
        await Promise.all(
          c.apps.map(async (app) => {
            const out = await this.opaque.capture(c.checkpointId, app, objectName(c.checkpointId, this.config.server, app, 'state'));
            if (out.ok) this.publish({ type: 'captured', checkpointId: c.checkpointId, app, state: out.state, hooks: [] }, c.requestId);
            else this.publish({ type: 'decline', checkpointId: c.checkpointId, app, reason: out.reason, detail: out.detail.slice(0, wireFormat.detailCharsMax), hooks: fitHooks(out.hooks) }, c.requestId);
          }),
        );
        return;
      case 'ping':
        this.sendHeartbeat(c.requestId);
        return;
      case 'freeze':
        return this.freeze(c, log);
      case 'thaw':
        return this.thaw(c, log);
    }
  }

  // ---- crash consistency: freeze and thaw ---------------------------------------------------------

  private async freeze(c: Extract<Control, { type: 'freeze' }>, log: Logger): Promise<void> {
    log.info({ deadlineMs: c.deadlineMs }, 'freeze');
    const out = await this.freezer.freeze(c.checkpointId, c.deadlineMs, 'crash');
    if (out.ok) {
      this.publish({ type: 'frozen', checkpointId: c.checkpointId, frozenAtUnixMs: out.frozenAtUnixMs, hooksMs: out.hooksMs, hooks: fitHooks(out.hooks) }, c.requestId);
      return;
    }
    log.warn({ reason: out.reason, detail: out.detail }, 'freeze declined');
    this.publish({ type: 'decline', checkpointId: c.checkpointId, reason: out.reason, detail: out.detail.slice(0, wireFormat.detailCharsMax), hooks: fitHooks(out.hooks) }, c.requestId);
  }

  private async thaw(c: Extract<Control, { type: 'thaw' }>, log: Logger): Promise<void> {
    log.info({ afterRestore: c.afterRestore }, 'thaw');
    this.publishThawed(await this.freezer.thaw(c.checkpointId, { afterRestore: c.afterRestore }), c.requestId);
  }

  /**
   * The watchdog thawed: tell the coordinator if NATS is there (while disconnected the NATS client
   * buffers the event and sends it on reconnecting); the log has it either way.
   */
  private reportSelfThaw(outcome: ThawOutcome): void {
    const closed = this.stopped || this.nc.isClosed();
    const how = closed ? 'NATS connection closed: not reported' : this.natsConnected ? 'reported' : 'NATS disconnected: report buffered until it reconnects';
    this.log.warn(
      { checkpointId: outcome.checkpointId, cause: outcome.cause, overshootMs: outcome.deadlineAtUnixMs !== undefined ? outcome.thawedAtUnixMs - outcome.deadlineAtUnixMs : undefined },
      `thawed by the agent itself at the freeze deadline (${how})`,
    );
    this.publishThawed(outcome, undefined);
  }

  /**
   * Thaws now if frozen (after a freeze in progress ends) and turns later freezes away; publishes
   * the thaw. Part of stop(); the daemon calls it first thing on SIGTERM.
   */
  async stopFreezing(): Promise<void> {
    const thawed = await this.freezer.close();
    if (thawed) this.publishThawed(thawed, undefined);
  }

  private publishThawed(outcome: ThawOutcome, inReplyTo: string | undefined): void {
    this.publish(
      {
        type: 'thawed',
        checkpointId: outcome.checkpointId,
        thawedAtUnixMs: outcome.thawedAtUnixMs,
        byWatchdog: outcome.byWatchdog,
        hooks: fitHooks(outcome.hooks),
        frozenAtUnixMs: outcome.frozenAtUnixMs,
      },
      inReplyTo,
    );
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
        const state = a.state.kind === 'inline' ? a.state.bytes : await port.get(a.state.ref);
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

  /** The attached endpoints if all are open (the usual case, without waiting); undefined otherwise. */
  private attachedNow(): Endpoint[] | undefined {
    return this.opened.size === this.endpoints.size ? [...this.opened.values()] : undefined;
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
      this.publish({ type: 'heartbeat', frozen: this.freezer.status().frozen, checkpointsInFlight: inFlight }, inReplyTo);
    });
  }

  private publish(body: AgentEventBody, inReplyTo?: string): void {
    if (this.stopped || this.nc.isClosed()) return;
    this.eventCounter += 1;
    // Object.assign rather than spreads (Node 20's slow path for spread literals; once per event).
    const header: AgentEventHeader = { requestId: `${this.config.server}:${this.bootId}:${this.eventCounter}`, tenant: this.config.tenant, server: this.config.server, epoch: this.epochNow };
    if (inReplyTo !== undefined) Object.assign(header, { inReplyTo });
    const encoded = encodeEvent(Object.assign(header, body) as AgentEvent);
    if (!encoded.ok) {
      this.counters.eventsUnencodable += 1;
      this.log.error({ event: body.type, error: encoded.error.message, field: encoded.error.field }, 'event not encodable: dropped');
      return;
    }
    this.nc.publish(eventSubject(this.config.tenant, this.config.server), encoded.value);
    this.counters.eventsPublished += 1;
    this.lastPublishedMs = performance.now();
  }

  /**
   * Graceful stop: thaw first (a stopping agent never leaves the guest frozen, and says so while
   * NATS is still there), no new commands, apps detached (their pending checkpoints declined), NATS
   * drained.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.sub?.unsubscribe();
    await this.stopFreezing();
    await this.opaque.close();
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const e of await this.attached()) await e.close();
    this.stopped = true;
    this.endpoints.clear();
    this.opened.clear();
    if (!this.nc.isClosed()) await this.nc.drain().catch(() => undefined);
    this.log.info('agent stopped');
  }
}

/**
 * Cuts the stderr of hook results so that the event stays far below the wire's message limit: the
 * failed steps keep their tails first (they explain the failure), successful steps share what is
 * left. Never drops a result.
 */
export function fitHooks(hooks: readonly HookResult[], stderrCharsMax = EVENT_HOOK_STDERR_CHARS_MAX): HookResult[] {
  const total = hooks.reduce((n, h) => n + h.stderr.length, 0);
  if (total <= stderrCharsMax) return [...hooks];
  let left = stderrCharsMax;
  const keep = new Map<number, number>();
  const order = hooks.map((h, i) => i).sort((i, j) => Number(hookFailed(hooks[j] as HookResult)) - Number(hookFailed(hooks[i] as HookResult)));
  for (const i of order) {
    const n = Math.min((hooks[i] as HookResult).stderr.length, left);
    keep.set(i, n);
    left -= n;
  }
  return hooks.map((h, i) => {
    const n = keep.get(i) ?? 0;
    return n >= h.stderr.length ? h : { ...h, stderr: n === 0 ? '' : h.stderr.slice(-n) };
  });
}

class RestoreError extends Error {
  constructor(
    readonly reason: WireDeclineReason,
    message: string,
  ) {
    super(message);
  }
}
