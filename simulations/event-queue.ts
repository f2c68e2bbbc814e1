/**
 * The simulator's agenda: a binary min-heap ordered by (time, insertion order). Insertion order breaks
 * ties, so two events at the same instant run in the order they were scheduled: runs are deterministic.
 */

export interface Scheduled {
  at: number;
  order: number;
}

export class EventQueue<E extends Scheduled> {
  private readonly heap: E[] = [];
  private counter = 0;

  get size(): number {
    return this.heap.length;
  }

  push(event: E): void {
    event.order = this.counter++;
    const h = this.heap;
    h.push(event);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = h[parent] as E;
      if (!before(event, p)) break;
      h[i] = p;
      i = parent;
    }
    h[i] = event;
  }

  pop(): E | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0] as E;
    const last = h.pop() as E;
    if (h.length > 0) {
      let i = 0;
      const n = h.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        let c = l;
        if (r < n && before(h[r] as E, h[l] as E)) c = r;
        if (!before(h[c] as E, last)) break;
        h[i] = h[c] as E;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}

function before(a: Scheduled, b: Scheduled): boolean {
  return a.at < b.at || (a.at === b.at && a.order < b.order);
}
