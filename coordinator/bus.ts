/**
 * The coordinator's side of the control plane: commands published on each agent's control subject,
 * events taken from every agent's event subject. An event that does not decode, or whose server is
 * not the one of the subject it came on (a forged sender), is logged, counted and dropped.
 */
import { randomBytes } from 'node:crypto';
import type { NatsConnection, Subscription } from 'nats';
import type { Logger } from 'pino';
import {
  ALL_EVENTS_SUBJECT,
  controlSubject,
  decodeEvent,
  encodeControl,
  type AgentEvent,
  type Control,
  type ControlCommand,
} from '../src/wire/index.js';

export interface BusCounters {
  malformedEvents: number;
  forgedEvents: number;
  controlsSent: number;
}

type ControlWithoutId = { readonly tenant: string; readonly server: string; readonly plan: string; readonly epoch: number } & ControlCommand;

/** nats-server's default max_payload, for a connection that has not said yet. */
const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

export class ControlBus {
  private sub: Subscription | undefined;
  private readonly bootId = randomBytes(4).toString('hex');
  private counter = 0;
  private readonly waiters = new Map<string, (e: AgentEvent) => void>();
  private readonly listeners = new Set<(e: AgentEvent) => void>();
  readonly counters: BusCounters = { malformedEvents: 0, forgedEvents: 0, controlsSent: 0 };

  constructor(
    private readonly nc: NatsConnection,
    private readonly log: Logger,
  ) {}

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

  /** Publishes a command; returns its request id. */
  send(control: ControlWithoutId): string {
    this.counter += 1;
    const requestId = `c:${this.bootId}:${this.counter}`;
    // Object.assign, not `{ ...control, requestId }`: on Node 20 a spread followed by more properties
    // takes a slow path (about 2 µs), and this runs once per server of every checkpoint.
    const encoded = encodeControl(Object.assign({ requestId }, control) as Control);
    if (!encoded.ok) {
      // Our own command failing validation is a bug in the coordinator, not the agent's problem.
      this.log.error({ type: control.type, server: control.server, error: encoded.error.message, field: encoded.error.field }, 'command not encodable');
      throw new Error(`command ${control.type} for ${control.server} is not encodable: ${encoded.error.message}`);
    }
    this.nc.publish(controlSubject(control.tenant, control.server), encoded.value);
    this.counters.controlsSent += 1;
    return requestId;
  }

  /**
   * Sends a command and waits for the agent's answer (an event whose inReplyTo is the command's
   * request id). Resolves undefined after `timeoutMs` without one.
   */
  request(control: ControlWithoutId, timeoutMs: number): Promise<AgentEvent | undefined> {
    return new Promise((resolve) => {
      let requestId = '';
      const timer = setTimeout(() => {
        this.waiters.delete(requestId);
        resolve(undefined);
      }, timeoutMs);
      timer.unref();
      requestId = this.send(control);
      this.waiters.set(requestId, (e) => {
        clearTimeout(timer);
        this.waiters.delete(requestId);
        resolve(e);
      });
    });
  }

  private onEvent(subject: string, bytes: Uint8Array): void {
    const decoded = decodeEvent(bytes);
    if (!decoded.ok) {
      this.counters.malformedEvents += 1;
      this.log.warn({ subject, error: decoded.error.message, field: decoded.error.field }, 'malformed event dropped');
      return;
    }
    const e = decoded.value;
    const tokens = subject.split('.');
    if (tokens[1] !== e.tenant || tokens[3] !== e.server) {
      this.counters.forgedEvents += 1;
      this.log.warn({ subject, claims: `${e.tenant}/${e.server}` }, 'event claims another sender than its subject: dropped');
      return;
    }
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
  }
}
