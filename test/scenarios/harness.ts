/**
 * The scenario runner: a small command language that drives real `Participant`s over hand-operated
 * FIFO channels, printing every effect, so a protocol case reads as a script with its expected trace
 * beside it (in the manner of etcd raft's interaction tests).
 *
 * File format: blocks separated by blank lines; `#` starts a comment line. A block is one or more
 * commands, then a line `----`, then the expected output. Commands:
 *
 *   graph a->b b->c ...        the app graph (processes come from the edges; `graph a` for one alone)
 *   policy KIND [timeout=MS]   unaligned | aligned | aligned-timeout | sync | none; creates participants,
 *                              back edges from graph analysis; prints them
 *   order unchecked            accept out-of-order messages (before `policy`)
 *   send a->b PAYLOAD          the app of a sends on a->b
 *   trigger P ID               P initiates checkpoint ID
 *   deliver a->b [N|all]       hand the next N (default 1) items in flight on a->b to the receiver
 *   drop a->b                  lose the next item in flight on a->b
 *   dup a->b                   deliver the next item on a->b without removing it (a duplicate)
 *   swap a->b                  exchange the next two items in flight on a->b (reordering)
 *   barrier a->b ID [epoch=E] [after=SEQ]  inject a raw barrier arriving at b
 *   message a->b SEQ PAYLOAD [epoch=E]  inject a raw message arriving at b
 *   store P ID | abort P ID | complete P ID | timer P ID
 *   restore ID EPOCH           every participant restores checkpoint ID's acks (counts, channel states)
 *   check ID                   run the cut checker on the acks gathered for ID
 *   inflight a->b              print what is in flight on a->b
 */
import { checkCut } from '../../src/checker/index.js';
import { Participant } from '../../src/core/participant.js';
import type { CheckpointAck, Effect, Input, InputHandle, OutputHandle, PolicyConfig, RecordedMessage, Rejection, SnapshotCounts } from '../../src/core/types.js';
import { backEdges, validateGraph, type AppGraph } from '../../src/graph/index.js';
import { parseChannelId, type ChannelId, type CheckpointId, type ProcessId } from '../../src/ids.js';

type Payload = string;
type Ack = CheckpointAck<Payload>;
type WireItem =
  | { kind: 'message'; seq: number; epoch: number; payload: Payload }
  | { kind: 'barrier'; id: CheckpointId; epoch: number };

export interface Block {
  readonly line: number;
  readonly commands: readonly string[];
  readonly expected: string;
}

export function parseScenarioFile(text: string): Block[] {
  const blocks: Block[] = [];
  const lines = text.split('\n');
  let i = 0;
  while (i < lines.length) {
    const raw = lines[i] as string;
    if (raw.trim() === '' || raw.startsWith('#')) {
      i++;
      continue;
    }
    const start = i + 1;
    const commands: string[] = [];
    while (i < lines.length && (lines[i] as string).trim() !== '----') {
      const l = (lines[i] as string).trim();
      if (l === '') throw new Error(`line ${i + 1}: command block without a ---- line`);
      if (!l.startsWith('#')) commands.push(l);
      i++;
    }
    if (i >= lines.length) throw new Error(`line ${start}: command block without a ---- line`);
    i++;
    const out: string[] = [];
    while (i < lines.length && (lines[i] as string).trim() !== '') out.push(lines[i++] as string);
    blocks.push({ line: start, commands, expected: out.join('\n') });
  }
  return blocks;
}

/** Re-renders a file with actual outputs (for `UPDATE_SCENARIOS=1`), keeping comments. */
export function rewriteScenarioFile(text: string, actual: readonly string[]): string {
  const lines = text.split('\n');
  const result: string[] = [];
  let i = 0;
  let b = 0;
  while (i < lines.length) {
    const raw = lines[i] as string;
    if (raw.trim() === '' || raw.startsWith('#')) {
      result.push(raw);
      i++;
      continue;
    }
    while (i < lines.length && (lines[i] as string).trim() !== '----') result.push(lines[i++] as string);
    result.push('----');
    i++;
    while (i < lines.length && (lines[i] as string).trim() !== '') i++;
    const out = actual[b++] ?? '';
    if (out !== '') result.push(out);
  }
  return result.join('\n');
}

