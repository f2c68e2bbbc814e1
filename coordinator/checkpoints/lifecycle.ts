/**
 * The lifecycle of one checkpoint as an xstate v5 machine:
 *
 *   pending -> triggering -> collecting -> committing -> completed
 *                  \______________\____________\______-> aborting -> aborted
 *
 * The machine decides only which phase comes next; the side effects (send triggers, commit, send
 * aborts, clean up) are named actions the coordinator supplies with `provide()`, so the machine can
 * be tested with xstate's pure `transition()` and a simulated clock. The checkpoint timeout covers
 * triggering and collecting; committing has a timeout of its own.
 */
import { assign, setup } from 'xstate';
import type { FailureReason } from '../model.js';

export interface LifecycleContext {
  readonly checkpointId: number;
  readonly timeoutMs: number;
  readonly commitTimeoutMs: number;
  readonly failure: { readonly reason: FailureReason; readonly detail: string } | null;
}

export type LifecycleEvent =
  | { type: 'START' }
  | { type: 'TRIGGERS_SENT' }
  | { type: 'ALL_ACKED' }
  | { type: 'FAIL'; reason: FailureReason; detail: string }
  | { type: 'COMMITTED' }
  | { type: 'CLEANED' };

export const checkpointLifecycle = setup({
  types: {
    context: {} as LifecycleContext,
    events: {} as LifecycleEvent,
    input: {} as { checkpointId: number; timeoutMs: number; commitTimeoutMs: number },
  },
  actions: {
    sendTriggers: () => {},
    commit: () => {},
    sendCompletes: () => {},
    sendAborts: (_, _params: { detail: string }) => {},
    cleanUp: () => {},
    recordState: (_, _params: { state: string; failure: LifecycleContext['failure'] }) => {},
    recordFailure: assign({
      failure: ({ event }) => (event.type === 'FAIL' ? { reason: event.reason, detail: event.detail } : null),
    }),
    recordTimeout: assign({
      failure: ({ context }) => ({ reason: 'timeout' as const, detail: `not every app acked within ${context.timeoutMs} ms` }),
    }),
    recordCommitTimeout: assign({
      failure: ({ context }) => ({ reason: 'store-failed' as const, detail: `the commit did not finish within ${context.commitTimeoutMs} ms` }),
    }),
  },
  delays: {
    checkpointTimeout: ({ context }) => context.timeoutMs,
    commitTimeout: ({ context }) => context.commitTimeoutMs,
  },
}).createMachine({
  id: 'checkpoint',
  initial: 'pending',
  context: ({ input }) => ({ ...input, failure: null }),
  states: {
    pending: {
      entry: { type: 'recordState', params: ({ context }) => ({ state: 'pending', failure: context.failure }) },
      on: {
        START: 'running',
        FAIL: { target: 'aborting', actions: 'recordFailure' },
      },
    },
    running: {
      initial: 'triggering',
      after: { checkpointTimeout: { target: 'aborting', actions: 'recordTimeout' } },
      on: { FAIL: { target: 'aborting', actions: 'recordFailure' } },
      states: {
        triggering: {
          entry: [{ type: 'recordState', params: ({ context }) => ({ state: 'triggering', failure: context.failure }) }, 'sendTriggers'],
          on: { TRIGGERS_SENT: 'collecting', ALL_ACKED: '#checkpoint.committing' },
        },
        collecting: {
          entry: { type: 'recordState', params: ({ context }) => ({ state: 'collecting', failure: context.failure }) },
          on: { ALL_ACKED: '#checkpoint.committing' },
        },
      },
    },
    committing: {
      entry: [{ type: 'recordState', params: ({ context }) => ({ state: 'committing', failure: context.failure }) }, 'commit'],
      after: { commitTimeout: { target: 'aborting', actions: 'recordCommitTimeout' } },
      on: {
        COMMITTED: 'completed',
        FAIL: { target: 'aborting', actions: 'recordFailure' },
      },
    },
    completed: {
      type: 'final',
      entry: [{ type: 'recordState', params: ({ context }) => ({ state: 'completed', failure: context.failure }) }, 'sendCompletes'],
    },
    aborting: {
      entry: [{ type: 'recordState', params: ({ context }) => ({ state: 'aborting', failure: context.failure }) }, { type: 'sendAborts', params: ({ context }) => ({ detail: context.failure?.detail ?? 'aborted' }) }, 'cleanUp'],
      on: { CLEANED: 'aborted' },
    },
    aborted: {
      type: 'final',
      entry: { type: 'recordState', params: ({ context }) => ({ state: 'aborted', failure: context.failure }) },
    },
  },
});
