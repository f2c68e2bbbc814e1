/**
 * Bad traffic is counted, not narrated: a message that does not decode, claims another sender or is
 * refused is logged at a bounded rate per kind, and what was left out is said in one summary line
 * per kind and window. 100,000 malformed messages once wrote one warn line each (39,333 lines on the
 * coordinator in one test); a flood must not fill the disk nor drown the lines that matter.
 */
import type { Logger } from 'pino';

export interface BadTrafficLimits {
  /** Lines written per kind in one window; the rest are counted. */
  readonly linesPerWindow: number;
  readonly windowMs: number;
}

export const BAD_TRAFFIC_LIMITS_DEFAULT: BadTrafficLimits = { linesPerWindow: 10, windowMs: 10_000 };

interface Window {
  startedAtMs: number;
  written: number;
  suppressed: number;
  /** The summary of this window, due at its end once something was suppressed. */
  summary: NodeJS.Timeout | undefined;
}

export class BadTrafficLog {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly log: Logger,
    private readonly limits: BadTrafficLimits = BAD_TRAFFIC_LIMITS_DEFAULT,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  /** A warn line for `kind` (e.g. `malformed-event`), unless the kind used up its lines this window. */
  warn(kind: string, fields: Record<string, unknown>, message: string): void {
    const now = this.nowMs();
    let w = this.windows.get(kind);
    if (w === undefined || now - w.startedAtMs >= this.limits.windowMs) {
      if (w !== undefined) this.summarize(kind, w);
      w = { startedAtMs: now, written: 0, suppressed: 0, summary: undefined };
      this.windows.set(kind, w);
    }
    if (w.written < this.limits.linesPerWindow) {
      w.written += 1;
      this.log.warn(Object.assign({ kind }, fields), message);
      return;
    }
    w.suppressed += 1;
    if (w.summary === undefined) {
      const window = w;
      window.summary = setTimeout(() => this.summarize(kind, window), Math.max(0, window.startedAtMs + this.limits.windowMs - now));
      window.summary.unref();
    }
  }

  /** Writes the summaries still due (a daemon stopping). */
  flush(): void {
    for (const [kind, w] of this.windows) this.summarize(kind, w);
    this.windows.clear();
  }

  private summarize(kind: string, w: Window): void {
    if (w.summary !== undefined) clearTimeout(w.summary);
    w.summary = undefined;
    if (w.suppressed === 0) return;
    this.log.warn({ kind, suppressed: w.suppressed, logged: w.written, windowMs: this.limits.windowMs }, `${w.suppressed} more ${kind} message(s) dropped without a line of their own`);
    w.suppressed = 0;
  }
}