export class ScenarioWorld {
  private graph: AppGraph | null = null;
  private order: 'fifo-checked' | 'unchecked' = 'fifo-checked';
  private readonly participants = new Map<ProcessId, Participant<Payload>>();
  private readonly wires = new Map<ChannelId, WireItem[]>();
  private readonly acks = new Map<CheckpointId, Map<ProcessId, Ack>>();
  private out: string[] = [];

  run(commands: readonly string[]): string {
    this.out = [];
    for (const c of commands) this.command(c);
    return this.out.join('\n');
  }

  private command(line: string): void {
    const [verb, ...args] = line.split(/\s+/);
    switch (verb) {
      case 'graph':
        return this.setGraph(args);
      case 'order':
        this.order = args[0] === 'unchecked' ? 'unchecked' : 'fifo-checked';
        return;
      case 'policy':
        return this.setPolicy(args);
      case 'send': {
        const from = this.ends(args[0]).from;
        return this.step(from, { type: 'send', channel: this.output(from, args[0] as string), payload: args[1] ?? '' });
      }
      case 'trigger':
        return this.step(args[0] as string, { type: 'trigger', checkpointId: int(args[1]) });
      case 'deliver':
        return this.deliver(args[0] as string, args[1] === 'all' ? Infinity : args[1] ? int(args[1]) : 1);
      case 'drop': {
        const item = this.wire(args[0] as string).shift();
        this.out.push(`dropped ${describeItem(item)} on ${args[0]}`);
        return;
      }
      case 'dup': {
        const item = this.wire(args[0] as string)[0];
        if (!item) throw new Error(`nothing in flight on ${args[0]}`);
        return this.arrive(args[0] as string, item);
      }
      case 'swap': {
        const w = this.wire(args[0] as string);
        if (w.length < 2) throw new Error(`fewer than two items in flight on ${args[0]}`);
        [w[0], w[1]] = [w[1] as WireItem, w[0] as WireItem];
        this.out.push(`swapped ${describeItem(w[1])} and ${describeItem(w[0])} on ${args[0]}`);
        return;
      }
      case 'barrier': {
        const after = option(args, 'after');
        const to = this.ends(args[0]).to;
        return this.step(to, {
          type: 'barrier',
          channel: this.input(to, args[0] as string),
          checkpointId: int(args[1]),
          epoch: option(args, 'epoch') ?? 0,
          ...(after !== undefined ? { afterSeq: after } : {}),
        });
      }
      case 'message':
        return this.arrive(args[0] as string, {
          kind: 'message',
          seq: int(args[1]),
          payload: args[2] ?? '',
          epoch: option(args, 'epoch') ?? 0,
        });
      case 'store':
        return this.step(args[0] as string, { type: 'snapshot-stored', checkpointId: int(args[1]) });
      case 'abort':
        return this.step(args[0] as string, { type: 'abort', checkpointId: int(args[1]) });
      case 'complete':
        return this.step(args[0] as string, { type: 'complete', checkpointId: int(args[1]) });
      case 'timer':
        return this.step(args[0] as string, { type: 'timer', timer: { kind: 'alignment', checkpointId: int(args[1]) } });
      case 'restore':
        return this.restore(int(args[0]), int(args[1]));
      case 'check':
        return this.check(int(args[0]));
      case 'inflight': {
        const w = this.wire(args[0] as string);
        this.out.push(`${args[0]}: ${w.length === 0 ? 'empty' : w.map(describeItem).join(', ')}`);
        return;
      }
      default:
        throw new Error(`unknown command: ${line}`);
    }
  }

  private setGraph(args: string[]): void {
    const processes: ProcessId[] = [];
    const channels: { id: ChannelId; from: ProcessId; to: ProcessId }[] = [];
    for (const a of args) {
      const ends = parseChannelId(a);
      const names = ends ? [ends.from, ends.to] : [a];
      for (const n of names) if (!processes.includes(n)) processes.push(n);
      if (ends) channels.push({ id: a, ...ends });
    }
    const v = validateGraph({ processes, channels });
    if (!v.ok) throw new Error(v.errors.map((e) => e.message).join('; '));
    this.graph = v.graph;
    for (const c of channels) this.wires.set(c.id, []);
  }

