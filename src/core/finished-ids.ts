/**
 * Remembers which checkpoint ids a participant has finished, in bounded memory. Once more than
 * `max` ids are remembered the oldest is forgotten and every id at or below it counts as finished:
 * a barrier that late is stale whichever checkpoint it belongs to.
 */
import type { CheckpointId } from '../ids.js';

export class FinishedIds {
  private readonly ids = new Set<CheckpointId>();
  private readonly order: CheckpointId[] = [];
  private head = 0;
  private floor = 0;

  constructor(private readonly max: number) {
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new RangeError(`finishedIdsRememberedMax must be an integer >= 1, got ${String(max)}`);
    }
  }

  has(id: CheckpointId): boolean {
    return id <= this.floor || this.ids.has(id);
  }

  add(id: CheckpointId): void {
    if (this.has(id)) return;
    this.ids.add(id);
    this.order.push(id);
    if (this.ids.size > this.max) {
      const oldest = this.order[this.head++] as CheckpointId;
      this.ids.delete(oldest);
      if (oldest > this.floor) this.floor = oldest;
      if (this.head > 1024 && this.head * 2 > this.order.length) {
        this.order.splice(0, this.head);
        this.head = 0;
      }
    }
  }
}
