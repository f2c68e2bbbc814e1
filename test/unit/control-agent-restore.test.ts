/**
 * A restore moves its plan's epoch forward (src/control/agent-control.ts): one at an epoch whose
 * restore has ended on the agent (it answered `restored`, or took the operation's resume), or older
 * than the agent's epoch, is stale and declined. The case it closes (VOPR finding
 * `stale-restore-after-agent-restart`): an agent restores, answers, is resumed, restarts and forgets
 * the request id; a resend of the restore still on the wire comes after the resume. Carried out, it
 * paused the apps again with no resume to follow. Here the agent's machine and the operation's
 * machine (src/control/operation.ts) are wired together in memory, so the test also shows what the
 * operation makes of each answer: it is never left waiting for one.
 */
import { describe, expect, it } from 'vitest';
import { AGENT_CONTROL_DEFAULTS, AgentControl, type AgentControlStep } from '../../src/control/agent-control.js';
import { NO_NEGATIVE_CONTROLS } from '../../src/control/negative-controls.js';
import { OperationMachine, type OperationEffect, type OperationResult } from '../../src/control/operation.js';
import type { AgentEvent, Control } from '../../src/wire/index.js';

const T = 'acme';
const S = 's1';
const PLAN = 'A';

function agent(bootId: string): AgentControl {
  return new AgentControl({ tenant: T, server: S, bootId, apps: ['a1'], ...AGENT_CONTROL_DEFAULTS, negativeControls: NO_NEGATIVE_CONTROLS });
}

function operation(): OperationMachine {
  return new OperationMachine({
    kind: 'rollback',
    level: 'app',
    id: 'op1',
    title: 'rollback to checkpoint 7',
    servers: [S],
    takeSafetyCheckpoint: false,
    hasVolumes: false,
    phaseTimeoutMs: 30_000,
    resendIntervalMs: 1_000,
    negativeControls: NO_NEGATIVE_CONTROLS,
  });
}

type Send = Extract<OperationEffect, { type: 'send' }>;

function sendOf(r: OperationResult): Send {
  const sends = r.effects.filter((e): e is Send => e.type === 'send');
  expect(sends).toHaveLength(1);
  return sends[0] as Send;
}

/** The command an operation's `send` effect puts on the wire (as coordinator/checkpoints/operations.ts does). */
function controlOf(s: Send): Control {
  const header = { requestId: s.requestId, tenant: T, server: s.server, plan: PLAN, epoch: s.epoch };
  switch (s.command) {
    case 'restore':
      return { ...header, type: 'restore', checkpointId: 7, apps: [{ app: 'a1', state: { kind: 'inline', bytes: new Uint8Array([1]) }, counts: { sent: {}, received: {} }, channelAliases: {} }] };
    case 'resume':
      return { ...header, type: 'resume', checkpointId: 7, apps: [] };
    default:
      throw new Error(`not used here: ${s.command}`);
  }
}

function trigger(epoch: number, checkpointId: number): Control {
  return { requestId: `trg:${checkpointId}`, tenant: T, server: S, plan: PLAN, epoch, type: 'trigger', checkpointId, policy: { kind: 'aligned' }, timeoutMs: 1_000, initiatorApps: ['a1'], backEdgeChannels: [], inlineStateBytesMax: 0, apps: ['a1'] };
}

function executed(step: AgentControlStep): string | undefined {
  const e = step.effects.find((x) => x.type === 'execute');
  return e?.type === 'execute' ? e.control.type : undefined;
}

function published(step: AgentControlStep): AgentEvent[] {
  return step.effects.flatMap((e) => (e.type === 'publish' ? [e.event] : []));
}

/** The shell carried the command out: its answer, stamped by the agent's machine. */
function answer(a: AgentControl, c: Control): AgentEvent {
  const body = c.type === 'restore' ? { type: 'restored' as const, checkpointId: 7, apps: ['a1'] } : { type: 'resumed' as const, hooks: [] };
  return published(a.step({ type: 'event', body, inReplyTo: c.requestId }))[0] as AgentEvent;
}

/** What the coordinator's shell feeds the operation for an agent's answer. */
function toOperation(op: OperationMachine, e: AgentEvent): OperationResult {
  const event = e.type === 'decline' ? 'declined' : e.type;
  if (event !== 'restored' && event !== 'resumed' && event !== 'declined') throw new Error(`not an answer: ${e.type}`);
  return op.step({ type: 'answer', nowMs: 0, server: e.server, requestId: e.inReplyTo as string, event, ...(e.type === 'decline' ? { detail: e.detail } : {}) });
}

/** Starts the operation up to its restore phase; returns the restore it sends. */
function untilRestore(op: OperationMachine): Send {
  op.step({ type: 'start', nowMs: 0 });
  op.step({ type: 'validated', nowMs: 0 });
  return sendOf(op.step({ type: 'epoch-set', nowMs: 0, epoch: 1 }));
}

