/**
 * The coordinator's half of the protocol as a sans-I/O state machine: it starts checkpoints with
 * strictly increasing ids, triggers the initiators, gathers acks, and decides completed or aborted.
 *
 * The subsuming contract: a completed checkpoint n makes every earlier one obsolete as a restore point
 * and, for side effects, a `complete` notice for n implies every earlier id. An earlier checkpoint still
 * in flight is NOT aborted when a later one completes (unlike Flink): its acks are usually on their
 * way, and a manual request from the protection service should not fail because a periodic one
 * finished first. A stuck earlier checkpoint ends by its own timeout. Complete and abort notices are
 * effects the shell sends best effort; participants do not depend on them except to end a pause.
 */
import type { CheckpointId, ProcessId } from '../ids.js';

export interface TrackerConfig {
  readonly participants: readonly ProcessId[];
  readonly checkpointTimeoutMs: number;
  readonly checkpointsInFlightMax: number;
}

export type TrackerInput<A> =
  | { readonly type: 'start'; readonly checkpointId: CheckpointId; readonly initiators: readonly ProcessId[] }
  | { readonly type: 'ack'; readonly checkpointId: CheckpointId; readonly process: ProcessId; readonly ack: A }
  | { readonly type: 'decline'; readonly checkpointId: CheckpointId; readonly process: ProcessId; readonly reason: string }
  | { readonly type: 'timeout'; readonly checkpointId: CheckpointId }
  | { readonly type: 'cancel'; readonly checkpointId: CheckpointId; readonly reason: string };

export type AbortReason = 'declined' | 'timeout' | 'cancelled';

export type TrackerEffect<A> =
  | { readonly type: 'trigger'; readonly checkpointId: CheckpointId; readonly process: ProcessId }
  | { readonly type: 'start-timer'; readonly checkpointId: CheckpointId; readonly afterMs: number }
  | { readonly type: 'cancel-timer'; readonly checkpointId: CheckpointId }
  | { readonly type: 'completed'; readonly checkpointId: CheckpointId; readonly acks: ReadonlyMap<ProcessId, A> }
  | {
      readonly type: 'aborted';
      readonly checkpointId: CheckpointId;
      readonly reason: AbortReason;
      readonly detail: string;
      /** Participants that had not acked when it ended. */
      readonly missing: readonly ProcessId[];
    }
  | { readonly type: 'notify'; readonly checkpointId: CheckpointId; readonly notice: 'complete' | 'abort'; readonly process: ProcessId };

export type TrackerRejectReason =
  | 'id-not-increasing'
  | 'too-many-in-flight'
  | 'unknown-initiator'
  | 'no-initiator'
  | 'unknown-checkpoint'
  | 'unknown-participant'
  | 'duplicate-ack';

export interface TrackerResult<A> {
  readonly effects: readonly TrackerEffect<A>[];
  readonly rejected?: { readonly reason: TrackerRejectReason; readonly detail: string };
}

interface InFlight<A> {
  readonly id: CheckpointId;
  readonly acks: Map<ProcessId, A>;
}

export type TrackerConfigError = { readonly kind: 'invalid-config'; readonly message: string };

export class CheckpointTracker<A> {
  private readonly participants: ReadonlySet<ProcessId>;
  private readonly inFlight = new Map<CheckpointId, InFlight<A>>();
  private lastStarted = 0;
  private lastCompleted = 0;

  static create<A>(config: TrackerConfig): { ok: true; tracker: CheckpointTracker<A> } | { ok: false; error: TrackerConfigError } {
    const problems: string[] = [];
    if (config.participants.length === 0) problems.push('at least one participant is required');
    if (new Set(config.participants).size !== config.participants.length) problems.push('participants must be distinct');
    if (!(config.checkpointTimeoutMs > 0)) problems.push(`checkpointTimeoutMs must be > 0, got ${config.checkpointTimeoutMs}`);
    if (!Number.isSafeInteger(config.checkpointsInFlightMax) || config.checkpointsInFlightMax < 1) {
      problems.push(`checkpointsInFlightMax must be an integer >= 1, got ${config.checkpointsInFlightMax}`);
    }
    if (problems.length > 0) return { ok: false, error: { kind: 'invalid-config', message: problems.join('; ') } };
    return { ok: true, tracker: new CheckpointTracker<A>(config) };
  }

  private constructor(private readonly config: TrackerConfig) {
    this.participants = new Set(config.participants);
  }

