/**
 * The agent daemon: one per VM, the only NATS client in the VM. It registers, heartbeats, takes the
 * coordinator's commands from its control subject and its tenant's plan triggers, hosts one
 * `Endpoint` per attached app, and publishes what they report. Which command to carry out, fence or
 * answer from memory is decided by the pure `AgentControl` (src/control/agent-control.ts; epochs per
 * plan, deduplication with remembered answers); this file only carries its effects out (docs/agent.md).
 * Anything that arrives on a subject and does not decode is logged, counted and dropped; nothing
 * crashes the daemon.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, Events, type NatsConnection, type Subscription } from 'nats';
import type { Logger } from 'pino';
import type { RecordedMessage } from '../src/core/types.js';
import type { ChannelId } from '../src/ids.js';
import { AGENT_CONTROL_DEFAULTS, AgentControl, type AgentControlStep } from '../src/control/agent-control.js';
import { NO_NEGATIVE_CONTROLS } from '../src/control/negative-controls.js';
import {
  agentInboxPrefix,
  controlSubject,
  decodeStoredChannelState,
  decodeControl,
  decodePlanTrigger,
  encodeEvent,
  encodeEventTrusted,
  eventSubject,
  planTriggerWildcard,
  type AgentEvent,
  type AgentEventBody,
  type AppName,
  type AppRestore,
  type Control,
  type HookResult,
  type StoredLogRange,
  type WireDeclineReason,
  wireFormat,
} from '../src/wire/index.js';
import type { AppHandler, AppHost, AppLink, AttachError } from './app.js';
import { openInbound, openOutbound } from './channels/index.js';
import { openLogInbound, openLogOutbound } from './channels/log.js';
import type { AgentConfig } from './config.js';
import { Endpoint, objectName, RestoreRefusedError, type LogReplay, type StatePort } from './endpoint.js';
import { OpaqueApps } from './opaque.js';
import { checkFreezeSetup, FreezeController, type ThawOutcome } from './freeze.js';
import { hookFailed } from './hooks/index.js';
import { lazyChild, levelEnabled, type LazyLog } from './lazy-log.js';
import { AgentTimers } from './timers.js';
import { BadTrafficLog } from '../adapters/bad-traffic-log.js';
import { readLogRange } from '../adapters/log-range-reader.js';
import { JetStreamStateObjects, type StateObjects } from '../adapters/state-store.js';
import { loadStateKeyring, open as openSealed, seal, sealChannelState, sealedOverheadBytes, type StateKeyring } from '../adapters/state-crypto.js';

export const AGENT_VERSION = '0.1.0';

export interface AgentCounters {
  /** Commands and plan triggers that did not decode. */
  malformedControl: number;
  duplicateControl: number;
  foreignControl: number;
  /** Fenced commands: of an older epoch of their plan, or of a newer one whose restore was missed. */
  staleEpochControl: number;
  /** Plan triggers of plans without an app on this server. */
  notServedTriggers: number;
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
  /** Restores waiting for their app to attach (see attachedWithin), by app. */
  private readonly attachWaiters = new Map<string, (() => void)[]>();
  /** The endpoints of `endpoints` that are open, by app. */
  private readonly opened = new Map<string, Endpoint>();
  /** The control decisions: epochs per plan, fencing, deduplication, event stamping. */
  private readonly control: AgentControl;
  /** When this agent last published anything (performance.now()). */
  private lastPublishedMs = Number.NEGATIVE_INFINITY;
  private heartbeat: NodeJS.Timeout | undefined;
  /** Every app's deadlines on one Node timer (agent/timers.ts). */
  private readonly timers = new AgentTimers({ nowMs: () => performance.now() });
  /** Malformed, foreign and stale commands: counted, logged at a bounded rate. */
  private readonly badTraffic: BadTrafficLog;
  private readonly subs: Subscription[] = [];
  private stopped = false;
  /** As the NATS client last reported it; only for saying in the log whether a report went out. */
  private natsConnected = true;
  readonly counters: AgentCounters = {
    malformedControl: 0,
    duplicateControl: 0,
    foreignControl: 0,
    staleEpochControl: 0,
    notServedTriggers: 0,
    eventsPublished: 0,
    eventsUnencodable: 0,
  };

  static async start(config: AgentConfig, logger: Logger, nc?: NatsConnection): Promise<Agent> {
    const problems = await checkFreezeSetup(config);
    if (problems.length > 0) throw new Error(`the freeze setup of ${config.server} is not usable:\n  ${problems.join('\n  ')}`);
    const keyring = config.stateEncryption === undefined ? undefined : await loadStateKeyring(config.stateEncryption);
    if (keyring !== undefined && !keyring.ok) throw new Error(`the state encryption of ${config.server} is not usable:\n  ${keyring.error.join('\n  ')}`);
    const connection =
      nc ??
      (await connect({
        servers: [...config.nats.servers],
        name: `snapshot-agent ${config.tenant}/${config.server}`,
        maxReconnectAttempts: -1,
        ...(config.nats.user !== undefined ? { user: config.nats.user } : {}),
        ...(config.nats.pass !== undefined ? { pass: config.nats.pass } : {}),
        ...(config.nats.token !== undefined ? { token: config.nats.token } : {}),
        ...(config.nats.credsFile !== undefined ? { authenticator: credsAuthenticator(readFileSync(config.nats.credsFile)) } : {}),
        // Its own reply subjects, so that with a credential NATS gives it no other agent's (docs/security.md).
        inboxPrefix: agentInboxPrefix(config.tenant, config.server),
      }));
    const agent = new Agent(config, logger.child({ tenant: config.tenant, server: config.server }), connection, new JetStreamStateObjects(connection), keyring?.value);
    await agent.begin();
    return agent;
  }

  private constructor(
    private readonly config: AgentConfig,
    private readonly log: Logger,
    readonly nc: NatsConnection,
    private readonly objects: StateObjects,
    /** Absent: states are stored as the apps give them (docs/security.md). */
    private readonly keyring: StateKeyring | undefined,
  ) {
    this.badTraffic = new BadTrafficLog(log);
    this.control = new AgentControl({
      tenant: config.tenant,
      server: config.server,
      bootId: randomBytes(4).toString('hex'),
      apps: config.apps.map((a) => a.name),
      requestsRememberedMax: config.controlIdsRememberedMax,
      answersPerRequestMax: AGENT_CONTROL_DEFAULTS.answersPerRequestMax,
      checkpointsRememberedMax: AGENT_CONTROL_DEFAULTS.checkpointsRememberedMax,
      negativeControls: NO_NEGATIVE_CONTROLS,
    });
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

  private async begin(): Promise<void> {
    // Before any command can arrive: a guest that a crashed predecessor left frozen is thawed first.
    const recovered = await this.freezer.recover();
    if (recovered) this.publishThawed(recovered, undefined);
    await this.freezer.start();
    this.subs.push(
      this.nc.subscribe(controlSubject(this.config.tenant, this.config.server), {
        callback: (err, msg) => {
          if (err) {
            this.log.error({ err }, 'control subscription failed');
            return;
          }
          this.onControl(msg.data);
        },
      }),
      // Every plan trigger of the tenant: the machine ignores those of plans without apps here.
      this.nc.subscribe(planTriggerWildcard(this.config.tenant), {
        callback: (err, msg) => {
          if (err) {
            this.log.error({ err }, 'plan trigger subscription failed');
            return;
          }
          this.onPlanTrigger(msg.data);
        },
      }),
    );
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
        } else if (s.type === Events.Error) {
          // Each reconnect attempt of a revoked credential is refused again: counted, logged at a bounded rate.
          const code = String(s.data);
          if (code === 'AUTHORIZATION_VIOLATION') this.badTraffic.warn('nats-credential-refused', { code }, "NATS refused this agent's credential (revoked, or not known to NATS): enroll it again (docs/security.md)");
          else if (code === 'PERMISSIONS_VIOLATION') this.badTraffic.warn('nats-permission-refused', { code }, "NATS refused a publish or subscription outside this agent's permissions");
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
    const logs = new Map((cfg.logChannels ?? []).map((l) => [l.channel, l]));
    const ready = Endpoint.open({
      server: this.config.server,
      app,
      inputs: cfg.inputs,
      outputs: cfg.outputs,
      logInputs: cfg.inputs.filter((c) => logs.has(c)),
      epoch: this.control.generationOf(app),
      handler,
      openOutbound: (channel, epoch, lastSentSeq) => {
        const l = logs.get(channel);
        if (l !== undefined) return openLogOutbound(this.nc, { tenant, channel, epoch, lastSentSeq, log: l, logger: log });
        return openOutbound(this.nc, { tenant, channel, epoch, lastSentSeq, limits, logger: log, badTraffic: this.badTraffic });
      },
      openInbound: (channel, epoch, deliveredSeq, onEnvelope) => {
        const l = logs.get(channel);
        if (l !== undefined) return openLogInbound(this.nc, { tenant, channel, epoch, deliveredSeq, log: l, logger: log, onEnvelope });
        return openInbound(this.nc, { tenant, channel, epoch, deliveredSeq, limits, logger: log, badTraffic: this.badTraffic, onEnvelope });
      },
      state: this.statePort(),
      publish: (event) => this.publish(this.sealInline(event)),
      badTraffic: this.badTraffic,
      clock: {
        nowMs: () => performance.now(),
        setTimer: (afterMs, fire) => this.timers.set(afterMs, fire),
      },
      logger: log,
      limits: { triggerWaitMs: this.config.triggerWaitMs },
    });
    this.endpoints.set(app, ready);
    for (const wake of this.attachWaiters.get(app) ?? []) wake();
    this.attachWaiters.delete(app);
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
        // The channel state keeps its skeleton readable so that VerifyCheckpoint can check the cut.
        const stored = this.keyring === undefined ? bytes : name.endsWith('/channels') ? sealChannelState(this.keyring, bytes) : seal(this.keyring, bytes);
        const r = await this.objects.put(tenant, name, stored);
        if (!r.ok) throw new Error(r.error.message);
        return r.value;
      },
      get: async (ref) => {
        const r = await this.objects.get(tenant, ref);
        if (!r.ok) throw new Error(r.error.message);
        return r.value;
      },
      // With a credential the agent may not purge the bucket's stream, and a delete would mark the
      // object deleted and leave its chunks where no sweep lists them: only without one.
      ...(this.config.nats.credsFile === undefined
        ? {
            delete: async (name: string) => {
              const r = await this.objects.delete(tenant, [name]);
              if (!r.ok) throw new Error(r.error.message);
            },
          }
        : {}),
    };
  }

  /** An ack's inline state sealed like a stored one: the coordinator keeps it in its record. */
  private sealInline(event: AgentEventBody): AgentEventBody {
    if (this.keyring === undefined || event.type !== 'ack' || event.state.kind !== 'inline') return event;
    return { ...event, state: { kind: 'inline', bytes: seal(this.keyring, event.state.bytes) } };
  }

  /** The plaintext of a state read back for a restore; a key that does not open it fails the restore. */
  private openState(bytes: Uint8Array, what: string): Uint8Array {
    const opened = openSealed(this.keyring, bytes, what);
    if (!opened.ok) throw new RestoreError('restore-failed', opened.error.message);
    return opened.value;
  }

  /** An app's state and channel state bytes as they were before they were stored. */
  private async restoreInput(c: Extract<Control, { type: 'restore' }>, a: AppRestore): Promise<{ state: Uint8Array; channels: Uint8Array | undefined }> {
    const what = (kind: string): string => `${kind} of ${this.config.server}/${a.app} in checkpoint ${c.checkpointId}`;
    const port = this.statePort();
    const state = this.openState(a.state.kind === 'inline' ? a.state.bytes : await port.get(a.state.ref), what('the state'));
    return { state, channels: a.channelState ? this.openState(await port.get(a.channelState), what('the channel state')) : undefined };
  }

  // ---- the coordinator's commands ----------------------------------------------------------------

  private onControl(bytes: Uint8Array): void {
    const decoded = decodeControl(bytes);
    if (!decoded.ok) {
      this.counters.malformedControl += 1;
      this.badTraffic.warn('malformed-control', { error: decoded.error.message, field: decoded.error.field }, 'malformed control message dropped');
      return;
    }
    this.apply(this.control.step({ type: 'control', control: decoded.value }));
  }

  private onPlanTrigger(bytes: Uint8Array): void {
    const decoded = decodePlanTrigger(bytes);
    if (!decoded.ok) {
      this.counters.malformedControl += 1;
      this.badTraffic.warn('malformed-plan-trigger', { error: decoded.error.message, field: decoded.error.field }, 'malformed plan trigger dropped');
      return;
    }
    this.apply(this.control.step({ type: 'plan-trigger', trigger: decoded.value }));
  }

  /** Carries out a step of the control machine: its publishes first, then its command. */
  private apply(step: AgentControlStep): void {
    if (step.rejected !== undefined) {
      const { reason, detail } = step.rejected;
      if (reason === 'duplicate') {
        this.counters.duplicateControl += 1;
        this.log.debug({ detail }, 'duplicate control message: remembered answers published again');
      } else if (reason === 'foreign') {
        this.counters.foreignControl += 1;
        this.badTraffic.warn('foreign-control', { detail }, 'control message for another agent dropped');
      } else if (reason === 'not-served') {
        this.counters.notServedTriggers += 1;
      } else {
        this.counters.staleEpochControl += 1;
        this.badTraffic.warn('stale-control', { reason, detail }, 'control message of another epoch of its plan');
      }
    }
    for (const effect of step.effects) {
      if (effect.type === 'publish') this.publishEvent(effect.event);
      else {
        const c = effect.control;
        // A trigger to apps whose endpoints are open is carried out at once: it is the hot path of
        // every checkpoint, and the handler's promise and logger cost more than its work.
        const attached = c.type === 'trigger' ? this.attachedNow() : undefined;
        if (c.type === 'trigger' && attached !== undefined) this.trigger(c, effect.apps, attached);
        else this.handle(c, effect.apps).catch((error: unknown) => this.log.error({ type: c.type, plan: c.plan, err: error }, 'control handling failed'));
      }
    }
  }

  /** Starts a checkpoint in the plan's apps (`attached`: every open endpoint). */
  private trigger(c: Extract<Control, { type: 'trigger' }>, apps: readonly AppName[], attached: readonly Endpoint[]): void {
    if (levelEnabled(this.log, 'info')) this.log.info({ requestId: c.requestId, plan: c.plan, checkpointId: c.checkpointId, policy: c.policy.kind, initiators: c.initiatorApps, apps }, 'trigger');
    // The previous checkpoint's complete notice travels with this trigger; it goes first, as it
    // would have had it come on its own.
    if (c.completedCheckpointId !== undefined) for (const e of attached) if (apps.includes(e.app)) e.complete(c.completedCheckpointId);
    for (const app of apps) {
      const e = attached.find((a) => a.app === app);
      if (!e) {
        const where = this.config.apps.some((a) => a.name === app) ? 'is not attached to' : 'is not configured on';
        this.publish({ type: 'decline', checkpointId: c.checkpointId, app, reason: 'unknown-app', detail: `${app} ${where} the agent on ${this.config.server}` }, c.requestId);
        continue;
      }
      e.trigger({
        checkpointId: c.checkpointId,
        policy: c.policy,
        timeoutMs: c.timeoutMs,
        initiator: c.initiatorApps.includes(app),
        backEdgeInputs: c.backEdgeChannels.length === 0 ? NO_CHANNELS : c.backEdgeChannels.filter((ch) => e.inputs.includes(ch)),
        // The coordinator refuses an inline state above its limit: the sealed one must fit.
        inlineStateBytesMax: this.keyring === undefined ? c.inlineStateBytesMax : Math.max(0, c.inlineStateBytesMax - sealedOverheadBytes(this.keyring)),
      });
    }
  }

  /** Carries out a command the control machine let through, for the apps it named. */
  private async handle(c: Control, apps: readonly AppName[]): Promise<void> {
    const log = lazyChild(this.log, { requestId: c.requestId, plan: c.plan, ...('checkpointId' in c ? { checkpointId: c.checkpointId } : {}) });
    switch (c.type) {
      case 'trigger':
        this.trigger(c, apps, this.attachedNow() ?? (await this.attached()));
        return;
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
        // After a restore: the apps the machine says this plan's restore put back, no others
        // (opaque ones too: a coordinator that took the operation over resumes them this way).
        await Promise.all(apps.filter((app) => this.opaque.isQuiesced(app)).map((app) => this.opaque.resume(c.checkpointId, app)));
        for (const e of await this.attached()) if (apps.includes(e.app)) e.resume();
        this.publish({ type: 'resumed' }, c.requestId);
        log.info({ apps }, 'resumed');
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
      case 'hello':
        // A coordinator that does not know this agent (it restarted): register again.
        log.info('hello: registering again');
        this.register(c.requestId);
        return;
      case 'freeze':
        return this.freeze(c, log);
      case 'thaw':
        return this.thaw(c, log);
    }
  }

  // ---- crash consistency: freeze and thaw ---------------------------------------------------------

  private async freeze(c: Extract<Control, { type: 'freeze' }>, log: LazyLog): Promise<void> {
    log.info({ deadlineMs: c.deadlineMs }, 'freeze');
    const out = await this.freezer.freeze(c.checkpointId, c.deadlineMs, 'crash');
    if (out.ok) {
      this.publish({ type: 'frozen', checkpointId: c.checkpointId, frozenAtUnixMs: out.frozenAtUnixMs, hooksMs: out.hooksMs, hooks: fitHooks(out.hooks) }, c.requestId);
      return;
    }
    log.warn({ reason: out.reason, detail: out.detail }, 'freeze declined');
    this.publish({ type: 'decline', checkpointId: c.checkpointId, reason: out.reason, detail: out.detail.slice(0, wireFormat.detailCharsMax), hooks: fitHooks(out.hooks) }, c.requestId);
  }

  private async thaw(c: Extract<Control, { type: 'thaw' }>, log: LazyLog): Promise<void> {
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

  private async restore(c: Extract<Control, { type: 'restore' }>, log: LazyLog): Promise<void> {
    log.info({ epoch: c.epoch, apps: c.apps.map((a) => a.app) }, 'restore');
    const restored: string[] = [];
    try {
      // Every state is read and opened before any app is touched: one that does not open restores none.
      // So is each log range recorded under another channel's name (a restore into other apps).
      const inputs = new Map<AppRestore, RestoreInput>();
      for (const a of c.apps) {
        const input = await this.restoreInput(c, a);
        const stored = input.channels && !this.opaque.isQuiesced(a.app) ? this.channelStates(a, input.channels) : { messages: {}, logRanges: {} };
        inputs.set(a, { state: input.state, stored, replays: await this.logReplays(a, stored.logRanges) });
      }
      for (const a of c.apps) {
        const input = inputs.get(a) as RestoreInput;
        // Opaque: the operation quiesced the app first; its state goes back through its hooks.
        if (this.opaque.isQuiesced(a.app)) {
          const out = await this.opaque.restore(c.checkpointId, a.app, input.state);
          if (!out.ok) {
            log.error({ app: a.app, reason: out.reason, detail: out.detail }, 'opaque restore failed');
            this.publish({ type: 'decline', checkpointId: c.checkpointId, app: a.app, reason: out.reason, detail: out.detail.slice(0, wireFormat.detailCharsMax), hooks: fitHooks(out.hooks) }, c.requestId);
            return;
          }
          restored.push(a.app);
          continue;
        }
        const ready = this.endpoints.get(a.app) ?? (await this.attachedWithin(a.app, this.config.triggerWaitMs));
        if (!ready) throw new RestoreError('unknown-app', `${a.app} is not attached on ${this.config.server} (waited ${this.config.triggerWaitMs} ms)`);
        const endpoint = await ready;
        await endpoint.restore(
          { checkpointId: c.checkpointId, epoch: c.epoch, state: a.state, ...(a.channelState ? { channelState: a.channelState } : {}), counts: a.counts, channelAliases: a.channelAliases },
          input.stored.messages,
          input.state,
          input.stored.logRanges,
          input.replays,
        );
        restored.push(a.app);
      }
      // The machine adopts the plan's new epoch as it stamps this answer.
      this.publish({ type: 'restored', checkpointId: c.checkpointId, apps: restored }, c.requestId);
      log.info({ epoch: c.epoch }, 'restored');
    } catch (error) {
      const reason: WireDeclineReason = error instanceof RestoreError ? error.reason : 'restore-failed';
      const detail = error instanceof Error ? error.message : String(error);
      // Refused before anything was touched: a stale or forged command, counted at a bounded rate.
      if (error instanceof RestoreRefusedError) this.badTraffic.warn('refused-restore', { checkpointId: c.checkpointId, plan: c.plan, detail }, 'restore refused: nothing changed');
      else log.error({ err: error }, 'restore failed');
      this.publish({ type: 'decline', checkpointId: c.checkpointId, reason, detail }, c.requestId);
    }
  }

  /** Decodes an app's recorded channel state and log ranges, and renames channels restored into other apps. */
  private channelStates(a: AppRestore, bytes: Uint8Array): { messages: Record<ChannelId, RecordedMessage<Uint8Array>[]>; logRanges: Record<ChannelId, StoredLogRange> } {
    const decoded = decodeStoredChannelState(bytes);
    if (!decoded.ok) throw new RestoreError('restore-failed', `channel state of ${a.app} is unreadable: ${decoded.error.message}`);
    const messages: Record<ChannelId, RecordedMessage<Uint8Array>[]> = {};
    for (const [recorded, msgs] of Object.entries(decoded.value.messages)) messages[a.channelAliases[recorded] ?? recorded] = [...msgs];
    const logRanges: Record<ChannelId, StoredLogRange> = {};
    for (const [recorded, range] of Object.entries(decoded.value.logRanges)) logRanges[a.channelAliases[recorded] ?? recorded] = range;
    return { messages, logRanges };
  }

  /**
   * The log ranges recorded under another channel's name (a restore into other apps or servers),
   * read from the stream now: the records there name the recorded channel and may sit on its
   * subject, which this app's consumer does not read (docs/channels.md, *Rollback and restore*).
   * The channel's consumer then starts at the stream's end: what follows is the new epoch's.
   */
  private async logReplays(a: AppRestore, ranges: Readonly<Record<ChannelId, StoredLogRange>>): Promise<Record<ChannelId, LogReplay>> {
    const replays: Record<ChannelId, LogReplay> = {};
    const recordedAs = new Map(Object.entries(a.channelAliases).map(([recorded, current]) => [current, recorded]));
    const logs = this.config.apps.find((x) => x.name === a.app)?.logChannels ?? [];
    for (const [current, range] of Object.entries(ranges)) {
      const recorded = recordedAs.get(current);
      if (recorded === undefined || recorded === current) continue;
      const l = logs.find((x) => x.channel === current);
      if (l === undefined) throw new RestoreError('restore-failed', `${current} of ${a.app} has a log range (recorded as ${recorded}) but is not a log channel in this agent's configuration`);
      try {
        const messages = await readLogRange(this.nc, { stream: l.stream }, recorded, range);
        const { state } = await (await this.nc.jetstreamManager()).streams.info(l.stream);
        replays[current] = { messages, resumeAfter: state.last_seq };
      } catch (error) {
        throw new RestoreError('restore-failed', `the log range of ${recorded} (restored as ${current}) could not be read from stream ${l.stream}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    return replays;
  }

  /**
   * The app's endpoint once it attaches, if within `waitMs`: a restarted agent may take a resent
   * restore before its apps attached again (embedded apps attach after start, local API apps
   * reconnect), and its answer is remembered for the duplicates.
   */
  private attachedWithin(app: string, waitMs: number): Promise<Promise<Endpoint> | undefined> {
    if (!this.config.apps.some((a) => a.name === app)) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(this.endpoints.get(app)), waitMs);
      timer.unref();
      const list = this.attachWaiters.get(app) ?? [];
      list.push(() => {
        clearTimeout(timer);
        resolve(this.endpoints.get(app));
      });
      this.attachWaiters.set(app, list);
    });
  }

  /** The attached endpoints if all are open (the usual case, without waiting); undefined otherwise. */
  private attachedNow(): Endpoint[] | undefined {
    return this.opened.size === this.endpoints.size ? [...this.opened.values()] : undefined;
  }

  private async attached(): Promise<Endpoint[]> {
    const settled = await Promise.allSettled(this.endpoints.values());
    return settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  }

  // ---- events -----------------------------------------------------------------------------------

  private register(inReplyTo?: string): void {
    this.publish({ type: 'register', apps: this.config.apps.map((a) => a.name), version: AGENT_VERSION }, inReplyTo);
  }

  private sendHeartbeat(inReplyTo: string | undefined): void {
    void this.attached().then((endpoints) => {
      const inFlight = [...new Set(endpoints.flatMap((e) => e.inFlight()))].sort((a, b) => a - b);
      const highestCheckpointId = endpoints.reduce((highest, e) => Math.max(highest, e.highestCheckpointId()), 0);
      this.publish({ type: 'heartbeat', frozen: this.freezer.status().frozen, checkpointsInFlight: inFlight, highestCheckpointId }, inReplyTo);
    });
  }

  /** Publishes an event through the control machine, which stamps it and remembers answers. */
  private publish(body: AgentEventBody, inReplyTo?: string): void {
    if (this.stopped || this.nc.isClosed()) return;
    this.apply(this.control.step(inReplyTo === undefined ? { type: 'event', body } : { type: 'event', body, inReplyTo }));
  }

  private publishEvent(event: AgentEvent): void {
    if (this.stopped || this.nc.isClosed()) return;
    // The events sent once per app and checkpoint skip the encoder's checks (they are built here
    // from typed values); every other kind, whose text may come from hooks, is checked.
    const encoded = event.type === 'ack' || event.type === 'progress' || event.type === 'heartbeat' ? encodeEventTrusted(event) : encodeEvent(event);
    if (!encoded.ok) {
      this.counters.eventsUnencodable += 1;
      this.log.error({ event: event.type, error: encoded.error.message, field: encoded.error.field }, 'event not encodable: dropped');
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
    for (const sub of this.subs) sub.unsubscribe();
    await this.stopFreezing();
    await this.opaque.close();
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.timers.stop();
    this.badTraffic.flush();
    for (const e of await this.attached()) await e.close();
    this.stopped = true;
    this.endpoints.clear();
    this.opened.clear();
    if (!this.nc.isClosed()) await this.nc.drain().catch(() => undefined);
    this.log.info('agent stopped');
  }
}

const NO_CHANNELS: readonly string[] = [];

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

/** What a restore needs of an app, read before any app is touched. */
interface RestoreInput {
  readonly state: Uint8Array;
  readonly stored: { readonly messages: Record<ChannelId, RecordedMessage<Uint8Array>[]>; readonly logRanges: Record<ChannelId, StoredLogRange> };
  readonly replays: Record<ChannelId, LogReplay>;
}

class RestoreError extends Error {
  constructor(
    readonly reason: WireDeclineReason,
    message: string,
  ) {
    super(message);
  }
}
