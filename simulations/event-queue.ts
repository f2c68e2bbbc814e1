/**
 * The simulator's agenda: events come out ordered by (time, insertion order). Insertion order breaks
 * ties, so two events at the same instant run in the order they were scheduled: runs are
 * deterministic.
 *
 * It is the simulator's hottest structure (every event goes through it once each way) and holds
 * thousands of events, nearly all due within a few milliseconds. One heap of all of them spent a pop
 * sifting through every level; here time is cut into buckets of `bucketMs` (a calendar queue). An
 * event is pushed, unsorted, onto its bucket's list in a ring of slots, and only when the run
 * reaches that bucket do its few events go through a small heap (`near`). Events beyond the ring
 * wait in a second heap (`far`) until their bucket comes up. Which events are in `near` is decided on
 * the integer bucket index alone, and an earlier bucket always holds earlier times, so the pops come
 * out in exactly (time, order) order whatever the width: the width only changes the speed.
 *
 * Times and orders are kept here, in typed arrays, never on the events: moving an event between the
 * ring and the heaps then never loads the event itself, which has usually left the cache by the time
 * its bucket comes up.
 */
import { EventHeap } from './event-heap.js';

/** Slots in the ring (a power of two, so a bucket's slot is a mask of its index). */
const RING_SLOTS = 1024;
const RING_MASK = RING_SLOTS - 1;
const ENTRIES_INITIAL = 1024;
const NONE = -1;

/**
 * A bucket width for about `perBucket` events a bucket at `eventsPerMs` events a millisecond,
 * widened so that the ring reaches `horizonMs` ahead: events beyond it wait in the far heap, which
 * costs what a single heap did. Anything but a positive number gives 1 ms (the width only tunes speed).
 */
export function agendaBucketMs(eventsPerMs: number, perBucket: number, horizonMs: number): number {
  const ms = Math.max(perBucket / eventsPerMs, horizonMs / RING_SLOTS);
  return ms > 0 && Number.isFinite(ms) ? ms : 1;
}

export class EventQueue<E> {
  private readonly bucketsPerMs: number;
  /** Every event of a bucket up to `current`, and none later. */
  private readonly near = new EventHeap<E>();
  /** Events of buckets at least `current + RING_SLOTS` when they were pushed. */
  private readonly far = new EventHeap<E>();
  /**
   * Events of buckets in (current, current + RING_SLOTS): slot `bucket & RING_MASK` heads a list of
   * entries linked through `entryNext`; unused entries form the free list.
   */
  private readonly heads = new Int32Array(RING_SLOTS).fill(NONE);
  private entryItems: (E | undefined)[] = [];
  private entryAts = new Float64Array(0);
  private entryOrders = new Float64Array(0);
  private entryNext = new Int32Array(0);
  private free = NONE;
  private inRing = 0;
  private current = Number.NEGATIVE_INFINITY;
  private n = 0;
  private counter = 0;
  private poppedAt = 0;

  /** `bucketMs` only tunes speed: aim for a few to a few dozen events per bucket. */
  constructor(bucketMs: number) {
    if (!(bucketMs > 0 && Number.isFinite(bucketMs))) throw new RangeError(`bucketMs must be a positive number, got ${bucketMs}`);
    this.bucketsPerMs = 1 / bucketMs;
    this.grow(ENTRIES_INITIAL);
  }

  get size(): number {
    return this.n;
  }

  /** Time of the event `pop` returned last. */
  get lastAt(): number {
    return this.poppedAt;
  }

  push(item: E, at: number): void {
    const order = this.counter++;
    this.n += 1;
    const bucket = Math.floor(at * this.bucketsPerMs);
    const ahead = bucket - this.current;
    if (ahead <= 0) {
      this.near.push(item, at, order);
    } else if (ahead < RING_SLOTS) {
      if (this.free === NONE) this.grow(this.entryNext.length);
      const e = this.free;
      const next = this.entryNext;
      this.free = next[e] as number;
      this.entryItems[e] = item;
      this.entryAts[e] = at;
      this.entryOrders[e] = order;
      const slot = bucket & RING_MASK;
      next[e] = this.heads[slot] as number;
      this.heads[slot] = e;
      this.inRing += 1;
    } else {
      this.far.push(item, at, order);
    }
  }

  pop(): E | undefined {
    const near = this.near;
    if (near.size === 0 && !this.advance()) return undefined;
    this.n -= 1;
    this.poppedAt = near.minAt;
    return near.pop();
  }

  /** Moves `current` to the next bucket holding events and puts them into `near`; false if none is left. */
  private advance(): boolean {
    const far = this.far;
    const farBucket = far.size > 0 ? Math.floor(far.minAt * this.bucketsPerMs) : Number.POSITIVE_INFINITY;
    if (this.inRing === 0) {
      if (far.size === 0) return false;
      this.current = farBucket;
    } else {
      // A nonempty slot lies within RING_SLOTS buckets; a far event due earlier stops the scan.
      const heads = this.heads;
      let bucket = this.current + 1;
      while (bucket < farBucket && heads[bucket & RING_MASK] === NONE) bucket += 1;
      this.current = bucket;
      const slot = bucket & RING_MASK;
      const next = this.entryNext;
      let e = heads[slot] as number;
      heads[slot] = NONE;
      while (e !== NONE) {
        this.near.push(this.entryItems[e] as E, this.entryAts[e] as number, this.entryOrders[e] as number);
        this.entryItems[e] = undefined;
        this.inRing -= 1;
        const following = next[e] as number;
        next[e] = this.free;
        this.free = e;
        e = following;
      }
    }
    while (far.size > 0 && Math.floor(far.minAt * this.bucketsPerMs) <= this.current) {
      const at = far.minAt;
      const order = far.minOrder;
      this.near.push(far.pop() as E, at, order);
    }
    return true;
  }

  /** Adds `more` entries to the free list. */
  private grow(more: number): void {
    const old = this.entryNext.length;
    const capacity = old + more;
    const ats = new Float64Array(capacity);
    ats.set(this.entryAts);
    const orders = new Float64Array(capacity);
    orders.set(this.entryOrders);
    const next = new Int32Array(capacity);
    next.set(this.entryNext);
    for (let e = old; e < capacity; e++) {
      next[e] = e + 1 < capacity ? e + 1 : this.free;
      this.entryItems.push(undefined);
    }
    this.free = old;
    this.entryAts = ats;
    this.entryOrders = orders;
    this.entryNext = next;
  }
}
