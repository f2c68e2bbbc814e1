/**
 * The payload of every message sent in the current epoch, per channel and by sequence number: what
 * the final legality check sums and what a recovery rewinds.
 *
 * Nothing reads a log while messages flow, so sends are journalled in send order and written into
 * the per-channel logs in batches. A write straight into the sender's log touched a different array
 * for each of thousands of channels and missed the cache on nearly every message; a batch of such
 * writes lets those misses overlap. The logs are typed arrays, whose storage lies outside V8's young
 * generation: as plain arrays, every time one grew the garbage collector copied it again.
 */

const BATCH = 4096;
const LOG_CAPACITY_INITIAL = 16;

export class ChannelLogs {
  /** Payload of seq s at index s - 1; NaN where a message was never logged. */
  private readonly logs: Float64Array[];
  private readonly lengths: Float64Array;
  private readonly pendingChannels = new Int32Array(BATCH);
  private readonly pendingSeqs = new Float64Array(BATCH);
  private readonly pendingPayloads = new Float64Array(BATCH);
  private pending = 0;

  constructor(channels: number) {
    this.logs = Array.from({ length: channels }, () => new Float64Array(LOG_CAPACITY_INITIAL));
    this.lengths = new Float64Array(channels);
  }

  /** Message `seq` (from 1) on channel number `channel` carried `payload`. */
  record(channel: number, seq: number, payload: number): void {
    const i = this.pending;
    this.pendingChannels[i] = channel;
    this.pendingSeqs[i] = seq;
    this.pendingPayloads[i] = payload;
    this.pending = i + 1;
    if (i + 1 === BATCH) this.flush();
  }

  /**
   * `from` plus the payloads of the channel's first `count` messages, added one at a time in seq
   * order (so exactly what a plain loop gives); NaN if any of them was never logged.
   */
  sum(channel: number, count: number, from: number): number {
    this.flush();
    const log = this.logs[channel] as Float64Array;
    const length = this.lengths[channel] as number;
    let total = from;
    for (let i = 0; i < count; i++) total += i < length ? (log[i] as number) : Number.NaN;
    return total;
  }

  /** The payload of message `seq` (from 1) on the channel; NaN if it was never logged. */
  payload(channel: number, seq: number): number {
    this.flush();
    return seq >= 1 && seq <= (this.lengths[channel] as number) ? ((this.logs[channel] as Float64Array)[seq - 1] as number) : Number.NaN;
  }

  /** Keeps the first `length` messages of the channel (a recovery resends the rest). */
  truncate(channel: number, length: number): void {
    this.flush();
    const old = this.lengths[channel] as number;
    if (length > old) this.capacity(channel, length).fill(Number.NaN, old, length);
    this.lengths[channel] = length;
  }

  private flush(): void {
    const logs = this.logs;
    const lengths = this.lengths;
    const n = this.pending;
    for (let i = 0; i < n; i++) {
      const channel = this.pendingChannels[i] as number;
      const index = (this.pendingSeqs[i] as number) - 1;
      const length = lengths[channel] as number;
      let log = logs[channel] as Float64Array;
      if (index >= length) {
        if (index >= log.length) log = this.capacity(channel, index + 1);
        // A gap (which a run never makes) reads as never logged.
        if (index > length) log.fill(Number.NaN, length, index);
        lengths[channel] = index + 1;
      }
      log[index] = this.pendingPayloads[i] as number;
    }
    this.pending = 0;
  }

  /** The channel's log, grown to hold at least `length` payloads. */
  private capacity(channel: number, length: number): Float64Array {
    const log = this.logs[channel] as Float64Array;
    if (length <= log.length) return log;
    let capacity = log.length * 2;
    while (capacity < length) capacity *= 2;
    const grown = new Float64Array(capacity);
    grown.set(log);
    this.logs[channel] = grown;
    return grown;
  }
}
