/**
 * AgentEvent (agent -> coordinator): proto fields <-> `AgentEvent`. `readAgentEvent` validates; it
 * serves both the decoder and the encoder, like `readControl`.
 */
import { appStateFields, channelCountFields, type FieldReader, type Fields, objectRefFields, wireFormat } from './fields.js';
import { oneofCase } from './oneof.js';
import { declineReasonTable, progressPhaseTable } from './schema.js';
import type { AgentEvent, AgentEventHeader, AgentEventType, HookAction, HookResult, WireAckStats } from './types.js';

/** The oneof's members, in .proto order; the TypeScript `type` of each is the member's name. */
export const agentEventTypes: readonly AgentEventType[] = [
  'register',
  'heartbeat',
  'ack',
  'decline',
  'progress',
  'frozen',
  'thawed',
  'restored',
  'resumed',
  'quiesced',
  'captured',
];

function readAckStats(reader: FieldReader, value: unknown): WireAckStats {
  const stats = reader.message(value, 'ack.stats');
  return {
    startDelayMs: reader.uint32(stats.start_delay_ms, 'ack.stats.start_delay_ms'),
    alignmentMs: reader.uint32(stats.alignment_ms, 'ack.stats.alignment_ms'),
    syncMs: reader.uint32(stats.sync_ms, 'ack.stats.sync_ms'),
    asyncMs: reader.uint32(stats.async_ms, 'ack.stats.async_ms'),
    bufferedMessages: reader.uint(stats.buffered_messages, 'ack.stats.buffered_messages'),
    channelStateMessages: reader.uint(stats.channel_state_messages, 'ack.stats.channel_state_messages'),
    finishedUnaligned: reader.bool(stats.finished_unaligned, 'ack.stats.finished_unaligned'),
  };
}

