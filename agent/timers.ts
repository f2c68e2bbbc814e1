/**
 * One Node timer per agent for all of its apps' deadlines (a checkpoint's progress note and timeout,
 * a held barrier's wait, the core's alignment timers): every checkpoint of every app set and cleared
 * two Node timers, which showed in the agents' profile. Deadlines wait in a binary heap; a cancelled
 * one stays until it comes up (cancelling is a flag), and the Node timer is armed for the earliest
 * deadline only, so a deadline later than the armed one (the usual case: a new checkpoint's) costs
 * no timer call at all.
 */

interface Entry {
  readonly atMs: number;
  /** Order of setting, so deadlines at the same time fire in the order they were set. */
  readonly order: number;
  fire: (() => void) | undefined;
}

export interface TimerClock {
  nowMs(): number;
}

export class AgentTimers {
  private readonly heap: Entry[] = [];
  private armed: { atMs: number; timer: NodeJS.Timeout } | undefined;
  private counter = 0;

  constructor(private readonly clock: TimerClock) {}

  /** Calls `fire` after `afterMs`; returns the cancel. */
  set(afterMs: number, fire: () => void): () => void {
    const entry: Entry = { atMs: this.clock.nowMs() + afterMs, order: this.counter++, fire };
    this.push(entry);
    if (this.armed === undefined || entry.atMs < this.armed.atMs) this.arm(entry.atMs);
    return () => {
      entry.fire = undefined;
    };
  }

  /** Deadlines waiting, cancelled ones included (for tests). */
  get size(): number {
    return this.heap.length;
  }

  stop(): void {
    if (this.armed !== undefined) clearTimeout(this.armed.timer);
    this.armed = undefined;
    this.heap.length = 0;
  }

  private arm(atMs: number): void {
    if (this.armed !== undefined) clearTimeout(this.armed.timer);
    const timer = setTimeout(() => this.expire(), Math.max(0, atMs - this.clock.nowMs()));
    // The agent's own liveness never hangs on these: its NATS connection and heartbeat keep it up.
    timer.unref();
    this.armed = { atMs, timer };
  }

  private expire(): void {
    this.armed = undefined;
    const now = this.clock.nowMs();
    const due: (() => void)[] = [];
    while (this.heap.length > 0 && (this.heap[0] as Entry).atMs <= now) {
      const e = this.pop();
      if (e.fire !== undefined) due.push(e.fire);
    }
    // Cancelled entries at the top are dropped now rather than arming a timer for them.
    while (this.heap.length > 0 && (this.heap[0] as Entry).fire === undefined) this.pop();
    if (this.heap.length > 0) this.arm((this.heap[0] as Entry).atMs);
    for (const fire of due) fire();
  }

  private push(e: Entry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(e, h[parent] as Entry)) break;
      h[i] = h[parent] as Entry;
      i = parent;
    }
    h[i] = e;
  }

  private pop(): Entry {
    const h = this.heap;
    const top = h[0] as Entry;
    const last = h.pop() as Entry;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && before(h[r] as Entry, h[l] as Entry) ? r : l;
        if (!before(h[c] as Entry, last)) break;
        h[i] = h[c] as Entry;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}

function before(a: Entry, b: Entry): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.order < b.order);
}
