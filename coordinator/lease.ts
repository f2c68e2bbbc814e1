/**
 * The coordinators' leader lease: one key (`leader`) in the `snap-leader` KV bucket, written only by
 * compare-and-set on its revision. Every coordinator process runs this loop; the one whose write
 * landed leads, with a term (a counter that only grows: each takeover writes the old term + 1 on
 * the revision it read, so two standbys cannot both win one term).
 *
 * Expiry without a TTL. nats-server 2.9 has no per-key TTL, and a bucket max age would expire the
 * key on the server's clock at a time the coordinators cannot observe. Instead a standby measures
 * on its own monotonic clock how long the key's revision has stood still: once the leader has not
 * renewed for `leaseMs` as this standby saw it, the standby takes over. The leader, in turn, counts
 * its lease valid until `leaseMs - marginMs` after it SENT its last renewal that landed (its own
 * monotonic clock again). A standby only starts counting after it saw that renewal, which came
 * after it was sent, so the leader's validity ends `marginMs` before any standby can take over, as
 * long as the two clocks run at nearly the same rate. No wall clocks are compared.
 *
 * A leader whose lease ran out, or whose renewal found another holder, is deposed: `onDeposed`
 * fires once, with the reason, and `term()` answers undefined from then on. The record writes are
 * fenced by `term()` (store/fenced.ts), so a deposed or paused leader cannot write.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { KV } from 'nats';
import type { Logger } from 'pino';
import { decodeJsonObject, encodeJson } from './store/json.js';
import { isWrongLastSequence } from './store/nats-errors.js';

export const LEASE_KEY = 'leader';

export interface LeaseOptions {
  /** A standby takes over once the lease has not been renewed for this long (its own clock). */
  readonly leaseMs: number;
  /** How often the leader renews, and how often a standby looks at the lease. */
  readonly renewMs: number;
  /** The leader stops writing this long before a standby may take over: clock rate drift and slow writes. */
  readonly marginMs: number;
}

export const leaseOptionsDefault: LeaseOptions = { leaseMs: 6_000, renewMs: 1_000, marginMs: 1_000 };

export function validateLeaseOptions(o: LeaseOptions): string | undefined {
  for (const [name, v] of [['leaseMs', o.leaseMs], ['renewMs', o.renewMs], ['marginMs', o.marginMs]] as const) {
    if (!Number.isInteger(v) || v < 1) return `${name} must be a positive integer, got ${v}`;
  }
  // The leader must renew at least twice within its validity, or one slow write deposes it.
  if (o.renewMs * 2 > o.leaseMs - o.marginMs) return `renewMs (${o.renewMs}) must be at most half of leaseMs - marginMs (${o.leaseMs - o.marginMs})`;
  return undefined;
}

/** What the lease key holds. */
export interface LeaseValue {
  /** The holding process: host, pid and a random suffix (unique per process start). */
  readonly holder: string;
  /** Its gRPC address, which standbys give callers. */
  readonly address: string;
  readonly term: number;
  /** Written by a leader that stops cleanly: a standby takes over at once. */
  readonly released?: boolean;
}

export type LeaseRole = 'starting' | 'leader' | 'standby' | 'deposed';

export interface LeaseIdentity {
  readonly holder: string;
  readonly address: string;
}

