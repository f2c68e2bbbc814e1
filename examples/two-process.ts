/**
 * The worked example of docs/core.md: two processes driven by hand, no simulator, no network.
 * Run it with `npx tsx examples/two-process.ts`.
 */
import { channelId, checkCut, Participant, type CheckpointAck, type Input, type RecordedMessage, type SnapshotCounts } from '../src/index.js';

type Payload = string;

// 1. Declare each process with its inputs, outputs and barrier policy.
const ab = channelId('a', 'b');
const ba = channelId('b', 'a');
const policy = { kind: 'unaligned' } as const;
const made = {
  a: Participant.create<Payload>({ id: 'a', inputs: [ba], outputs: [ab], policy }),
  b: Participant.create<Payload>({ id: 'b', inputs: [ab], outputs: [ba], policy }),
};
if (!made.a.ok || !made.b.ok) throw new Error('invalid configuration');
const procs = { a: made.a.participant, b: made.b.participant };
type Name = keyof typeof procs;
// A channel's handle is its position in the process's inputs (or outputs): resolve it once.
const aOut = procs.a.outputHandle(ab) as number;
const bOut = procs.b.outputHandle(ba) as number;

// 2. Your scheduler owns the network: here a FIFO array per channel.
type WireItem = { kind: 'message'; seq: number; epoch: number; payload: Payload } | { kind: 'barrier'; id: number; epoch: number };
const wires: Record<string, WireItem[]> = { [ab]: [], [ba]: [] };
const acks = new Map<Name, CheckpointAck<Payload>>();
const apps: Record<Name, string[]> = { a: [], b: [] };
const snapshots = new Map<Name, string[]>();

// 3. One function feeds an input and carries out the effects the step wrote, in order.
function step(name: Name, input: Input<Payload>): void {
  const core = procs[name];
  const mark = core.effects.length; // the step appends its effects from here on
  const rejected = core.step(input);
  if (rejected) console.log(`${name} rejected ${rejected.reason}: ${rejected.detail}`);
  for (let i = mark; i < core.effects.length; i++) {
    const e = core.effects.at(i);
    switch (e.type) {
      case 'transmit':
        console.log(`${name}: transmit ${core.outputId(e.channel)} ${e.payload}`);
        wires[core.outputId(e.channel)]?.push({ kind: 'message', seq: e.seq, epoch: e.epoch, payload: e.payload });
        break;
      case 'send-barrier':
        console.log(`${name}: send-barrier ${e.checkpointId} ${core.outputId(e.channel)}`);
        wires[core.outputId(e.channel)]?.push({ kind: 'barrier', id: e.checkpointId, epoch: e.epoch });
        break;
      case 'deliver':
        console.log(`${name}: deliver ${core.inputId(e.channel)} ${e.payload}`);
        apps[name].push(e.payload); // the app's state: everything it has received
        break;
      case 'snapshot':
        console.log(`${name}: snapshot ${e.checkpointId}`);
        snapshots.set(name, [...apps[name]]); // capture the state NOW, before the next effect
        break;
      case 'ack':
        console.log(`${name}: ack ${e.ack.checkpointId}`);
        acks.set(name, e.ack); // a value of its own: keep it, not the effect
        break;
      default:
        break; // timers, declines, pauses: not used by this example
    }
  }
  core.effects.release(mark); // the effect records are reused by the next step
}

function deliverNext(channel: string): void {
  const item = wires[channel]?.shift();
  if (!item) return;
  const to = channel.split('->')[1] as Name;
  const input = procs[to].inputHandle(channel) as number;
  step(
    to,
    item.kind === 'message'
      ? { type: 'message', channel: input, seq: item.seq, epoch: item.epoch, payload: item.payload }
      : { type: 'barrier', channel: input, checkpointId: item.id, epoch: item.epoch },
  );
}

// 4. A run: a sends m1, initiates checkpoint 1, b sends n1 before it hears of it.
step('a', { type: 'send', channel: aOut, payload: 'm1' });
step('a', { type: 'trigger', checkpointId: 1 });
step('b', { type: 'send', channel: bOut, payload: 'n1' });
deliverNext(ab); // m1 reaches b
deliverNext(ab); // a's barrier reaches b: b snapshots and answers with its own barrier
deliverNext(ba); // n1 reaches a after a's snapshot: recorded as channel state
deliverNext(ba); // b's barrier closes a's recording
step('a', { type: 'snapshot-stored', checkpointId: 1 });
step('b', { type: 'snapshot-stored', checkpointId: 1 });

// 5. Check the cut with the same checker the tests use.
const counts: Record<string, SnapshotCounts> = {};
const channelStates: Record<string, readonly RecordedMessage<Payload>[]> = {};
for (const [name, ack] of acks) {
  counts[name] = ack.counts;
  Object.assign(channelStates, ack.channelStates);
}
const report = checkCut({ channels: [{ id: ab, from: 'a', to: 'b' }, { id: ba, from: 'b', to: 'a' }], snapshots: counts, channelStates });
console.log(`a's state at the cut: [${snapshots.get('a')?.join(', ')}], b's: [${snapshots.get('b')?.join(', ')}]`);
console.log(`channel state of b->a: [${channelStates[ba]?.map((m) => m.payload).join(', ')}]`);
console.log(report.consistent ? 'the cut is consistent' : report.violations.map((v) => v.message).join('\n'));
