/**
 * `run --trace FILE`: every event of a run as JSON lines, in simulated-time order. The engine's trace
 * keeps a message or barrier as one record with its send and delivery times; here each becomes two
 * events, so a reader can replay the run line by line (`jq`, pandas, a notebook) without joining.
 *
 * The first line describes the run (`"kind":"run"`: scenario, algorithm, seed, processes, channels);
 * every other line has `t` (simulated ms) and `kind`, then what that kind is about:
 *   send, deliver                  channel, from, to, seq (`deliver` adds recordedIn when a checkpoint's
 *                                  channel state holds the message)
 *   barrier-send, barrier-deliver  channel, from, to, checkpoint
 *   trigger                        checkpoint (the checkpoint's start)
 *   snapshot                       process, checkpoint
 *   checkpoint-end                 checkpoint, completed, abortReason (when aborted)
 *   crash                          process
 *   recover                        checkpoint (null: from the start)
 *   replay                         channel, from, to, seq, checkpoint: a message of the restored
 *                                  checkpoint's channel state, delivered again by the restore (these
 *                                  follow their `recover` line, in the order the trace recorded them)
 * Events at the same time come triggers first, then in the order of the engine's records (made at
 * send time, so deliveries at one instant come in send order). Pure: the same result gives the same
 * bytes.
 */
import type { SimResult, TraceEvent } from './types.js';

type Line = { readonly t: number; readonly kind: string } & Record<string, unknown>;
type MessageEvent = Extract<TraceEvent, { kind: 'message' }>;

export function traceJsonLines(result: SimResult): string {
  const events: { line: Line; order: number }[] = [];
  const add = (line: Line): void => {
    events.push({ line, order: events.length });
  };
  // A checkpoint's trigger is in its report, not in the trace; it goes first among events at its time.
  for (const c of result.checkpoints) add({ t: c.triggeredAtMs, kind: 'trigger', checkpoint: c.id });
  const abortReasons = new Map(result.checkpoints.flatMap((c) => (c.abortReason === undefined ? [] : [[c.id, c.abortReason] as const])));
  // A restore delivers the restored checkpoint's channel state to the apps at once; the engine's trace
  // has the recovery and each message's `recordedIn`, so the replays are rebuilt from those.
  const recorded = new Map<number, MessageEvent[]>();
  for (const e of result.trace ?? []) {
    if (e.kind !== 'message') continue;
    for (const id of e.recordedIn) recorded.set(id, [...(recorded.get(id) ?? []), e]);
  }
  for (const e of result.trace ?? []) {
    addEvent(e, add, abortReasons);
    if (e.kind === 'recover' && e.checkpointId !== null) {
      for (const m of recorded.get(e.checkpointId) ?? []) {
        add({ t: e.atMs, kind: 'replay', channel: m.channel, from: m.from, to: m.to, seq: m.seq, checkpoint: e.checkpointId });
      }
    }
  }
  events.sort((a, b) => a.line.t - b.line.t || a.order - b.order);

  const header = {
    kind: 'run',
    scenario: result.scenario,
    algorithm: result.algorithm,
    seed: result.seed,
    processes: result.processes,
    channels: result.channels.map((c) => c.id),
    endedAtMs: result.endedAtMs,
  };
  return [header, ...events.map((e) => e.line)].map((l) => JSON.stringify(l)).join('\n') + '\n';
}

function addEvent(e: TraceEvent, add: (line: Line) => void, abortReasons: ReadonlyMap<number, string>): void {
  switch (e.kind) {
    case 'message': {
      const about = { channel: e.channel, from: e.from, to: e.to, seq: e.seq };
      add({ t: e.sentAtMs, kind: 'send', ...about });
      if (e.deliveredAtMs !== undefined) {
        add({ t: e.deliveredAtMs, kind: 'deliver', ...about, ...(e.recordedIn.length > 0 ? { recordedIn: e.recordedIn } : {}) });
      }
      return;
    }
    case 'barrier': {
      const about = { channel: e.channel, from: e.from, to: e.to, checkpoint: e.checkpointId };
      add({ t: e.sentAtMs, kind: 'barrier-send', ...about });
      if (e.deliveredAtMs !== undefined) add({ t: e.deliveredAtMs, kind: 'barrier-deliver', ...about });
      return;
    }
    case 'snapshot':
      add({ t: e.atMs, kind: 'snapshot', process: e.process, checkpoint: e.checkpointId });
      return;
    case 'checkpoint-end': {
      const reason = abortReasons.get(e.checkpointId);
      add({ t: e.atMs, kind: 'checkpoint-end', checkpoint: e.checkpointId, completed: e.completed, ...(reason === undefined || e.completed ? {} : { abortReason: reason }) });
      return;
    }
    case 'crash':
      add({ t: e.atMs, kind: 'crash', process: e.process });
      return;
    case 'recover':
      add({ t: e.atMs, kind: 'recover', checkpoint: e.checkpointId });
      return;
    default: {
      // A kind this file does not know yet (a new algorithm's event) is written as the engine keeps it.
      const { atMs, ...rest } = e as { readonly kind: string; readonly atMs?: number };
      add({ t: atMs ?? 0, ...rest });
    }
  }
}
