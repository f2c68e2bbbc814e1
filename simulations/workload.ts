/**
 * The simulated applications. An app's state is a plain value so a snapshot is a copy and a restore
 * copies it back. Payloads are numbers: a token amount, or a counter value.
 */
import type { ChannelId } from '../src/ids.js';

export interface TokensApp {
  readonly kind: 'tokens';
  tokens: number;
}

export interface CountingApp {
  readonly kind: 'counting';
  /** Sources: values emitted. Others: messages received. */
  count: number;
  /** Forwards the app could not send yet (paused by a sync checkpoint); part of its state. */
  outbox: { channel: ChannelId; value: number }[];
}

export type AppState = TokensApp | CountingApp;

/**
 * An app's live state. It is kept in fields of the simulated process itself rather than in an
 * AppState object of its own, so a tick or a delivery reads one object instead of two; only the
 * fields of the run's workload mean anything.
 */
export interface LiveApp {
  tokens: number;
  count: number;
  outbox: { channel: ChannelId; value: number }[];
}

/** A copy of the live state as a value: a snapshot. */
export function captureApp(kind: AppState['kind'], live: LiveApp): AppState {
  return kind === 'tokens'
    ? { kind: 'tokens', tokens: live.tokens }
    : { kind: 'counting', count: live.count, outbox: live.outbox.map((o) => ({ channel: o.channel, value: o.value })) };
}

/** Sets the live state to a copy of `state`: a restore. */
export function restoreApp(live: LiveApp, state: AppState): void {
  if (state.kind === 'tokens') {
    live.tokens = state.tokens;
  } else {
    live.count = state.count;
    live.outbox = state.outbox.map((o) => ({ channel: o.channel, value: o.value }));
  }
}

/** Largest single transfer, so tokens keep moving instead of draining in one hop. */
export const TRANSFER_TOKENS_MAX = 10;