export function readAgentEvent(reader: FieldReader, message: Fields): AgentEvent {
  const inReplyTo = reader.optionalRequestId(message.in_reply_to, 'in_reply_to');
  const header: AgentEventHeader = {
    requestId: reader.requestId(message.request_id, 'request_id'),
    tenant: reader.name(message.tenant, 'tenant'),
    server: reader.name(message.server, 'server'),
    epoch: reader.uint(message.epoch, 'epoch'),
  };
  if (inReplyTo !== undefined) Object.assign(header, { inReplyTo });
  // Each case adds its fields to the header with Object.assign: `{ ...header, type, ... }` takes a
  // slow path on Node 20 (a spread followed by more properties, about 2 µs) on every message.
  const type = oneofCase(reader, message, 'event', agentEventTypes);
  if (type === undefined) return Object.assign(header, { type: 'resumed' as const });
  const body = reader.message(message[type], type);
  switch (type) {
    case 'register':
      return Object.assign(header, {
        type,
        apps: reader.names(body.apps, 'register.apps'),
        version: reader.version(body.version, 'register.version'),
      });
    case 'heartbeat': {
      const inFlight = reader
        .list(body.checkpoints_in_flight, 'heartbeat.checkpoints_in_flight')
        .map((id, i) => reader.positive(id, `heartbeat.checkpoints_in_flight[${i}]`));
      return Object.assign(header, {
        type,
        frozen: reader.bool(body.frozen, 'heartbeat.frozen'),
        checkpointsInFlight: inFlight,
        highestCheckpointId: reader.uint(body.highest_checkpoint_id, 'heartbeat.highest_checkpoint_id'),
      });
    }
    case 'ack': {
      const channelState = reader.optionalMessage(body.channel_state, 'ack.channel_state');
      const ack = Object.assign(header, {
        type,
        checkpointId: reader.positive(body.checkpoint_id, 'ack.checkpoint_id'),
        app: reader.name(body.app, 'ack.app'),
        counts: {
          sent: reader.channelCounts(body.sent, 'ack.sent'),
          received: reader.channelCounts(body.received, 'ack.received'),
        },
        state: reader.appState(body, 'ack'),
        stats: readAckStats(reader, body.stats),
      });
      return channelState === undefined ? ack : Object.assign(ack, { channelState: reader.objectRef(channelState, 'ack.channel_state') });
    }
    case 'decline': {
      const app = reader.optionalName(body.app, 'decline.app');
      return Object.assign(header, {
        type,
        checkpointId: reader.positive(body.checkpoint_id, 'decline.checkpoint_id'),
        ...(app === undefined ? {} : { app }),
        reason: reader.enumValue(body.reason, 'decline.reason', declineReasonTable.byNumber) ?? 'internal',
        detail: reader.text(body.detail, 'decline.detail', wireFormat.detailCharsMax),
        ...optionalHooks(readHooks(reader, body.hooks, 'decline.hooks')),
      });
    }
    case 'progress':
      return Object.assign(header, {
        type,
        checkpointId: reader.positive(body.checkpoint_id, 'progress.checkpoint_id'),
        app: reader.name(body.app, 'progress.app'),
        phase: reader.enumValue(body.phase, 'progress.phase', progressPhaseTable.byNumber) ?? 'started',
        bytesDone: reader.uint(body.bytes_done, 'progress.bytes_done'),
      });
    case 'frozen':
      return Object.assign(header, {
        type,
        checkpointId: reader.positive(body.checkpoint_id, 'frozen.checkpoint_id'),
        frozenAtUnixMs: reader.uint(body.frozen_at_unix_ms, 'frozen.frozen_at_unix_ms'),
        hooksMs: reader.uint32(body.hooks_ms, 'frozen.hooks_ms'),
        hooks: readHooks(reader, body.hooks, 'frozen.hooks'),
      });
    case 'thawed':
      return Object.assign(header, {
        type,
        checkpointId: reader.positive(body.checkpoint_id, 'thawed.checkpoint_id'),
        thawedAtUnixMs: reader.uint(body.thawed_at_unix_ms, 'thawed.thawed_at_unix_ms'),
        byWatchdog: reader.bool(body.by_watchdog, 'thawed.by_watchdog'),
        hooks: readHooks(reader, body.hooks, 'thawed.hooks'),
        frozenAtUnixMs: reader.uint(body.frozen_at_unix_ms, 'thawed.frozen_at_unix_ms'),
      });
    case 'restored':
      return Object.assign(header, {
        type,
        checkpointId: reader.positive(body.checkpoint_id, 'restored.checkpoint_id'),
        apps: reader.names(body.apps, 'restored.apps'),
      });
    case 'resumed':
      return Object.assign(header, { type });
    case 'quiesced':
      return Object.assign(header, {
        type,
        checkpointId: reader.positive(body.checkpoint_id, 'quiesced.checkpoint_id'),
        app: reader.name(body.app, 'quiesced.app'),
        outputPositions: reader.channelCounts(body.output_positions, 'quiesced.output_positions'),
        hooks: readHooks(reader, body.hooks, 'quiesced.hooks'),
      });
    case 'captured':
      return Object.assign(header, {
        type,
        checkpointId: reader.positive(body.checkpoint_id, 'captured.checkpoint_id'),
        app: reader.name(body.app, 'captured.app'),
        state: reader.objectRef(body.state, 'captured.state'),
        hooks: readHooks(reader, body.hooks, 'captured.hooks'),
      });
  }
}

