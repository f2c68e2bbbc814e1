/**
 * The fault simulator's clock and agenda: simulated milliseconds and a queue of callbacks ordered by
 * (time, insertion order), so two events at one instant run in the order they were scheduled and a
 * seed gives one run, byte for byte. The heap is the simulator's (event-heap.ts); the VOPR's worlds
 * hold a few hundred events at most, so the calendar queue of the data-plane simulator buys nothing.
 */
import { EventHeap } from '../event-heap.js';

export interface AgendaEvent {
  /** What the trace says when the event runs; '' keeps it out of the trace (bookkeeping ticks). */
  readonly label: string;
  readonly run: () => void;
}

export class Agenda {
  private readonly heap = new EventHeap<AgendaEvent>();
  private order = 0;
  private nowMs = 0;

  get now(): number {
    return this.nowMs;
  }

  /** Time of the next event, or Infinity when none is due. */
  get nextAt(): number {
    return this.heap.size === 0 ? Number.POSITIVE_INFINITY : this.heap.minAt;
  }

  at(atMs: number, label: string, run: () => void): void {
    if (!(atMs >= this.nowMs)) throw new RangeError(`event '${label}' scheduled at ${atMs} ms, before now (${this.nowMs} ms)`);
    this.heap.push({ label, run }, atMs, this.order++);
  }

  after(delayMs: number, label: string, run: () => void): void {
    this.at(this.nowMs + Math.max(0, delayMs), label, run);
  }

  /** Runs the earliest event, after `before` saw it; undefined when none is left. */
  step(before?: (event: AgendaEvent) => void): AgendaEvent | undefined {
    if (this.heap.size === 0) return undefined;
    this.nowMs = this.heap.minAt;
    const event = this.heap.pop() as AgendaEvent;
    before?.(event);
    event.run();
    return event;
  }
}
