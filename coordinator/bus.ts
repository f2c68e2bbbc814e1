/**
 * The coordinator's side of the control plane: commands published on each agent's control subject,
 * a checkpoint's trigger once per plan on the plan's trigger subject, events taken from every agent's
 * event subject. An event that does not decode, or whose server is not the one of the subject it came
 * on (a forged sender), is logged, counted and dropped.
 *
 * Core NATS delivers at most once, so `request` resends its command, under the same request id,
 * until the agent answers or the time is up; the agent carries a command out once and answers a
 * duplicate with its first answer (src/control/agent-control.ts), so a resend is always safe.
 */
import { randomBytes } from 'node:crypto';
import type { NatsConnection, Subscription } from 'nats';
import type { Logger } from 'pino';
import {
  ALL_EVENTS_SUBJECT,
  controlSubject,
  decodeEvent,
  encodeControl,
  encodePlanTrigger,
  planTriggerSubject,
  type AgentEvent,
  type Control,
  type ControlCommand,
  type PlanTrigger,
} from '../src/wire/index.js';
import { BadTrafficLog } from '../adapters/bad-traffic-log.js';
import { PlanLayouts, type ServerPart } from './plan-layouts.js';

export interface BusCounters {
  malformedEvents: number;
  forgedEvents: number;
  controlsSent: number;
  /** Commands published again by `request` because no answer had come yet. */
  controlsResent: number;
  planTriggersSent: number;
  /** Triggers with a server's part, sent beside a broadcast to servers not known to hold its layout. */
  partsSent: number;
}

export type ControlWithoutId = { readonly tenant: string; readonly server: string; readonly plan: string; readonly epoch: number } & ControlCommand;

/** A trigger broadcast as the round asks for it: every server's part, which the bus sends only where needed. */
export type PlanTriggerRequest = Omit<PlanTrigger, 'requestId' | 'layout'> & { readonly servers: readonly ServerPart[] };

export interface ControlBusLimits {
  /** `request` publishes its command again after this long without an answer, until its timeout. */
  readonly resendIntervalMs: number;
}

export const CONTROL_BUS_LIMITS_DEFAULT: ControlBusLimits = { resendIntervalMs: 1_000 };

export function validateControlBusLimits(l: ControlBusLimits): string | undefined {
  if (!Number.isSafeInteger(l.resendIntervalMs) || l.resendIntervalMs < 1) return `resendIntervalMs must be a positive integer, got ${String(l.resendIntervalMs)}`;
  return undefined;
}

/**
 * Whether `subject` is `snap.<tenant>.evt.<server>`: compared in place rather than split into
 * tokens, once per event.
 */
function isSubjectOf(subject: string, tenant: string, server: string): boolean {
  const serverAt = 5 + tenant.length + 5;
  return (
    subject.length === serverAt + server.length &&
    subject.startsWith('snap.') &&
    subject.startsWith(tenant, 5) &&
    subject.startsWith('.evt.', 5 + tenant.length) &&
    subject.startsWith(server, serverAt)
  );
}

/** nats-server's default max_payload, for a connection that has not said yet. */
const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

export class ControlBus {
  private sub: Subscription | undefined;
  private readonly bootId = randomBytes(4).toString('hex');
  private counter = 0;
  private readonly waiters = new Map<string, (e: AgentEvent) => void>();
  private readonly listeners = new Set<(e: AgentEvent) => void>();
  readonly counters: BusCounters = { malformedEvents: 0, forgedEvents: 0, controlsSent: 0, controlsResent: 0, planTriggersSent: 0, partsSent: 0 };
  private readonly layouts = new PlanLayouts();
  /** Malformed and forged events: counted, logged at a bounded rate (adapters/bad-traffic-log.ts). */
  private readonly badTraffic: BadTrafficLog;
  private readonly limits: ControlBusLimits;

  constructor(
    private readonly nc: NatsConnection,
    private readonly log: Logger,
    limits: Partial<ControlBusLimits> = {},
  ) {
    this.limits = { ...CONTROL_BUS_LIMITS_DEFAULT, ...limits };
    this.badTraffic = new BadTrafficLog(log);
    const invalid = validateControlBusLimits(this.limits);
    if (invalid !== undefined) throw new Error(`invalid control bus limits: ${invalid}`);
  }

  async start(): Promise<void> {
    this.sub = this.nc.subscribe(ALL_EVENTS_SUBJECT, {
      callback: (err, msg) => {
        if (err) {
          this.log.error({ err }, 'event subscription failed');
          return;
        }
        this.onEvent(msg.subject, msg.data);
      },
    });
    await this.nc.flush();
  }