  get lastCompletedId(): CheckpointId {
    return this.lastCompleted;
  }

  inFlightIds(): CheckpointId[] {
    return [...this.inFlight.keys()];
  }

  step(input: TrackerInput<A>): TrackerResult<A> {
    const effects: TrackerEffect<A>[] = [];
    const rejected = this.dispatch(input, effects);
    return rejected ? { effects, rejected } : { effects };
  }

  private dispatch(input: TrackerInput<A>, out: TrackerEffect<A>[]): TrackerResult<A>['rejected'] {
    switch (input.type) {
      case 'start': {
        const id = input.checkpointId;
        if (id <= this.lastStarted) {
          return { reason: 'id-not-increasing', detail: `checkpoint id ${id} must exceed ${this.lastStarted}` };
        }
        if (this.inFlight.size >= this.config.checkpointsInFlightMax) {
          return {
            reason: 'too-many-in-flight',
            detail: `${this.inFlight.size} checkpoint(s) in flight, the maximum is ${this.config.checkpointsInFlightMax}`,
          };
        }
        if (input.initiators.length === 0) return { reason: 'no-initiator', detail: `checkpoint ${id} names no initiator` };
        for (const p of input.initiators) {
          if (!this.participants.has(p)) return { reason: 'unknown-initiator', detail: `initiator ${p} is not a participant` };
        }
        this.lastStarted = id;
        this.inFlight.set(id, { id, acks: new Map() });
        out.push({ type: 'start-timer', checkpointId: id, afterMs: this.config.checkpointTimeoutMs });
        for (const p of input.initiators) out.push({ type: 'trigger', checkpointId: id, process: p });
        return undefined;
      }
      case 'ack': {
        const c = this.inFlight.get(input.checkpointId);
        if (!c) return { reason: 'unknown-checkpoint', detail: `ack for checkpoint ${input.checkpointId}, which is not in flight` };
        if (!this.participants.has(input.process)) {
          return { reason: 'unknown-participant', detail: `ack from ${input.process}, not a participant` };
        }
        if (c.acks.has(input.process)) {
          return { reason: 'duplicate-ack', detail: `${input.process} already acked ${input.checkpointId}` };
        }
        c.acks.set(input.process, input.ack);
        if (c.acks.size === this.participants.size) this.complete(c, out);
        return undefined;
      }
      case 'decline': {
        const c = this.inFlight.get(input.checkpointId);
        if (!c) return { reason: 'unknown-checkpoint', detail: `decline for checkpoint ${input.checkpointId}, which is not in flight` };
        this.abort(c, 'declined', `${input.process} declined: ${input.reason}`, out);
        return undefined;
      }
      case 'timeout': {
        const c = this.inFlight.get(input.checkpointId);
        if (!c) return { reason: 'unknown-checkpoint', detail: `timeout of checkpoint ${input.checkpointId}, which is not in flight` };
        const missing = this.missing(c);
        this.abort(c, 'timeout', `no answer within ${this.config.checkpointTimeoutMs} ms from ${missing.join(', ')}`, out);
        return undefined;
      }
      case 'cancel': {
        const c = this.inFlight.get(input.checkpointId);
        if (!c) return { reason: 'unknown-checkpoint', detail: `cancel of checkpoint ${input.checkpointId}, which is not in flight` };
        this.abort(c, 'cancelled', input.reason, out);
        return undefined;
      }
    }
  }

  private complete(c: InFlight<A>, out: TrackerEffect<A>[]): void {
    this.inFlight.delete(c.id);
    this.lastCompleted = c.id;
    out.push({ type: 'cancel-timer', checkpointId: c.id });
    out.push({ type: 'completed', checkpointId: c.id, acks: c.acks });
    for (const p of this.participants) out.push({ type: 'notify', checkpointId: c.id, notice: 'complete', process: p });
  }

  private abort(c: InFlight<A>, reason: AbortReason, detail: string, out: TrackerEffect<A>[]): void {
    this.inFlight.delete(c.id);
    out.push({ type: 'cancel-timer', checkpointId: c.id });
    out.push({ type: 'aborted', checkpointId: c.id, reason, detail, missing: this.missing(c) });
    for (const p of this.participants) out.push({ type: 'notify', checkpointId: c.id, notice: 'abort', process: p });
  }

  private missing(c: InFlight<A>): ProcessId[] {
    return [...this.participants].filter((p) => !c.acks.has(p));
  }
}
