/**
 * One valid wire message of every kind the daemons read, encoded by the project's own codec:
 * every control command and every agent event (the records below are keyed by the wire's type
 * unions, so a new kind fails to compile until it has a sample), a plan trigger, each envelope
 * kind and a credit. The fuzz section mutates them; `Where` says whose subject they claim.
 */
import type { ChannelId } from '../../src/ids.js';
import {
  encodeControl,
  encodeCredit,
  encodeEnvelope,
  encodeEvent,
  encodePlanTrigger,
  type AgentEventBody,
  type AgentEventType,
  type ControlCommand,
  type ControlType,
  type ObjectRef,
  type WireResult,
} from '../../src/wire/index.js';

export interface Where {
  readonly tenant: string;
  readonly server: string;
  readonly plan: string;
  readonly app: string;
  readonly epoch: number;
  /** A checkpoint id the message names. */
  readonly checkpointId: number;
}

export interface Sample {
  /** E.g. `ctl:freeze`, `evt:ack`, `ch:message`. */
  readonly kind: string;
  readonly bytes: Uint8Array;
}

const NO_HOOKS = [] as const;

function objectRef(w: Where, what: string): ObjectRef {
  return { name: `cp/${w.checkpointId}/${w.server}/${w.app}/${what}`, digest: 'SHA-256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU', sizeBytes: 0 };
}

function controlCommands(w: Where): { readonly [K in ControlType]: Extract<ControlCommand, { type: K }> } {
  const checkpointId = w.checkpointId;
  return {
    trigger: { type: 'trigger', checkpointId, policy: { kind: 'aligned' }, timeoutMs: 10_000, initiatorApps: [w.app], backEdgeChannels: [], inlineStateBytesMax: 4_096 },
    abort: { type: 'abort', checkpointId, reason: 'security suite' },
    complete: { type: 'complete', checkpointId },
    freeze: { type: 'freeze', checkpointId, deadlineMs: 2_000 },
    thaw: { type: 'thaw', checkpointId, afterRestore: false },
    restore: { type: 'restore', checkpointId, apps: [{ app: w.app, state: { kind: 'inline', bytes: new Uint8Array([0, 0, 0, 0, 0, 0, 3, 232]) }, counts: { sent: {}, received: {} }, channelAliases: {} }] },
    resume: { type: 'resume', checkpointId, apps: [] },
    quiesce: { type: 'quiesce', checkpointId, apps: [w.app], drainTo: {} },
    capture: { type: 'capture', checkpointId, apps: [w.app] },
    ping: { type: 'ping' },
    hello: { type: 'hello' },
  };
}

function eventBodies(w: Where): { readonly [K in AgentEventType]: Extract<AgentEventBody, { type: K }> } {
  const checkpointId = w.checkpointId;
  const stats = { bufferedMessages: 0, channelStateMessages: 0, finishedUnaligned: false, startDelayMs: 0, alignmentMs: 0, syncMs: 0, asyncMs: 0 };
  return {
    register: { type: 'register', apps: [w.app], version: '0.1.0' },
    heartbeat: { type: 'heartbeat', frozen: false, checkpointsInFlight: [checkpointId], highestCheckpointId: checkpointId },
    ack: { type: 'ack', checkpointId, app: w.app, counts: { sent: {}, received: {} }, state: { kind: 'inline', bytes: new Uint8Array([0, 0, 0, 0, 0, 0, 3, 232]) }, stats },
    decline: { type: 'decline', checkpointId, app: w.app, reason: 'internal', detail: 'security suite' },
    progress: { type: 'progress', checkpointId, app: w.app, phase: 'started', bytesDone: 0 },
    frozen: { type: 'frozen', checkpointId, frozenAtUnixMs: 1, hooksMs: 0, hooks: [...NO_HOOKS] },
    thawed: { type: 'thawed', checkpointId, thawedAtUnixMs: 2, byWatchdog: false, hooks: [...NO_HOOKS], frozenAtUnixMs: 1 },
    restored: { type: 'restored', checkpointId, apps: [w.app] },
    resumed: { type: 'resumed' },
    quiesced: { type: 'quiesced', checkpointId, app: w.app, outputPositions: {}, hooks: [...NO_HOOKS] },
    captured: { type: 'captured', checkpointId, app: w.app, state: objectRef(w, 'state'), hooks: [...NO_HOOKS] },
  };
}

function encoded(kind: string, r: WireResult<Uint8Array>): Sample {
  if (!r.ok) throw new Error(`sample ${kind} does not encode: ${r.error.message}`);
  return { kind, bytes: r.value };
}

let requestCount = 0;
const requestId = (): string => `security-suite:${++requestCount}`;

/** Every control command, as the coordinator would send it to `w.server` (on snap.<tenant>.ctl.<server>). */
export function controlSamples(w: Where): Sample[] {
  return Object.values(controlCommands(w)).map((command) => {
    const header = { requestId: requestId(), tenant: w.tenant, server: w.server, plan: command.type === 'ping' || command.type === 'hello' ? '' : w.plan, epoch: w.epoch };
    return encoded(`ctl:${command.type}`, encodeControl({ ...header, ...command }));
  });
}

/** Every agent event, as `w.server`'s agent would send it (on snap.<tenant>.evt.<server>). */
export function eventSamples(w: Where): Sample[] {
  return Object.values(eventBodies(w)).map((body) => encoded(`evt:${body.type}`, encodeEvent({ requestId: requestId(), tenant: w.tenant, server: w.server, epoch: w.epoch, ...body })));
}

/** A plan trigger of `w.plan` (on snap.<tenant>.plan.<plan>.trg). */
export function planTriggerSample(w: Where): Sample {
  return encoded(
    'trg:trigger',
    encodePlanTrigger({ requestId: requestId(), tenant: w.tenant, plan: w.plan, epoch: w.epoch, checkpointId: w.checkpointId, policy: { kind: 'aligned' }, timeoutMs: 10_000, inlineStateBytesMax: 4_096, layout: 'security-suite' }),
  );
}

/** Every envelope kind of `channel` (on its data subject), from message `seq` on. */
export function envelopeSamples(channel: ChannelId, epoch: number, seq: number, checkpointId: number): Sample[] {
  const payload = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 1]);
  return [
    encoded('ch:message', encodeEnvelope({ type: 'message', channel, epoch, seq, payload })),
    encoded('ch:barrier', encodeEnvelope({ type: 'barrier', channel, epoch, afterSeq: seq, checkpointId })),
    encoded('ch:run', encodeEnvelope({ type: 'run', channel, epoch, firstSeq: seq, payloads: [payload, payload] })),
  ];
}

/** A credit of `channel` (on its credit subject), asking for a resend from `resendFrom` if given. */
export function creditSample(channel: ChannelId, epoch: number, receivedSeq: number, resendFrom?: number): Sample {
  return encoded('cr:credit', encodeCredit({ channel, epoch, receivedSeq, window: 1_024, ...(resendFrom !== undefined ? { resendFrom } : {}) }));
}
