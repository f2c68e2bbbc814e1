/**
 * The embedded apps the benchmarks attach to agents. They do as little as an app can, so what is
 * measured is the coordinator, the agent and the transport, not the app.
 */
import type { AppHandler, AppLink } from '../../agent/app.js';
import type { ChannelId, CheckpointId } from '../../src/ids.js';

export type AppSpec =
  /**
   * Holds `stateBytes` of state; `holdSnapshots`: a snapshot waits until released (a checkpoint stays
   * in flight); `snapshotMs`: a snapshot takes that long (a timer), as an app's answer over the local API.
   */
  | { readonly kind: 'trivial'; readonly stateBytes: number; readonly holdSnapshots?: boolean; readonly snapshotMs?: number }
  /** Sends messages on its one output when told (the channel benchmark). */
  | { readonly kind: 'producer' }
  /** Counts what it receives on its inputs (the channel benchmark). */
  | { readonly kind: 'consumer' };

/** When each app snapshotted each checkpoint (performance.now() of this process). */
export const snapshotTimes = new Map<CheckpointId, Map<string, number>>();

let releaseHeld: (() => void)[] = [];

/** Lets every held snapshot go; later snapshots are held again only if the app was made so. */
export function releaseSnapshots(): number {
  const held = releaseHeld;
  releaseHeld = [];
  for (const r of held) r();
  return held.length;
}

export function heldSnapshots(): number {
  return releaseHeld.length;
}

export class TrivialApp implements AppHandler {
  private readonly state: Uint8Array;

  constructor(
    private readonly key: string,
    stateBytes: number,
    private readonly holdSnapshots = false,
    private readonly snapshotMs = 0,
  ) {
    this.state = new Uint8Array(stateBytes);
    // Not all zeros, so nothing on the way can take a shortcut.
    for (let i = 0; i < stateBytes; i += 4096) this.state[i] = (i / 4096) & 0xff;
  }

  deliver(): void {}

  snapshot(checkpointId: CheckpointId): Uint8Array | Promise<Uint8Array> {
    let times = snapshotTimes.get(checkpointId);
    if (!times) {
      times = new Map();
      snapshotTimes.set(checkpointId, times);
    }
    times.set(this.key, performance.now());
    if (this.holdSnapshots) return new Promise((resolve) => releaseHeld.push(() => resolve(this.state)));
    if (this.snapshotMs > 0) return new Promise((resolve) => setTimeout(() => resolve(this.state), this.snapshotMs));
    return this.state;
  }

  restore(): void {}
}

export class ProducerApp implements AppHandler {
  private link: AppLink | undefined;
  private sent = 0;

  bind(link: AppLink): void {
    this.link = link;
  }

  deliver(): void {}

  snapshot(): Uint8Array {
    return u64(this.sent);
  }

  restore(): void {}

  /**
   * Sends `count` messages of `payloadBytes` on the app's output, keeping at most `window` sends
   * outstanding (a send resolves once the message is on the wire, which waits for credit).
   */
  async run(count: number, payloadBytes: number, window: number): Promise<void> {
    const link = this.link;
    if (!link) throw new Error('producer not bound');
    const channel = link.outputs[0] as ChannelId;
    const payload = new Uint8Array(payloadBytes).fill(0x61);
    let outstanding = 0;
    let wake: (() => void) | undefined;
    let failure: unknown;
    const settled = (): void => {
      outstanding -= 1;
      const w = wake;
      wake = undefined;
      w?.();
    };
    for (let i = 0; i < count; i++) {
      while (outstanding >= window) await new Promise<void>((resolve) => (wake = resolve));
      if (failure !== undefined) throw failure;
      outstanding += 1;
      this.sent += 1;
      link.send(channel, payload).then(settled, (error: unknown) => {
        failure = error;
        settled();
      });
    }
    while (outstanding > 0) await new Promise<void>((resolve) => (wake = resolve));
    if (failure !== undefined) throw failure;
  }
}

export class ConsumerApp implements AppHandler {
  private received = 0;
  private target = Number.POSITIVE_INFINITY;
  private done: (() => void) | undefined;

  deliver(): void {
    this.received += 1;
    if (this.received >= this.target) {
      this.done?.();
      this.done = undefined;
    }
  }

  /** Resolves once `total` messages arrived since the app was attached. */
  until(total: number): Promise<void> {
    this.target = total;
    return new Promise((resolve) => {
      if (this.received >= this.target) resolve();
      else this.done = resolve;
    });
  }

  snapshot(): Uint8Array {
    return u64(this.received);
  }

  restore(): void {}
}

function u64(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
}
