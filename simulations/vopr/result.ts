/** What one seed's run reports: enough to print a failure and to compare two runs byte for byte. */
import type { Violation } from './invariants.js';

export interface SeedResult {
  readonly seed: number;
  /** Events the agenda ran (each followed by the safety checks). */
  readonly steps: number;
  readonly simulatedMs: number;
  readonly faults: string;
  readonly violations: readonly Violation[];
  /** The minimal trace of the first failure (focus.ts), oldest first; empty without one. */
  readonly traceTail: readonly string[];
  /** Every line of the trace, when asked for. */
  readonly traceAll?: readonly string[];
  /** FNV-1a of every trace line: equal for two runs of one seed. */
  readonly traceDigest: string;
  /** Counters worth a glance in the summary: checkpoints completed, aborted, rollbacks, crashes... */
  readonly counts: Readonly<Record<string, number>>;
}
