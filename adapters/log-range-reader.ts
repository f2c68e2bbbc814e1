/**
 * Reads a log channel's recorded range back from its stream: the messages a rollback replays, taken
 * the way the receiving core takes them (from the stream sequence after `afterOffset`, each seq of
 * the range from the epoch the range names for it, abandoned messages skipped). The demo and the
 * tests count the tokens in flight with it, and an agent restoring a checkpoint into other apps
 * reads the range recorded under the original channel's name with it (agent/agent.ts).
 */
import type { NatsConnection } from 'nats';
import { logConsumer } from './log-consumer.js';
import { epochOfSeq } from '../src/core/log-range.js';
import type { RecordedMessage } from '../src/core/types.js';
import type { ChannelId } from '../src/ids.js';
import { LOG_HEADERS, type StoredLogRange } from '../src/wire/index.js';

export interface LogRangeSource {
  readonly stream: string;
  /** The channel's subject; undefined: every subject of the stream (the records name their channel). */
  readonly subject?: string;
}

/** How long to wait for the next message of a range before calling it missing. */
const NEXT_MESSAGE_WAIT_MS = 2_000;

/**
 * The range's messages in seq order; rejects when the stream no longer holds one of them (retention
 * dropped it) or it does not come within a few seconds.
 */
export async function readLogRange(nc: NatsConnection, source: LogRangeSource, channel: ChannelId, range: StoredLogRange): Promise<RecordedMessage<Uint8Array>[]> {
  const out: RecordedMessage<Uint8Array>[] = [];
  if (range.throughSeq <= range.afterSeq) return out;
  const { consumer, remove } = await logConsumer(nc, source.stream, source.subject, range.afterOffset);
  try {
    let next = range.afterSeq + 1;
    while (next <= range.throughSeq) {
      const m = await consumer.next({ expires: NEXT_MESSAGE_WAIT_MS });
      if (m === null) throw new Error(`${channel}: message ${next} of the range (${range.afterSeq}, ${range.throughSeq}] is not in stream ${source.stream}`);
      if (m.headers?.get(LOG_HEADERS.channel) !== channel) continue;
      const seq = Number(m.headers.get(LOG_HEADERS.seq));
      const epoch = Number(m.headers.get(LOG_HEADERS.epoch));
      if (seq !== next || epochOfSeq(range.epochs, seq) !== epoch) continue;
      out.push({ seq, payload: m.data });
      next += 1;
    }
    return out;
  } finally {
    await remove();
  }
}
