/**
 * The simulated applications. An app's state is a plain value so a snapshot is a copy and a restore
 * is an assignment. Payloads are numbers: a token amount, or a counter value.
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

export function copyApp(state: AppState): AppState {
  return state.kind === 'tokens'
    ? { kind: 'tokens', tokens: state.tokens }
    : { kind: 'counting', count: state.count, outbox: state.outbox.map((o) => ({ ...o })) };
}

/** Largest single transfer, so tokens keep moving instead of draining in one hop. */
export const TRANSFER_TOKENS_MAX = 10;
