/**
 * After each retention pass of a plan with log channels, checks that each channel's stream still
 * holds what the plan's retained checkpoints need for a rollback or restore, and says so in the log
 * when it does not or soon will not (src/control/log-retention.ts decides; docs/channels.md). A
 * warning is logged when a channel's verdict changes, not at every pass.
 *
 * The ranges a checkpoint recorded never change, so each is read once (from the receiver's channel
 * state object) and kept while the checkpoint is retained.
 */
import type { NatsConnection, StreamInfo } from 'nats';
import type { Logger } from 'pino';
import type { StateObjects } from '../../adapters/state-store.js';
import { decideLogRetention, oldestRange, type LogRetentionVerdict, type RetainedLogRange, type StreamFacts } from '../../src/control/log-retention.js';
import { channelId, type ChannelId, type CheckpointId } from '../../src/ids.js';
import { processId } from '../../src/wire/index.js';
import { fail, ok, type Result } from '../errors.js';
import type { Plan } from '../model.js';
import type { CoordinatorStore } from '../store/index.js';
import { storeError } from '../store/nats-errors.js';
import { readChannelState } from './part-state.js';

export interface LogStreamReader {
  /**
   * The stream's state and limits, and the record at `neededSeq`: its age, and the count of the
   * channel's `subject` (the plan's; undefined: the record's own subject).
   */
  facts(tenant: string, stream: string, neededSeq: number, nowUnixMs: number, subject?: string): Promise<Result<StreamFacts>>;
}

/** JetStream's API error code for a stream message that is not there. */
const NO_MESSAGE_FOUND = 10037;

/** Reads the streams of each tenant's account (the coordinator's own connection without accounts). */
export function jetStreamLogStreams(connectionFor: (tenant: string) => Promise<NatsConnection>): LogStreamReader {
  return {
    async facts(tenant, stream, neededSeq, nowUnixMs, subject) {
      try {
        const jsm = await (await connectionFor(tenant)).jetstreamManager();
        const info = await jsm.streams.info(stream);
        const limits = limitsOf(info);
        let needed: StreamFacts['needed'];
        try {
          const m = await jsm.streams.getMessage(stream, { seq: neededSeq });
          const counted = subject ?? m.subject;
          const perSubject = limits.maxMsgsPerSubject > 0 ? await jsm.streams.info(stream, { subjects_filter: counted }) : undefined;
          needed = { present: true, ageMs: Math.max(nowUnixMs - m.time.getTime(), 0), subjectMessages: perSubject?.state.subjects?.[counted] ?? 0 };
        } catch (error) {
          if ((error as { api_error?: { err_code?: unknown } }).api_error?.err_code !== NO_MESSAGE_FOUND) throw error;
          needed = { present: false };
        }
        return ok({ firstSeq: info.state.first_seq, lastSeq: info.state.last_seq, messages: info.state.messages, bytes: info.state.bytes, limits, needed });
      } catch (error) {
        const e = storeError(error, `reading stream ${stream} of tenant ${tenant}`);
        return fail(e.kind, e.message);
      }
    },
  };
}

function limitsOf(info: StreamInfo): StreamFacts['limits'] {
  const c = info.config;
  // JetStream says "no limit" with -1 (or 0 for max_age, in nanoseconds).
  return { maxMsgs: Math.max(c.max_msgs, 0), maxBytes: Math.max(c.max_bytes, 0), maxAgeMs: Math.max(c.max_age, 0) / 1_000_000, maxMsgsPerSubject: Math.max(c.max_msgs_per_subject, 0) };
}

interface Deps {
  readonly store: Pick<CoordinatorStore, 'plans' | 'checkpoints'>;
  readonly objects: StateObjects;
  readonly streams: LogStreamReader;
  readonly logger: Logger;
  readonly nowUnixMs?: () => number;
}

/** A log channel of a plan: its id, its stream and its receiving app. */
interface LogChannel {
  readonly id: ChannelId;
  readonly stream: string;
  readonly subject?: string;
  readonly receiver: { readonly server: string; readonly app: string };
}

export class LogRetentionWatch {
  /** Per plan, per retained checkpoint: each log channel's `afterOffset`, for ranges not empty. */
  private readonly ranges = new Map<string, Map<CheckpointId, ReadonlyMap<ChannelId, number>>>();
  /** Per plan and channel: the last verdict logged, so a warning is said once per change. */
  private readonly said = new Map<string, string>();

  constructor(private readonly deps: Deps) {}