  private setPolicy(args: string[]): void {
    const g = this.graph;
    if (!g) throw new Error('policy before graph');
    const kind = args[0];
    const timeout = option(args, 'timeout') ?? 0;
    const policy = (kind === 'aligned-timeout' ? { kind, alignmentTimeoutMs: timeout } : { kind }) as PolicyConfig;
    const back = backEdges(g);
    for (const p of g.processes) {
      const inputs = g.channels.filter((c) => c.to === p).map((c) => c.id);
      const created = Participant.create<Payload>({
        id: p,
        inputs,
        outputs: g.channels.filter((c) => c.from === p).map((c) => c.id),
        backEdgeInputs: inputs.filter((c) => back.has(c)),
        policy,
        channelOrder: this.order,
      });
      if (!created.ok) throw new Error(created.error.message);
      this.participants.set(p, created.participant);
    }
    this.out.push(`back edges: ${back.size === 0 ? '-' : [...back].sort().join(' ')}`);
  }

  private deliver(channel: ChannelId, n: number): void {
    const w = this.wire(channel);
    for (let i = 0; i < n && w.length > 0; i++) this.arrive(channel, w.shift() as WireItem);
  }

  private arrive(id: ChannelId, item: WireItem): void {
    const to = this.ends(id).to;
    const channel = this.input(to, id);
    this.step(
      to,
      item.kind === 'message'
        ? { type: 'message', channel, seq: item.seq, epoch: item.epoch, payload: item.payload }
        : { type: 'barrier', channel, checkpointId: item.id, epoch: item.epoch },
    );
  }

  /** The handle of an input of `p`; -1 for a channel that is not one, which the core must refuse. */
  private input(p: ProcessId, channel: ChannelId): InputHandle {
    return this.core(p).inputHandle(channel) ?? -1;
  }

  private output(p: ProcessId, channel: ChannelId): OutputHandle {
    return this.core(p).outputHandle(channel) ?? -1;
  }

  private core(p: ProcessId): Participant<Payload> {
    const core = this.participants.get(p);
    if (!core) throw new Error(`unknown process ${p}`);
    return core;
  }

  private restore(id: CheckpointId, epoch: number): void {
    const acks = this.acks.get(id);
    if (!acks) throw new Error(`no acks for ${id}`);
    for (const w of this.wires.values()) w.length = 0;
    for (const [p, core] of this.participants) {
      const ack = acks.get(p);
      if (!ack) throw new Error(`${p} never acked ${id}`);
      this.step(p, { type: 'restore', epoch, counts: ack.counts, channelStates: ack.channelStates });
    }
  }

  private check(id: CheckpointId): void {
    const acks = this.acks.get(id);
    const g = this.graph as AppGraph;
    const snapshots: Record<ProcessId, SnapshotCounts> = {};
    const channelStates: Record<ChannelId, readonly RecordedMessage<Payload>[]> = {};
    for (const [p, ack] of acks ?? []) {
      snapshots[p] = ack.counts;
      Object.assign(channelStates, ack.channelStates);
    }
    const report = checkCut({ channels: g.channels, snapshots, channelStates });
    if (report.consistent) this.out.push(`checkpoint ${id}: consistent`);
    else for (const v of report.violations) this.out.push(`checkpoint ${id}: ${v.kind}: ${v.message}`);
  }

  private step(p: ProcessId, input: Input<Payload>): void {
    const core = this.core(p);
    this.feed(p, core, input);
    // The harness pumps released items as a shell must; a pump is printed as its own line.
    while (core.backlogSize > 0) {
      this.out.push(`${p}: (drain)`);
      this.feed(p, core, { type: 'drain' });
    }
  }

