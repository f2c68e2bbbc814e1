/**
 * A min-heap of items keyed by (time, order), the building block of the agenda (event-queue.ts),
 * which assigns the orders. (time, order) is a total order, so the sequence of pops does not depend
 * on the heap's shape.
 *
 * The keys live in typed arrays beside the items: a sift compares plain doubles instead of loading
 * every item it passes (which would miss the cache), and the heap is 4-ary, which halves its depth
 * for the same number of comparisons per level that fit in one cache line.
 */

const CAPACITY_INITIAL = 64;
const ARITY = 4;

export class EventHeap<E> {
  private items: (E | undefined)[] = new Array<E | undefined>(CAPACITY_INITIAL).fill(undefined);
  private keys = new Float64Array(CAPACITY_INITIAL);
  /** Doubles hold exact integers far beyond any run's event count. */
  private orders = new Float64Array(CAPACITY_INITIAL);
  private n = 0;

  get size(): number {
    return this.n;
  }

  /** Time of the earliest item; only meaningful when the heap is not empty. */
  get minAt(): number {
    return this.keys[0] as number;
  }

  get minOrder(): number {
    return this.orders[0] as number;
  }

  push(item: E, at: number, order: number): void {
    if (this.n === this.keys.length) this.grow();
    const keys = this.keys;
    const orders = this.orders;
    const items = this.items;
    let i = this.n++;
    while (i > 0) {
      const parent = ((i - 1) / ARITY) | 0;
      const pk = keys[parent] as number;
      if (!(at < pk || (at === pk && order < (orders[parent] as number)))) break;
      keys[i] = pk;
      orders[i] = orders[parent] as number;
      items[i] = items[parent];
      i = parent;
    }
    keys[i] = at;
    orders[i] = order;
    items[i] = item;
  }

  /** Removes the earliest item (read `minAt` and `minOrder` first for its key). */
  pop(): E | undefined {
    const n = this.n;
    if (n === 0) return undefined;
    const items = this.items;
    const top = items[0] as E;
    const last = n - 1;
    this.n = last;
    if (last === 0) {
      items[0] = undefined;
      return top;
    }
    const keys = this.keys;
    const orders = this.orders;
    const k = keys[last] as number;
    const o = orders[last] as number;
    const item = items[last];
    items[last] = undefined;
    let i = 0;
    for (;;) {
      const first = i * ARITY + 1;
      if (first >= last) break;
      // The earliest of up to ARITY children. Times are rarely equal, so orders are read only on a tie.
      let c = first;
      let ck = keys[first] as number;
      const end = first + ARITY < last ? first + ARITY : last;
      for (let j = first + 1; j < end; j++) {
        const jk = keys[j] as number;
        if (jk < ck || (jk === ck && (orders[j] as number) < (orders[c] as number))) {
          c = j;
          ck = jk;
        }
      }
      const co = orders[c] as number;
      if (!(ck < k || (ck === k && co < o))) break;
      keys[i] = ck;
      orders[i] = co;
      items[i] = items[c];
      i = c;
    }
    keys[i] = k;
    orders[i] = o;
    items[i] = item;
    return top;
  }

  private grow(): void {
    const capacity = this.keys.length * 2;
    const keys = new Float64Array(capacity);
    keys.set(this.keys);
    const orders = new Float64Array(capacity);
    orders.set(this.orders);
    this.keys = keys;
    this.orders = orders;
    const items = this.items;
    for (let i = items.length; i < capacity; i++) items.push(undefined);
  }
}
