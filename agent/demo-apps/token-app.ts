/**
 * The demo's application: each instance holds tokens and transfers random amounts to the apps
 * downstream of it. The total over all apps plus the tokens in flight never changes, so a checkpoint
 * is consistent exactly when its states plus its recorded channel states add up to the total.
 *
 * It is an embedded app (an AppHandler living in the agent's process); the same logic works through
 * the local API with the SDK.
 */
import type { AppHandler, AppLink } from '../app.js';
import type { ChannelId } from '../../src/ids.js';

export function encodeTokens(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, n);
  return b;
}

export function decodeTokens(b: Uint8Array): number {
  if (b.byteLength !== 8) throw new Error(`a token amount is 8 bytes, got ${b.byteLength}`);
  return new DataView(b.buffer, b.byteOffset, 8).getFloat64(0);
}

export interface TokenAppOptions {
  readonly initialTokens: number;
  readonly transferTokensMax: number;
  /** Deterministic choices when given (tests); Math.random otherwise. */
  readonly random?: () => number;
  /** How long handling one message takes (a slow consumer on purpose); default 0. */
  readonly deliverDelayMs?: number;
}

export class TokenApp implements AppHandler {
  tokens: number;
  private link: AppLink | undefined;
  private sendsHeld = false;
  private inFlightSends = 0;
  sent = 0;
  received = 0;

  constructor(private readonly options: TokenAppOptions) {
    this.tokens = options.initialTokens;
  }

  bind(link: AppLink): void {
    this.link = link;
  }

  deliver(_channel: ChannelId, payload: Uint8Array): void | Promise<void> {
    const amount = decodeTokens(payload);
    const take = (): void => {
      this.tokens += amount;
      this.received += 1;
    };
    const delayMs = this.options.deliverDelayMs ?? 0;
    if (delayMs <= 0) return take();
    return new Promise<void>((resolve) => setTimeout(resolve, delayMs)).then(take);
  }

  snapshot(): Uint8Array {
    return encodeTokens(this.tokens);
  }

  restore(state: Uint8Array): void {
    this.tokens = decodeTokens(state);
  }

  paused(): void {
    this.sendsHeld = true;
  }

  resumed(): void {
    this.sendsHeld = false;
  }

  /**
   * One transfer to a random downstream app, if the app has tokens and is not paused. The amount
   * leaves the app's state when the send is handed to the agent: from then on it is in flight.
   */
  transfer(): Promise<void> | undefined {
    const link = this.link;
    if (!link || this.sendsHeld || link.outputs.length === 0 || this.tokens < 1 || this.inFlightSends >= 64) return undefined;
    const random = this.options.random ?? Math.random;
    const channel = link.outputs[Math.floor(random() * link.outputs.length)] as ChannelId;
    const amount = 1 + Math.floor(random() * Math.min(this.tokens, this.options.transferTokensMax));
    this.tokens -= amount;
    this.sent += 1;
    this.inFlightSends += 1;
    return link.send(channel, encodeTokens(amount)).then(
      () => {
        this.inFlightSends -= 1;
      },
      (error: unknown) => {
        this.inFlightSends -= 1;
        throw error;
      },
    );
  }
}