  /** Steps the core and prints what it wrote, then releases it: the wires keep copies of what they carry. */
  private feed(p: ProcessId, core: Participant<Payload>, input: Input<Payload>): void {
    const mark = core.effects.length;
    const rejected: Rejection | undefined = core.step(input);
    for (let i = mark; i < core.effects.length; i++) {
      const e = core.effects.at(i);
      this.out.push(`${p}: ${describeEffect(core, e)}`);
      if (e.type === 'transmit') this.wire(core.outputId(e.channel)).push({ kind: 'message', seq: e.seq, epoch: e.epoch, payload: e.payload });
      if (e.type === 'send-barrier') this.wire(core.outputId(e.channel)).push({ kind: 'barrier', id: e.checkpointId, epoch: e.epoch });
      if (e.type === 'ack') {
        const m = this.acks.get(e.ack.checkpointId) ?? new Map<ProcessId, Ack>();
        m.set(p, e.ack);
        this.acks.set(e.ack.checkpointId, m);
      }
    }
    core.effects.release(mark);
    if (rejected) this.out.push(`${p}: rejected ${rejected.reason} (${rejected.detail})`);
  }

  private wire(channel: string): WireItem[] {
    const w = this.wires.get(channel);
    if (!w) throw new Error(`unknown channel ${channel}`);
    return w;
  }

  private ends(channel: string | undefined): { from: ProcessId; to: ProcessId } {
    const e = parseChannelId(channel ?? '');
    if (!e) throw new Error(`not a channel: ${channel}`);
    return e;
  }
}

function describeItem(item: WireItem | undefined): string {
  if (!item) return 'nothing';
  return item.kind === 'message' ? `#${item.seq}(${item.payload})` : `barrier ${item.id}`;
}

function counts(c: SnapshotCounts): string {
  const fmt = (r: Readonly<Record<string, number>>): string => {
    const e = Object.entries(r);
    return e.length === 0 ? '-' : e.map(([k, v]) => `${k}=${v}`).join(',');
  };
  return `sent ${fmt(c.sent)} received ${fmt(c.received)}`;
}

function describeEffect(core: Participant<Payload>, e: Effect<Payload>): string {
  switch (e.type) {
    case 'transmit':
      return `transmit ${core.outputId(e.channel)} #${e.seq}(${e.payload})${e.epoch ? ` epoch=${e.epoch}` : ''}`;
    case 'deliver':
      return `deliver ${core.inputId(e.channel)} #${e.seq}(${e.payload})`;
    case 'snapshot':
      return `snapshot ${e.checkpointId}: ${counts(e.counts)}`;
    case 'send-barrier':
      return `barrier ${e.checkpointId} on ${core.outputId(e.channel)}${e.epoch ? ` epoch=${e.epoch}` : ''}`;
    case 'ack': {
      const states = Object.entries(e.ack.channelStates)
        .filter(([, m]) => m.length > 0)
        .map(([c, m]) => `${c}=[${m.map((x) => `#${x.seq}(${x.payload})`).join(' ')}]`);
      const s = e.ack.stats;
      return `ack ${e.ack.checkpointId}: state ${states.length ? states.join(' ') : '-'}; buffered ${s.bufferedMessages}${s.finishedUnaligned ? '; finished unaligned' : ''}`;
    }
    case 'decline':
      return `decline ${e.checkpointId}: ${e.reason}`;
    case 'start-timer':
      return `start alignment timer ${e.timer.checkpointId} (${e.afterMs} ms)`;
    case 'cancel-timer':
      return `cancel alignment timer ${e.timer.checkpointId}`;
    case 'paused':
      return `paused for ${e.checkpointId}`;
    case 'resumed':
      return `resumed after ${e.checkpointId}`;
    case 'channel-failed':
      return `channel failed ${core.inputId(e.channel)}: ${e.detail}`;
  }
}

function int(s: string | undefined): number {
  const n = Number(s);
  if (!Number.isInteger(n)) throw new Error(`not an integer: ${s}`);
  return n;
}

function option(args: string[], name: string): number | undefined {
  const a = args.find((x) => x.startsWith(`${name}=`));
  return a === undefined ? undefined : int(a.slice(name.length + 1));
}
