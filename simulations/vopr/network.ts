/**
 * Core NATS between the coordinator and the agents, as the faults see it: at most once, each message
 * delayed independently (so they overtake one another), some lost, some delivered twice. A message
 * reaches a process only if it is up when the message arrives: one published before a restarted
 * agent has subscribed is lost, as on the real bus.
 */
import type { Agenda } from './agenda.js';
import type { FaultProfile } from './faults.js';
import type { Prng } from '../prng.js';

export interface NetworkStats {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
}

export class Network<M> {
  private readonly handlers = new Map<string, (message: M) => void>();
  readonly stats: NetworkStats = { sent: 0, delivered: 0, lost: 0, duplicated: 0 };

  constructor(
    private readonly agenda: Agenda,
    private readonly prng: Prng,
    private readonly faults: () => FaultProfile,
    private readonly describe: (message: M) => string,
  ) {}

  /** `to` starts receiving (a process came up); undefined stops it (it went down). */
  listen(to: string, handler: ((message: M) => void) | undefined): void {
    if (handler === undefined) this.handlers.delete(to);
    else this.handlers.set(to, handler);
  }

  send(from: string, to: string, message: M): void {
    this.stats.sent++;
    const f = this.faults();
    if (this.prng.next() < f.messageLossProbability) {
      this.stats.lost++;
      return;
    }
    this.schedule(from, to, message, f);
    if (this.prng.next() < f.messageDuplicateProbability) {
      this.stats.duplicated++;
      this.schedule(from, to, message, f);
    }
  }

  private schedule(from: string, to: string, message: M, f: FaultProfile): void {
    const delay = f.messageDelayMsMin + this.prng.int(f.messageDelayMsMax - f.messageDelayMsMin + 1);
    const what = this.describe(message);
    this.agenda.after(delay, what === '' ? '' : `${from}->${to} ${what}`, () => {
      const handler = this.handlers.get(to);
      if (handler === undefined) {
        this.stats.lost++;
        return;
      }
      this.stats.delivered++;
      handler(message);
    });
  }
}
