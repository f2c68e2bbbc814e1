/**
 * Drives a round machine (src/control/round.ts) in tests: inputs in with a hand-moved clock, the
 * effects of every step kept, and small builders for agent events.
 */
import { backEdges, validateGraph, type AppGraph } from '../../src/graph/index.js';
import type { PlanGraph } from '../../src/control/round-graph.js';
import { NO_NEGATIVE_CONTROLS, type NegativeControls } from '../../src/control/negative-controls.js';
import { Round, type RoundEffect, type RoundInput, type RoundLevel, type RoundResult } from '../../src/control/round.js';
import type { AgentEvent, ObjectRef } from '../../src/wire/index.js';

export const CHECKPOINT_ID = 7;

export interface Driver {
  readonly round: Round;
  nowMs: number;
  /** Every effect so far, in order. */
  readonly effects: RoundEffect[];
  /** Feeds one input at the current time; returns that step's result. */
  feed(input: InputAt): RoundResult;
  /** The effects of this type since the start. */
  of<T extends RoundEffect['type']>(type: T): Extract<RoundEffect, { type: T }>[];
  /** The states set so far. */
  states(): string[];
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** An input without its time (the driver adds it). */
export type InputAt = DistributiveOmit<RoundInput, 'nowMs'>;

/** `holdMs`: a staged round (BeginCheckpoint), held for the caller's finish at most this long. */
export function drive(level: RoundLevel, negativeControls: NegativeControls = NO_NEGATIVE_CONTROLS, timeoutMs = 1_000, holdMs?: number): Driver {
  const created = Round.create(
    { checkpointId: CHECKPOINT_ID, timeoutMs, commitTimeoutMs: 2_000, refreshMs: 100, settleMs: 5_000, negativeControls, ...(holdMs !== undefined ? { staged: { holdMs } } : {}) },
    level,
  );
  if (!created.ok) throw new Error(created.error.message);
  const effects: RoundEffect[] = [];
  const d: Driver = {
    round: created.round,
    nowMs: 1_000,
    effects,
    feed(input) {
      const r = created.round.step(Object.assign({ nowMs: d.nowMs }, input) as RoundInput);
      effects.push(...r.effects);
      return r;
    },
    of(type) {
      return effects.filter((e): e is Extract<RoundEffect, { type: typeof type }> => e.type === type);
    },
    states() {
      return effects.flatMap((e) => (e.type === 'set-state' ? [e.state] : []));
    },
  };
  return d;
}

export function graphOf(processes: string[], channels: [string, string][]): AppGraph {
  const v = validateGraph({ processes, channels: channels.map(([from, to]) => ({ from, to })) });
  if (!v.ok) throw new Error(v.errors.map((e) => e.message).join('; '));
  return v.graph;
}

export function planGraphOf(processes: string[], channels: [string, string][]): PlanGraph {
  const graph = graphOf(processes, channels);
  return { graph, participants: processes, servers: [...new Set(processes.map((p) => p.split('/')[0] as string))], backEdges: backEdges(graph), unsupportedChannels: [] };
}

const header = (server: string) => ({ requestId: `r-${server}`, tenant: 't', server, epoch: 0 });

export function ref(name: string): ObjectRef {
  return { name, digest: `SHA-256=${name}`, sizeBytes: 3 };
}

export function ack(process: string, counts: { sent?: Record<string, number>; received?: Record<string, number> } = {}): Extract<AgentEvent, { type: 'ack' }> {
  const [server, app] = process.split('/') as [string, string];
  return {
    ...header(server),
    type: 'ack',
    checkpointId: CHECKPOINT_ID,
    app,
    counts: { sent: counts.sent ?? {}, received: counts.received ?? {} },
    state: { kind: 'object', ref: ref(`cp/${CHECKPOINT_ID}/${server}/${app}/state`) },
    stats: { startDelayMs: 0, alignmentMs: 0, syncMs: 0, asyncMs: 0, bufferedMessages: 0, channelStateMessages: 0, finishedUnaligned: false },
  };
}

export function decline(server: string, app: string | undefined, reason: Extract<AgentEvent, { type: 'decline' }>['reason'], detail: string): Extract<AgentEvent, { type: 'decline' }> {
  return { ...header(server), type: 'decline', checkpointId: CHECKPOINT_ID, ...(app !== undefined ? { app } : {}), reason, detail };
}

export function progress(process: string, phase: Extract<AgentEvent, { type: 'progress' }>['phase']): Extract<AgentEvent, { type: 'progress' }> {
  const [server, app] = process.split('/') as [string, string];
  return { ...header(server), type: 'progress', checkpointId: CHECKPOINT_ID, app, phase, bytesDone: 0 };
}

export function frozen(server: string): Extract<AgentEvent, { type: 'frozen' }> {
  return { ...header(server), type: 'frozen', checkpointId: CHECKPOINT_ID, frozenAtUnixMs: 0, hooksMs: 1, hooks: [] };
}

export function thawed(server: string, byWatchdog: boolean): Extract<AgentEvent, { type: 'thawed' }> {
  return { ...header(server), type: 'thawed', checkpointId: CHECKPOINT_ID, thawedAtUnixMs: 0, byWatchdog, hooks: [], frozenAtUnixMs: 0 };
}

export function quiesced(process: string, outputPositions: Record<string, number>): Extract<AgentEvent, { type: 'quiesced' }> {
  const [server, app] = process.split('/') as [string, string];
  return { ...header(server), type: 'quiesced', checkpointId: CHECKPOINT_ID, app, outputPositions, hooks: [] };
}

export function captured(process: string): Extract<AgentEvent, { type: 'captured' }> {
  const [server, app] = process.split('/') as [string, string];
  return { ...header(server), type: 'captured', checkpointId: CHECKPOINT_ID, app, state: ref(`cp/${CHECKPOINT_ID}/${server}/${app}/state`), hooks: [] };
}
