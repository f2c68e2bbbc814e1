/**
 * A process's calls to the stores: each takes a few simulated milliseconds, and during the safety
 * phase may fail. A failed write may have landed anyway (the reply was lost, as with a JetStream
 * publish whose ack timed out), which is the case a coordinator most easily gets wrong. A reply to a
 * process that crashed meanwhile is dropped: the process that asked is gone, whatever its
 * successor is called.
 */
import type { Agenda } from './agenda.js';
import type { FaultProfile } from './faults.js';
import type { Prng } from '../prng.js';

export type IoResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

export interface IoOwner {
  /** Bumped at every crash; a reply for an older incarnation is dropped. */
  readonly incarnation: number;
  readonly up: boolean;
}

export class Io {
  constructor(
    private readonly agenda: Agenda,
    private readonly prng: Prng,
    private readonly faults: () => FaultProfile,
  ) {}

  /**
   * Runs `apply` against the store after a delay and answers `reply`. A fault either fails the call
   * before it applies or applies it and loses the reply (a write the caller must treat as unknown).
   */
  call<T>(owner: IoOwner, label: string, apply: () => T, reply: (result: IoResult<T>) => void, delayMsMax = 5): void {
    const incarnation = owner.incarnation;
    const f = this.faults();
    const delay = 1 + this.prng.int(delayMsMax);
    const fault = this.prng.next() < f.storeErrorProbability ? (this.prng.next() < 0.5 ? 'before' : 'after') : 'none';
    this.agenda.after(delay, fault === 'none' ? '' : `store fault (${fault}) on ${label}`, () => {
      let result: IoResult<T>;
      if (fault === 'before') result = { ok: false, error: `store error on ${label}` };
      else {
        const value = apply();
        result = fault === 'after' ? { ok: false, error: `store timeout on ${label} (it may have landed)` } : { ok: true, value };
      }
      if (owner.up && owner.incarnation === incarnation) reply(result);
    });
  }
}