describe('agent control: a restore moves its plan\'s epoch forward', () => {
  it('a restore at an epoch the agent restored its plan to is declined as stale and not carried out; its own resend is still answered from memory', () => {
    const a = agent('b1');
    const first: Control = controlOf({ type: 'send', server: S, requestId: 'op:x:1:s1', command: 'restore', epoch: 1, resend: false });
    expect(executed(a.step({ type: 'control', control: first }))).toBe('restore');
    const restored = answer(a, first);
    expect(a.epochOf(PLAN)).toBe(1);

    const other = { ...first, requestId: 'op:y:1:s1' };
    const step = a.step({ type: 'control', control: other });
    expect(step.rejected?.reason).toBe('stale-epoch');
    expect(executed(step)).toBeUndefined();
    expect(published(step).map((e) => e.type === 'decline' && [e.reason, e.inReplyTo])).toEqual([['stale-epoch', 'op:y:1:s1']]);
    expect(a.epochOf(PLAN)).toBe(1);

    const again = a.step({ type: 'control', control: first });
    expect(again.rejected?.reason).toBe('duplicate');
    expect(published(again)).toEqual([restored]);
  });

  it('a restarted agent that took the epoch from the resume declines the resend of the restore it carried out before it restarted', () => {
    const op = operation();
    const restore = controlOf(untilRestore(op));
    const before = agent('b1');
    expect(executed(before.step({ type: 'control', control: restore }))).toBe('restore');
    const resume = controlOf(sendOf(toOperation(op, answer(before, restore))));
    expect(op.state).toBe('resuming');

    const after = agent('b2');
    expect(executed(after.step({ type: 'control', control: resume }))).toBe('resume');
    const done = toOperation(op, answer(after, resume));
    expect(op.state).toBe('completed');
    expect(done.effects.some((e) => e.type === 'finished')).toBe(true);

    // The resend of the restore, still on the wire, arrives now.
    const late = after.step({ type: 'control', control: restore });
    expect(late.rejected?.reason).toBe('stale-epoch');
    expect(executed(late)).toBeUndefined();
    const decline = published(late)[0] as AgentEvent;
    expect(decline.type === 'decline' && decline.inReplyTo).toBe(restore.requestId);
    // The operation has ended; the decline changes nothing there.
    expect(toOperation(op, decline).rejected?.reason).toBe('finished');
    expect(op.state).toBe('completed');
  });

  it('while the operation still resumes other servers, the decline of a stale restore is an answer of a phase it left', () => {
    const op = new OperationMachine({
      kind: 'rollback',
      level: 'app',
      id: 'op2',
      title: 'rollback to checkpoint 7',
      servers: [S, 's2'],
      takeSafetyCheckpoint: false,
      hasVolumes: false,
      phaseTimeoutMs: 30_000,
      resendIntervalMs: 1_000,
      negativeControls: NO_NEGATIVE_CONTROLS,
    });
    op.step({ type: 'start', nowMs: 0 });
    op.step({ type: 'validated', nowMs: 0 });
    const sends = op.step({ type: 'epoch-set', nowMs: 0, epoch: 1 }).effects.filter((e): e is Send => e.type === 'send');
    const restore = controlOf(sends.find((s) => s.server === S) as Send);
    const before = agent('b1');
    before.step({ type: 'control', control: restore });
    toOperation(op, answer(before, restore));
    const resumes = op.step({ type: 'answer', nowMs: 0, server: 's2', requestId: (sends.find((s) => s.server === 's2') as Send).requestId, event: 'restored' }).effects.filter((e): e is Send => e.type === 'send');
    const resume = controlOf(resumes.find((s) => s.server === S) as Send);

    const after = agent('b2');
    after.step({ type: 'control', control: resume });
    toOperation(op, answer(after, resume));
    const late = after.step({ type: 'control', control: restore });
    expect(executed(late)).toBeUndefined();
    expect(toOperation(op, published(late)[0] as AgentEvent).rejected?.reason).toBe('unknown-request');
    expect(op.state).toBe('resuming');
  });

  it('a restore is the first command a restarted agent sees of its plan: it is carried out (that is how the agent gets its state back)', () => {
    const op = operation();
    const restore = controlOf(untilRestore(op));
    const after = agent('b2');
    expect(after.epochOf(PLAN)).toBeUndefined();
    expect(executed(after.step({ type: 'control', control: restore }))).toBe('restore');
    toOperation(op, answer(after, restore));
    expect(op.state).toBe('resuming');
    expect(after.epochOf(PLAN)).toBe(1);
  });

  it('a restarted agent that took the epoch from a trigger or an opaque resume before the restore came still carries the restore out', () => {
    const op = operation();
    const restore = controlOf(untilRestore(op));
    const after = agent('b2');
    // A checkpoint may be admitted at the new epoch while the restore is on its way: nothing ended.
    expect(executed(after.step({ type: 'control', control: trigger(1, 8) }))).toBe('trigger');
    // An opaque round's resume names its apps; it says nothing of a restore.
    expect(executed(after.step({ type: 'control', control: { requestId: 'resume:8', tenant: T, server: S, plan: PLAN, epoch: 1, type: 'resume', checkpointId: 8, apps: ['a1'] } }))).toBe('resume');
    expect(executed(after.step({ type: 'control', control: restore }))).toBe('restore');
    toOperation(op, answer(after, restore));
    expect(op.state).toBe('resuming');
  });

  it('a restore older than the plan\'s epoch is stale even where no restore ended', () => {
    const a = agent('b2');
    a.step({ type: 'control', control: trigger(3, 8) });
    const step = a.step({ type: 'control', control: controlOf({ type: 'send', server: S, requestId: 'op:z:1:s1', command: 'restore', epoch: 2, resend: false }) });
    expect(step.rejected?.reason).toBe('stale-epoch');
    expect(executed(step)).toBeUndefined();
  });
});
