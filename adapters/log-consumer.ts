/**
 * A consumer of one log channel's subject in its stream, from right after a stream sequence: an
 * ephemeral pull consumer without acks (the position is the caller's, kept by the core and the
 * checkpoints), in memory, which the server forgets once idle. nats.js's ordered consumers would do
 * but need filter_subjects, a nats-server 2.10 feature; this works with 2.9 too.
 */
import { AckPolicy, DeliverPolicy, type Consumer, type NatsConnection } from 'nats';

/** A consumer the server forgets after this long without a pull (its client died): 1 minute. */
const CONSUMER_IDLE_NS = 60 * 1_000_000_000;

export interface LogConsumer {
  readonly consumer: Consumer;
  /** Deletes it on the server (best effort: it goes by itself once idle). */
  remove(): Promise<void>;
}

/** `subject` undefined: every subject of the stream (a range read back under another channel's name). */
export async function logConsumer(nc: NatsConnection, stream: string, subject: string | undefined, afterOffset: number): Promise<LogConsumer> {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.consumers.add(stream, {
    ...(subject !== undefined ? { filter_subject: subject } : {}),
    ack_policy: AckPolicy.None,
    mem_storage: true,
    inactive_threshold: CONSUMER_IDLE_NS,
    ...(afterOffset > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: afterOffset + 1 } : { deliver_policy: DeliverPolicy.All }),
  });
  const consumer = await nc.jetstream().consumers.get(stream, info.name);
  return {
    consumer,
    remove: async () => {
      await jsm.consumers.delete(stream, info.name).catch(() => undefined);
    },
  };
}