  onEvents(listener: (e: AgentEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The largest message the NATS server takes (its max_payload), as it announced on connecting. */
  get maxPayloadBytes(): number {
    return this.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD_BYTES;
  }

  /** A request id no other command of this coordinator process has. */
  newRequestId(): string {
    this.counter += 1;
    return `c:${this.bootId}:${this.counter}`;
  }

  /**
   * Publishes a command; returns its request id. A caller that resends by itself (a pure machine
   * owning its retries) passes the id of the first send, so the agent answers the resend with its
   * first answer instead of doing the work again.
   */
  send(control: ControlWithoutId, requestId: string = this.newRequestId()): string {
    this.nc.publish(controlSubject(control.tenant, control.server), this.encode(control, requestId));
    this.counters.controlsSent += 1;
    return requestId;
  }

  private encode(control: ControlWithoutId, requestId: string): Uint8Array {
    // Object.assign, not `{ ...control, requestId }`: on Node 20 a spread followed by more properties
    // takes a slow path (about 2 µs), and this runs once per server of every checkpoint.
    const encoded = encodeControl(Object.assign({ requestId }, control) as Control);
    if (!encoded.ok) {
      // Our own command failing validation is a bug in the coordinator, not the agent's problem.
      this.log.error({ type: control.type, server: control.server, error: encoded.error.message, field: encoded.error.field }, 'command not encodable');
      throw new Error(`command ${control.type} for ${control.server} is not encodable: ${encoded.error.message}`);
    }
    return encoded.value;
  }

  /**
   * A checkpoint's trigger once for the whole plan (DESIGN §5), read by the plan's agents; returns
   * its request id (pass the first one's to resend it). The broadcast names the plan's layout, not
   * the servers' parts: a server not known to hold that layout gets a Trigger with its part, under
   * the same request id, so it carries out one command whichever copy comes first. Answers come as
   * acks and declines.
   */
  broadcastTrigger(trigger: PlanTriggerRequest, requestId: string = this.newRequestId()): string {
    const layout = PlanLayouts.idOf(trigger.servers);
    const broadcast: PlanTrigger = {
      requestId,
      tenant: trigger.tenant,
      plan: trigger.plan,
      epoch: trigger.epoch,
      checkpointId: trigger.checkpointId,
      policy: trigger.policy,
      timeoutMs: trigger.timeoutMs,
      inlineStateBytesMax: trigger.inlineStateBytesMax,
      layout,
    };
    if (trigger.completedCheckpointId !== undefined) Object.assign(broadcast, { completedCheckpointId: trigger.completedCheckpointId });
    const encoded = encodePlanTrigger(broadcast);
    if (!encoded.ok) {
      this.log.error({ plan: trigger.plan, checkpointId: trigger.checkpointId, error: encoded.error.message, field: encoded.error.field }, 'plan trigger not encodable');
      throw new Error(`trigger of checkpoint ${trigger.checkpointId} for plan ${trigger.plan} is not encodable: ${encoded.error.message}`);
    }
    this.nc.publish(planTriggerSubject(trigger.tenant, trigger.plan), encoded.value);
    this.counters.planTriggersSent += 1;
    for (const part of this.layouts.missing(trigger.tenant, trigger.plan, trigger.checkpointId, layout, trigger.servers)) {
      const control: ControlWithoutId = {
        tenant: trigger.tenant,
        server: part.server,
        plan: trigger.plan,
        epoch: trigger.epoch,
        type: 'trigger',
        checkpointId: trigger.checkpointId,
        policy: trigger.policy,
        timeoutMs: trigger.timeoutMs,
        initiatorApps: part.initiatorApps,
        backEdgeChannels: part.backEdgeChannels,
        inlineStateBytesMax: trigger.inlineStateBytesMax,
        apps: part.apps,
        layout,
      };
      if (trigger.completedCheckpointId !== undefined) Object.assign(control, { completedCheckpointId: trigger.completedCheckpointId });
      this.nc.publish(controlSubject(trigger.tenant, part.server), this.encode(control, requestId));
      this.counters.partsSent += 1;
    }
    return requestId;
  }

  /**
   * Sends a command and waits for the agent's answer (an event whose inReplyTo is the command's
   * request id), publishing it again under the same id every `resendIntervalMs` until then: a
   * command published before the agent subscribed (it was restarting) or lost on the way is still
   * answered. Resolves undefined after `timeoutMs` without an answer.
   */
  request(control: ControlWithoutId, timeoutMs: number): Promise<AgentEvent | undefined> {
    return new Promise((resolve) => {
      const requestId = this.newRequestId();
      const bytes = this.encode(control, requestId);
      const subject = controlSubject(control.tenant, control.server);
      const resend = setInterval(() => {
        this.nc.publish(subject, bytes);
        this.counters.controlsResent += 1;
        this.log.debug({ type: control.type, server: control.server, plan: control.plan, requestId }, 'no answer yet: command resent');
      }, this.limits.resendIntervalMs);
      resend.unref();
      const done = (e: AgentEvent | undefined): void => {
        clearTimeout(timer);
        clearInterval(resend);
        this.waiters.delete(requestId);
        resolve(e);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      timer.unref();
      this.waiters.set(requestId, done);
      this.nc.publish(subject, bytes);
      this.counters.controlsSent += 1;
    });
  }

  private onEvent(subject: string, bytes: Uint8Array): void {
    const decoded = decodeEvent(bytes);
    if (!decoded.ok) {
      this.counters.malformedEvents += 1;
      this.badTraffic.warn('malformed-event', { subject, error: decoded.error.message, field: decoded.error.field }, 'malformed event dropped');
      return;
    }
    const e = decoded.value;
    if (!isSubjectOf(subject, e.tenant, e.server)) {
      this.counters.forgedEvents += 1;
      this.badTraffic.warn('forged-event', { subject, claims: `${e.tenant}/${e.server}` }, 'event claims another sender than its subject: dropped');
      return;
    }
    if (e.type === 'register') this.layouts.forget(e.tenant, e.server);
    else if (e.type === 'ack' || e.type === 'decline' || e.type === 'progress') this.layouts.answered(e.tenant, e.server, e.checkpointId);
    if (e.inReplyTo !== undefined) this.waiters.get(e.inReplyTo)?.(e);
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (error) {
        this.log.error({ err: error, event: e.type }, 'event listener failed');
      }
    }
  }

  stop(): void {
    this.sub?.unsubscribe();
    this.badTraffic.flush();
  }
}
