/**
 * How an application takes part in checkpoints, whatever links it to the agent: embedded in the
 * agent's process, or through the local API (a gRPC stream over a unix socket) with the SDK.
 */
import type { ChannelId, CheckpointId } from '../src/ids.js';

/** What the app implements. The agent calls it one call at a time, in order, per app. */
export interface AppHandler {
  /** A message from an input channel, in channel order; the next one waits for this to return. */
  deliver(channel: ChannelId, payload: Uint8Array): void | Promise<void>;
  /** Capture the app's state at this point of the cut; no message is delivered until it returns. */
  snapshot(checkpointId: CheckpointId): Uint8Array | Promise<Uint8Array>;
  /** Replace the app's state with a checkpoint's (rollback or restore). */
  restore(state: Uint8Array, checkpointId: CheckpointId): void | Promise<void>;
  /** Sends are held from `paused` until `resumed` (sync checkpoints, restores in progress). */
  paused?(): void;
  resumed?(): void;
}

/** What the agent gives an attached app. */
export interface AppLink {
  readonly app: string;
  readonly inputs: readonly ChannelId[];
  readonly outputs: readonly ChannelId[];
  /**
   * Sends on one of the app's output channels. Resolves once the message is on the wire; it waits
   * while the receiver grants no credit, so awaiting it is how an app feels backpressure. Rejects with
   * an AppSendError when the channel is unknown, failed, or the outbound queue is full.
   */
  send(channel: ChannelId, payload: Uint8Array): Promise<void>;
  /** Detach: the app stops taking part (its pending checkpoints are declined). */
  close(): Promise<void>;
}

export type AppSendErrorKind = 'unknown-channel' | 'queue-full' | 'channel-failed' | 'closed' | 'payload-too-large';

export class AppSendError extends Error {
  constructor(
    readonly kind: AppSendErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'AppSendError';
  }
}

export type AttachError =
  | { readonly kind: 'unknown-app'; readonly message: string }
  | { readonly kind: 'already-attached'; readonly message: string };

/** The agent side that an app link (embedded or the local API server) attaches apps to. */
export interface AppHost {
  attach(app: string, handler: AppHandler): { ok: true; link: AppLink } | { ok: false; error: AttachError };
}