export function processHolderId(): string {
  return `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
}

function decodeLease(bytes: Uint8Array): LeaseValue | undefined {
  const json = decodeJsonObject(bytes, LEASE_KEY);
  if (!json.ok) return undefined;
  const v = json.value;
  if (typeof v.holder !== 'string' || typeof v.address !== 'string' || typeof v.term !== 'number' || !Number.isSafeInteger(v.term) || v.term < 1) return undefined;
  return { holder: v.holder, address: v.address, term: v.term, ...(v.released === true ? { released: true } : {}) };
}

export class LeaderLease {
  private role: LeaseRole = 'starting';
  private leaderTerm = 0;
  /** The leader's lease is valid until this monotonic time. */
  private validUntil = 0;
  /** The revision of the key as last read or written. */
  private revision = 0;
  /** The monotonic time this process first saw `revision` (a standby's expiry count starts there). */
  private seenAt = 0;
  /** Revisions seen change while standing by: two distinct ones prove a live holder. */
  private changesSeen = 0;
  private current: LeaseValue | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private ticking = false;
  /** The lease could not be read at the last look: logged once, until it can be again. */
  private unreadable = false;
  private elected: ((term: number) => void) | undefined;
  private deposed: ((reason: string) => void) | undefined;
  private decided: (() => void) | undefined;
  private readonly decision: Promise<void>;
  private readonly log: Logger;

  constructor(
    private readonly kv: KV,
    private readonly identity: LeaseIdentity,
    private readonly options: LeaseOptions,
    logger: Logger,
    private readonly now: () => number = () => performance.now(),
  ) {
    const invalid = validateLeaseOptions(options);
    if (invalid !== undefined) throw new Error(`invalid lease options: ${invalid}`);
    this.log = logger.child({ component: 'lease', holder: identity.holder });
    this.decision = new Promise((resolve) => {
      this.decided = resolve;
    });
  }

  /** Called once, when this process becomes the leader (after its first decision too). */
  onElected(listener: (term: number) => void): void {
    this.elected = listener;
  }

  /** Called once, when a leader loses its lease; this process must not act as leader again. */
  onDeposed(listener: (reason: string) => void): void {
    this.deposed = listener;
  }

  /** Starts the loop; resolves once this process knows whether it leads or stands by. */
  async start(): Promise<LeaseRole> {
    await this.tick();
    await this.decision;
    return this.role;
  }

  /** The term, while this process leads and its lease is valid by its own clock; otherwise undefined. */
  term(): number | undefined {
    if (this.role !== 'leader') return undefined;
    if (this.now() >= this.validUntil) {
      this.depose(`lease expired: not renewed within ${this.options.leaseMs - this.options.marginMs} ms`);
      return undefined;
    }
    return this.leaderTerm;
  }

  leading(): boolean {
    return this.term() !== undefined;
  }

  /** The leader's gRPC address as last read (this process's own while it leads). */
  leaderAddress(): string | undefined {
    return this.role === 'leader' ? this.identity.address : this.current?.released === true ? undefined : this.current?.address;
  }

  /** A write was refused for this process's term (a newer leader wrote): it steps down. */
  stepDown(reason: string): void {
    this.depose(reason);
  }

  /** Stops the loop; a valid leader writes the lease released, so a standby takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.term() === undefined) return;
    this.role = 'deposed';
    try {
      await this.kv.update(LEASE_KEY, encodeJson({ ...this.value(this.leaderTerm), released: true }), this.revision);
      this.log.info({ term: this.leaderTerm }, 'leader lease released');
    } catch (error) {
      this.log.warn({ err: error }, 'leader lease not released: a standby takes over when it expires');
    }
  }

  private value(term: number): LeaseValue {
    return { holder: this.identity.holder, address: this.identity.address, term };
  }

  private schedule(): void {
    if (this.stopped || this.role === 'deposed') return;
    // A standby looks twice per renewal, so it sees each renewal soon after it lands.
    const ms = this.role === 'leader' ? this.options.renewMs : Math.max(1, Math.floor(this.options.renewMs / 2));
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.ticking || this.stopped || this.role === 'deposed') return;
    this.ticking = true;
    try {
      if (this.role === 'leader') await this.renew();
      else {
        await this.watch();
        if (this.unreadable) this.log.info('the leader lease can be read again');
        this.unreadable = false;
      }
    } catch (error) {
      if (!this.unreadable) this.log.warn({ err: error }, 'the leader lease cannot be read or taken (NATS or its quorum is down): no takeover until it can');
      this.unreadable = true;
    } finally {
      this.ticking = false;
      this.schedule();
    }
  }

  private async renew(): Promise<void> {
    if (this.term() === undefined) return;
    const sentAt = this.now();
    try {
      this.revision = await this.kv.update(LEASE_KEY, encodeJson(this.value(this.leaderTerm)), this.revision);
      this.validUntil = sentAt + this.options.leaseMs - this.options.marginMs;
    } catch (error) {
      if (isWrongLastSequence(error)) this.depose('lease taken by another coordinator');
      // Otherwise NATS did not answer: the next renewal tries again, and term() ends the lease in time.
      else this.log.warn({ err: error, term: this.leaderTerm }, 'leader lease not renewed');
      this.term();
    }
  }

  private async watch(): Promise<void> {
    const entry = await this.kv.get(LEASE_KEY);
    const now = this.now();
    if (entry === null || entry.operation !== 'PUT') {
      // Never written: the first coordinator ever. (The key is never deleted; see stop().)
      await this.take(entry?.revision ?? 0, 1, true);
      return;
    }
    const held = decodeLease(entry.value);
    if (entry.revision !== this.revision) {
      this.revision = entry.revision;
      this.seenAt = now;
      this.changesSeen += 1;
      this.current = held;
    }
    if (held === undefined) {
      this.log.error({ revision: entry.revision }, 'the leader lease holds no lease value; it is taken over when it expires');
    }
    const expired = held?.released === true || now - this.seenAt >= this.options.leaseMs;
    if (expired) {
      await this.take(entry.revision, (held?.term ?? 0) + 1, false);
      return;
    }
    // A renewal seen since the first look: the holder is alive, so this process stands by.
    if (this.changesSeen >= 2) this.becomeStandby();
  }

  private async take(revision: number, term: number, create: boolean): Promise<void> {
    const sentAt = this.now();
    const from = this.current;
    try {
      this.revision = create ? await this.kv.create(LEASE_KEY, encodeJson(this.value(term))) : await this.kv.update(LEASE_KEY, encodeJson(this.value(term)), revision);
    } catch (error) {
      if (isWrongLastSequence(error)) {
        // Another standby won this term: its write is the revision to watch now.
        this.log.info({ term }, 'another coordinator took the leader lease first');
        return;
      }
      throw error;
    }
    this.validUntil = sentAt + this.options.leaseMs - this.options.marginMs;
    this.leaderTerm = term;
    this.role = 'leader';
    this.current = this.value(term);
    const previous = from === undefined ? undefined : { holder: from.holder, address: from.address, term: from.term, released: from.released === true };
    // Taken from a leader that stopped renewing is worth a warning; a first or released lease is not.
    const expired = from !== undefined && from.released !== true;
    this.log[expired ? 'warn' : 'info']({ term, previous }, 'leader lease taken: this coordinator leads');
    this.decided?.();
    this.elected?.(term);
  }

  private becomeStandby(): void {
    if (this.role === 'standby') return;
    this.role = 'standby';
    this.log.info({ leader: this.current?.address, term: this.current?.term }, 'standing by: another coordinator leads');
    this.decided?.();
  }

  private depose(reason: string): void {
    if (this.role !== 'leader') return;
    this.role = 'deposed';
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.log.warn({ term: this.leaderTerm, reason }, 'stepping down: this coordinator no longer leads');
    this.deposed?.(reason);
  }
}