  /** Checks each log channel of the plan against its `retained` checkpoints (completed ones). */
  async check(planId: string, tenant: string, retained: readonly CheckpointId[]): Promise<LogRetentionVerdict[]> {
    const plan = await this.deps.store.plans.get(planId);
    if (!plan.ok) return [];
    const channels = logChannelsOf(plan.value);
    if (channels.length === 0) {
      this.ranges.delete(planId);
      return [];
    }
    const known = this.rangesOf(planId, retained);
    for (const id of retained) if (!known.has(id)) await this.read(id, tenant, channels, known);
    const verdicts: LogRetentionVerdict[] = [];
    for (const c of channels) {
      const needs: RetainedLogRange[] = [];
      for (const [checkpointId, offsets] of known) {
        const afterOffset = offsets.get(c.id);
        if (afterOffset !== undefined) needs.push({ checkpointId, afterOffset });
      }
      const oldest = oldestRange(needs);
      if (oldest === undefined) {
        verdicts.push(this.report(planId, tenant, c, { kind: 'ok', channel: c.id }));
        continue;
      }
      const facts = await this.deps.streams.facts(tenant, c.stream, Math.max(oldest.afterOffset, 1), (this.deps.nowUnixMs ?? Date.now)(), c.subject);
      if (!facts.ok) {
        this.deps.logger.warn({ plan: planId, tenant, channel: c.id, stream: c.stream, error: facts.error.message }, 'log channel retention not checked: the stream could not be read');
        continue;
      }
      verdicts.push(this.report(planId, tenant, c, decideLogRetention(c.id, c.stream, oldest, facts.value)));
    }
    return verdicts;
  }

  /** The plan's known ranges, without the checkpoints no longer retained. */
  private rangesOf(planId: string, retained: readonly CheckpointId[]): Map<CheckpointId, ReadonlyMap<ChannelId, number>> {
    let known = this.ranges.get(planId);
    if (known === undefined) {
      known = new Map();
      this.ranges.set(planId, known);
    }
    const keep = new Set(retained);
    for (const id of known.keys()) if (!keep.has(id)) known.delete(id);
    return known;
  }

  /** Reads a checkpoint's log ranges from its receivers' channel states; kept unless a read failed. */
  private async read(id: CheckpointId, tenant: string, channels: readonly LogChannel[], known: Map<CheckpointId, ReadonlyMap<ChannelId, number>>): Promise<void> {
    const stored = await this.deps.store.checkpoints.get(id);
    if (!stored.ok) {
      this.deps.logger.warn({ checkpointId: id, tenant, error: stored.error.message }, 'log channel retention: checkpoint record not read; checked at the next pass');
      return;
    }
    const offsets = new Map<ChannelId, number>();
    for (const c of channels) {
      const part = stored.value.record.parts.find((p) => p.server === c.receiver.server && p.app === c.receiver.app);
      if (part === undefined || part.channelState === undefined) continue;
      const state = await readChannelState(tenant, part, this.deps.objects);
      if (!state.ok) {
        this.deps.logger.warn({ checkpointId: id, tenant, channel: c.id, error: state.message }, 'log channel retention: channel state not read; checked at the next pass');
        return;
      }
      const range = state.value.logRanges[c.id];
      // An empty range replays nothing: it needs nothing of the stream.
      if (range !== undefined && range.throughSeq > range.afterSeq) offsets.set(c.id, range.afterOffset);
    }
    known.set(id, offsets);
  }

  private report(planId: string, tenant: string, c: LogChannel, v: LogRetentionVerdict): LogRetentionVerdict {
    const key = `${planId}|${c.id}`;
    const now = v.kind === 'ok' ? 'ok' : v.kind === 'dropped' ? `dropped|${v.checkpointId}` : `at-risk|${v.checkpointId}|${v.limit}`;
    const before = this.said.get(key);
    if (now === before || (before === undefined && now === 'ok')) return v;
    this.said.set(key, now);
    const fields = { plan: planId, tenant, channel: c.id, stream: c.stream };
    if (v.kind === 'ok') this.deps.logger.info(fields, 'log stream holds every retained checkpoint\'s range again');
    else if (v.kind === 'dropped') this.deps.logger.warn({ ...fields, checkpointId: v.checkpointId, detail: v.detail }, 'log stream may have dropped a retained checkpoint\'s range');
    else this.deps.logger.warn({ ...fields, checkpointId: v.checkpointId, limit: v.limit, used: Number(v.used.toFixed(2)), detail: v.detail }, 'log stream will soon drop a retained checkpoint\'s range');
    return v;
  }
}

function logChannelsOf(plan: Plan): LogChannel[] {
  return plan.channels.flatMap((c) =>
    c.kind === 'log' && c.logStream !== undefined && c.logStream !== ''
      ? [{ id: channelId(processId(c.from.server, c.from.app), processId(c.to.server, c.to.app)), stream: c.logStream, ...(c.logSubject !== undefined ? { subject: c.logSubject } : {}), receiver: c.to }]
      : [],
  );
}
