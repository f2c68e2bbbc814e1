/**
 * A simulated process (an agent or a coordinator): up or down, with an incarnation that every crash
 * bumps, and named timers. A crash forgets every timer and every pending reply at once (they check
 * the incarnation), which is what losing a process's memory means; what it wrote to the stores stays.
 */
import type { Agenda } from './agenda.js';
import type { IoOwner } from './io.js';

export class SimProcess implements IoOwner {
  incarnation = 0;
  up = true;
  private readonly timers = new Map<string, number>();
  private timerSerial = 0;

  constructor(
    readonly name: string,
    private readonly agenda: Agenda,
    /** Where a timer that fires is noted (cancelled ones never are). */
    private readonly onTimer: (what: string) => void = () => undefined,
  ) {}

  crash(): void {
    this.up = false;
    this.incarnation++;
    this.timers.clear();
  }

  restart(): void {
    this.up = true;
  }

  /** Starts (or restarts) the timer `name`; `fire` runs only if the timer is still the same one then. */
  startTimer(name: string, ms: number, fire: () => void): void {
    const serial = ++this.timerSerial;
    const incarnation = this.incarnation;
    this.timers.set(name, serial);
    this.agenda.after(ms, '', () => {
      if (!this.up || this.incarnation !== incarnation || this.timers.get(name) !== serial) return;
      this.timers.delete(name);
      this.onTimer(`${this.name} timer ${name}`);
      fire();
    });
  }

  cancelTimer(name: string): void {
    this.timers.delete(name);
  }

  /** Runs `fn` after `ms` if this incarnation is still up then (a step of its own work). */
  later(ms: number, label: string, fn: () => void): void {
    const incarnation = this.incarnation;
    this.agenda.after(ms, label, () => {
      if (this.up && this.incarnation === incarnation) fn();
    });
  }
}