function bodyFields(event: AgentEvent): Fields {
  switch (event.type) {
    case 'register':
      return { apps: event.apps, version: event.version };
    case 'heartbeat':
      return { frozen: event.frozen, checkpoints_in_flight: event.checkpointsInFlight, highest_checkpoint_id: event.highestCheckpointId };
    case 'ack':
      return {
        checkpoint_id: event.checkpointId,
        app: event.app,
        sent: channelCountFields(event.counts.sent),
        received: channelCountFields(event.counts.received),
        channel_state: event.channelState === undefined ? undefined : objectRefFields(event.channelState),
        ...appStateFields(event.state),
        stats: {
          start_delay_ms: event.stats.startDelayMs,
          alignment_ms: event.stats.alignmentMs,
          sync_ms: event.stats.syncMs,
          async_ms: event.stats.asyncMs,
          buffered_messages: event.stats.bufferedMessages,
          channel_state_messages: event.stats.channelStateMessages,
          finished_unaligned: event.stats.finishedUnaligned,
        },
      };
    case 'decline':
      return {
        checkpoint_id: event.checkpointId,
        app: event.app,
        reason: declineReasonTable.byName.get(event.reason),
        detail: event.detail,
        hooks: hookFields(event.hooks ?? []),
      };
    case 'progress':
      return {
        checkpoint_id: event.checkpointId,
        app: event.app,
        phase: progressPhaseTable.byName.get(event.phase),
        bytes_done: event.bytesDone,
      };
    case 'frozen':
      return { checkpoint_id: event.checkpointId, frozen_at_unix_ms: event.frozenAtUnixMs, hooks_ms: event.hooksMs, hooks: hookFields(event.hooks) };
    case 'thawed':
      return {
        checkpoint_id: event.checkpointId,
        thawed_at_unix_ms: event.thawedAtUnixMs,
        by_watchdog: event.byWatchdog,
        hooks: hookFields(event.hooks),
        frozen_at_unix_ms: event.frozenAtUnixMs,
      };
    case 'restored':
      return { checkpoint_id: event.checkpointId, apps: event.apps };
    case 'resumed':
      return {};
    case 'quiesced':
      return { checkpoint_id: event.checkpointId, app: event.app, output_positions: channelCountFields(event.outputPositions), hooks: hookFields(event.hooks) };
    case 'captured':
      return { checkpoint_id: event.checkpointId, app: event.app, state: objectRefFields(event.state), hooks: hookFields(event.hooks) };
  }
}

/** The proto fields for `event`; not validated here (the encoder runs `readAgentEvent` on them). */
export function agentEventFields(event: AgentEvent): Fields {
  return {
    request_id: event.requestId,
    in_reply_to: event.inReplyTo,
    tenant: event.tenant,
    server: event.server,
    epoch: event.epoch === 0 ? undefined : event.epoch,
    [event.type]: bodyFields(event),
  };
}

const hookActions: readonly HookAction[] = ['prepare', 'freeze', 'thaw', 'resume', 'restore'];

/** Hook stderr is kept short on the wire: the tail is what explains a failure. */
export const HOOK_STDERR_CHARS_MAX = 4096;

function readHooks(reader: FieldReader, value: unknown, field: string): HookResult[] {
  return reader.list(value, field).map((item, i) => {
    const f = reader.message(item, `${field}[${i}]`);
    const path = `${field}[${i}]`;
    const action = reader.text(f.action, `${path}.action`, 16);
    if (!hookActions.includes(action as HookAction)) reader.fail(`${path}.action`, `must be one of ${hookActions.join(', ')}, got ${JSON.stringify(action)}`);
    const exitCode = typeof f.exit_code === 'number' && Number.isInteger(f.exit_code) ? f.exit_code : 0;
    const signal = reader.text(f.signal, `${path}.signal`, 32);
    const app = reader.text(f.app, `${path}.app`, 64);
    return {
      hook: reader.text(f.hook, `${path}.hook`, 255),
      action: action as HookAction,
      exitCode,
      ...(signal !== '' ? { signal } : {}),
      timedOut: reader.bool(f.timed_out, `${path}.timed_out`),
      durationMs: reader.uint32(f.duration_ms, `${path}.duration_ms`),
      stderr: reader.text(f.stderr, `${path}.stderr`, HOOK_STDERR_CHARS_MAX),
      attempts: reader.uint32(f.attempts, `${path}.attempts`),
      ...(app !== '' ? { app } : {}),
    };
  });
}

function hookFields(hooks: readonly HookResult[]): Fields[] {
  return hooks.map((h) => ({
    hook: h.hook,
    action: h.action,
    exit_code: h.exitCode === 0 ? undefined : h.exitCode,
    signal: h.signal,
    timed_out: h.timedOut || undefined,
    duration_ms: h.durationMs === 0 ? undefined : h.durationMs,
    stderr: h.stderr === '' ? undefined : h.stderr,
    attempts: h.attempts === 0 ? undefined : h.attempts,
    app: h.app,
  }));
}

function optionalHooks(hooks: HookResult[]): { hooks?: HookResult[] } {
  return hooks.length > 0 ? { hooks } : {};
}
