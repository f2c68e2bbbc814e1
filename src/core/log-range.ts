/**
 * A log channel's history and ranges (see `LogEpoch`, `LogRange`): which epoch sent which seq, and
 * the range a checkpoint records. Shared by the participant and by whoever reads a range back from the
 * log (the demo, the tests), so both take the same messages.
 */
import type { Epoch } from '../ids.js';
import type { LogEpoch, LogRange } from './types.js';

/** The epoch that sent `seq` on a log input: the last part starting at or before it. */
export function epochOfSeq(log: readonly LogEpoch[], seq: number): Epoch | undefined {
  for (let i = log.length - 1; i >= 0; i--) {
    const part = log[i] as LogEpoch;
    if (part.fromSeq <= seq) return part.epoch;
  }
  return undefined;
}

/** The range (afterSeq, throughSeq] of a log input, with the parts of its history that cover it. */
export function logRange(log: readonly LogEpoch[], afterSeq: number, throughSeq: number): LogRange {
  const epochs: LogEpoch[] = [];
  if (throughSeq > afterSeq) {
    for (let i = 0; i < log.length; i++) {
      const part = log[i] as LogEpoch;
      const next = log[i + 1];
      if (part.fromSeq > throughSeq) break;
      if (next !== undefined && next.fromSeq <= afterSeq + 1) continue;
      epochs.push(part);
    }
  }
  return { afterSeq, throughSeq, epochs };
}

