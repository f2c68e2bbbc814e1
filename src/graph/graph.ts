/**
 * The app graph of a plan: which processes exist and which directed FIFO channels join them.
 *
 * Plans are written by people, so validation reports every problem at once (not just the first) with
 * a message that names the offending process or channel; a user fixing a plan should not have to
 * iterate one error at a time. Everything downstream (analysis, the core, the checker) may then
 * assume a valid graph.
 */
import { channelId, type ChannelId, type ProcessId } from '../ids.js';

/** A directed FIFO edge. Its id is always `channelId(from, to)`, so at most one channel per ordered pair. */
export interface Channel {
  readonly id: ChannelId;
  readonly from: ProcessId;
  readonly to: ProcessId;
}

/** A validated graph: processes and channels in declaration order, which every analysis uses to break ties. */
export interface AppGraph {
  readonly processes: readonly ProcessId[];
  readonly channels: readonly Channel[];
}

/** What a plan declares. Channel ids are derived, never supplied, so they cannot disagree with the ends. */
export interface GraphInput {
  readonly processes: readonly ProcessId[];
  readonly channels: readonly { readonly from: ProcessId; readonly to: ProcessId }[];
}

export type GraphError =
  | { readonly kind: 'empty-graph'; readonly message: string }
  | {
      readonly kind: 'duplicate-process';
      readonly process: ProcessId;
      readonly count: number;
      readonly message: string;
    }
  | {
      readonly kind: 'unknown-endpoint';
      readonly channel: ChannelId;
      readonly process: ProcessId;
      readonly end: 'from' | 'to';
      readonly message: string;
    }
  | { readonly kind: 'duplicate-edge'; readonly channel: ChannelId; readonly count: number; readonly message: string }
  | { readonly kind: 'self-loop'; readonly channel: ChannelId; readonly process: ProcessId; readonly message: string };

export type GraphErrorKind = GraphError['kind'];

export type GraphValidation =
  | { readonly ok: true; readonly graph: AppGraph }
  | { readonly ok: false; readonly errors: readonly GraphError[] };

/**
 * Checks a declared graph. Errors come out in a stable order: the empty-graph error, then duplicate
 * processes in declaration order, then, channel by channel in declaration order, its self-loop,
 * unknown endpoints and duplication. Each problem is reported once, however often it repeats.
 */
export function validateGraph(input: GraphInput): GraphValidation {
  const errors: GraphError[] = [];

  if (input.processes.length === 0) {
    errors.push({ kind: 'empty-graph', message: 'the graph declares no processes' });
  }

  const processCounts = countInOrder(input.processes);
  for (const [process, count] of processCounts) {
    if (count > 1) {
      errors.push({
        kind: 'duplicate-process',
        process,
        count,
        message: `process ${process} is declared ${count} times`,
      });
    }
  }

  const channels = input.channels.map((c): Channel => ({ id: channelId(c.from, c.to), from: c.from, to: c.to }));
  const channelCounts = countInOrder(channels.map((c) => c.id));
  const seen = new Set<ChannelId>();
  for (const channel of channels) {
    // Report each distinct channel once: a duplicated self-loop is one self-loop and one duplication.
    if (seen.has(channel.id)) continue;
    seen.add(channel.id);

    if (channel.from === channel.to) {
      errors.push({
        kind: 'self-loop',
        channel: channel.id,
        process: channel.from,
        message: `channel ${channel.id} connects process ${channel.from} to itself`,
      });
    }
    for (const end of ['from', 'to'] as const) {
      const process = channel[end];
      if (end === 'to' && channel.to === channel.from) continue; // already named for `from`
      if (!processCounts.has(process)) {
        errors.push({
          kind: 'unknown-endpoint',
          channel: channel.id,
          process,
          end,
          message: `channel ${channel.id} ${end === 'from' ? 'starts' : 'ends'} at undeclared process ${process}`,
        });
      }
    }
    const count = channelCounts.get(channel.id) ?? 0;
    if (count > 1) {
      errors.push({
        kind: 'duplicate-edge',
        channel: channel.id,
        count,
        message: `channel ${channel.id} is declared ${count} times`,
      });
    }
  }

  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, graph: { processes: [...input.processes], channels } };
}

/** Occurrence counts, iterated in order of first occurrence (Map keeps insertion order). */
function countInOrder<T>(items: readonly T[]): Map<T, number> {
  const counts = new Map<T, number>();
  for (const item of items) counts.set(item, (counts.get(item) ?? 0) + 1);
  return counts;
}
