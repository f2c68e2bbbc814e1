/**
 * Whether a log channel's stream still holds what the retained checkpoints need (issue 15, DESIGN §3).
 *
 * A checkpoint records, per log channel, the stream sequence of the last message its receiver had
 * consumed (`afterOffset`); a rollback to it replays the stream from right after that. A stream
 * with limits retention drops its oldest records first, so the record at `afterOffset` (older than
 * every record of the range, and on the same subject) is the one to watch: while it is still in
 * the stream, the whole range is. The retained checkpoint with the smallest `afterOffset` among
 * those whose range is not empty decides for the channel.
 *
 * The verdict leans to warning early: `used` is an upper bound of the share of each limit the
 * records from `afterOffset` on take (bytes are pro rata of the stream's average record, the
 * subject's count is its whole count when that is less than the records since), and a record
 * that cannot be read is taken as dropped.
 */
import type { ChannelId, CheckpointId } from '../ids.js';

/** From this share of a limit on, the range is at risk: the stream drops it after a little more traffic. */
export const LOG_RETENTION_RISK = 0.8;

/** A retained checkpoint's need on one log channel: replay from right after `afterOffset`. */
export interface RetainedLogRange {
  readonly checkpointId: CheckpointId;
  readonly afterOffset: number;
}

export interface StreamLimits {
  /** 0: no such limit. */
  readonly maxMsgs: number;
  readonly maxBytes: number;
  readonly maxAgeMs: number;
  readonly maxMsgsPerSubject: number;
}

/** What the stream says now, and what it says of the record the oldest range starts after. */
export interface StreamFacts {
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly messages: number;
  readonly bytes: number;
  readonly limits: StreamLimits;
  /** The record at the oldest range's `afterOffset`: its age and its subject's count, or gone. */
  readonly needed: { readonly present: true; readonly ageMs: number; readonly subjectMessages: number } | { readonly present: false };
}

export type LogRetentionVerdict =
  | { readonly kind: 'ok'; readonly channel: ChannelId }
  | { readonly kind: 'dropped'; readonly channel: ChannelId; readonly checkpointId: CheckpointId; readonly detail: string }
  | { readonly kind: 'at-risk'; readonly channel: ChannelId; readonly checkpointId: CheckpointId; readonly limit: keyof StreamLimits; readonly used: number; readonly detail: string };

/** The range that decides for a channel: the smallest `afterOffset` (undefined: nothing to replay). */
export function oldestRange(ranges: readonly RetainedLogRange[]): RetainedLogRange | undefined {
  let oldest: RetainedLogRange | undefined;
  for (const r of ranges) if (oldest === undefined || r.afterOffset < oldest.afterOffset) oldest = r;
  return oldest;
}

export function decideLogRetention(channel: ChannelId, stream: string, oldest: RetainedLogRange, facts: StreamFacts): LogRetentionVerdict {
  const { checkpointId, afterOffset } = oldest;
  // Nothing consumed at the cut: the range starts at the subject's first record, wherever it is.
  const from = Math.max(afterOffset, 1);
  if (!facts.needed.present || facts.firstSeq > from) {
    return {
      kind: 'dropped',
      channel,
      checkpointId,
      detail: `stream ${stream} no longer holds sequence ${from} (its first is ${facts.firstSeq}): the range of checkpoint ${checkpointId} on ${channel} starts after it and may be partly gone; a rollback or restore to it can fail the channel`,
    };
  }
  const since = Math.max(facts.lastSeq - from + 1, 0);
  const l = facts.limits;
  const shares: [keyof StreamLimits, number][] = [];
  if (l.maxMsgs > 0) shares.push(['maxMsgs', since / l.maxMsgs]);
  if (l.maxBytes > 0 && facts.messages > 0) shares.push(['maxBytes', (facts.bytes * Math.min(since / facts.messages, 1)) / l.maxBytes]);
  if (l.maxAgeMs > 0) shares.push(['maxAgeMs', facts.needed.ageMs / l.maxAgeMs]);
  if (l.maxMsgsPerSubject > 0) shares.push(['maxMsgsPerSubject', Math.min(facts.needed.subjectMessages, since) / l.maxMsgsPerSubject]);
  let worst: [keyof StreamLimits, number] | undefined;
  for (const s of shares) if (worst === undefined || s[1] > worst[1]) worst = s;
  if (worst === undefined || worst[1] < LOG_RETENTION_RISK) return { kind: 'ok', channel };
  const [limit, used] = worst;
  return {
    kind: 'at-risk',
    channel,
    checkpointId,
    limit,
    used,
    detail: `the range of checkpoint ${checkpointId} on ${channel} takes about ${Math.round(used * 100)}% of stream ${stream}'s ${limitName(limit)} (${limitValue(limit, l)}): the stream will drop it soon; raise the limit or keep fewer checkpoints`,
  };
}

function limitName(limit: keyof StreamLimits): string {
  return { maxMsgs: 'max_msgs', maxBytes: 'max_bytes', maxAgeMs: 'max_age', maxMsgsPerSubject: 'max_msgs_per_subject' }[limit];
}

function limitValue(limit: keyof StreamLimits, l: StreamLimits): string {
  return limit === 'maxAgeMs' ? `${l.maxAgeMs / 1000} s` : String(l[limit]);
}
