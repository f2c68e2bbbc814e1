/**
 * NATS subjects, tenant-scoped so NATS authorization can isolate tenants (DESIGN.md section 5):
 *
 *   snap.<tenant>.ctl.<server>                          Control     coordinator -> agent
 *   snap.<tenant>.plan.<plan>.trg                       PlanTrigger coordinator -> the plan's agents
 *   snap.<tenant>.evt.<server>                          AgentEvent  agent -> coordinator
 *   snap.<tenant>.ch.<fromServer>.<fromApp>.<toServer>.<toApp>   Envelope   data channel
 *   snap.<tenant>.cr.<fromServer>.<fromApp>.<toServer>.<toApp>   Credit     receiver -> sender
 *
 * Names are `[A-Za-z0-9_-]{1,64}`, so they never contain a subject separator or wildcard.
 */
import { parseChannelId, type ChannelId, type ProcessId } from '../ids.js';

export const SUBJECT_ROOT = 'snap';

export function controlSubject(tenant: string, server: string): string {
  return `${SUBJECT_ROOT}.${tenant}.ctl.${server}`;
}

export function eventSubject(tenant: string, server: string): string {
  return `${SUBJECT_ROOT}.${tenant}.evt.${server}`;
}

/** A plan's trigger broadcast (DESIGN §5): one message per checkpoint for all the plan's agents. */
export function planTriggerSubject(tenant: string, plan: string): string {
  return `${SUBJECT_ROOT}.${tenant}.plan.${plan}.trg`;
}

/** Every plan trigger of a tenant: what an agent subscribes to (it ignores plans it does not serve). */
export function planTriggerWildcard(tenant: string): string {
  return `${SUBJECT_ROOT}.${tenant}.plan.*.trg`;
}

/** Every agent event of every tenant. */
export const ALL_EVENTS_SUBJECT = `${SUBJECT_ROOT}.*.evt.*`;

export function processId(server: string, app: string): ProcessId {
  return `${server}/${app}`;
}

export function splitProcessId(id: ProcessId): { server: string; app: string } | undefined {
  const at = id.indexOf('/');
  if (at <= 0 || at === id.length - 1 || id.indexOf('/', at + 1) !== -1) return undefined;
  return { server: id.slice(0, at), app: id.slice(at + 1) };
}

function channelTokens(channel: ChannelId): string | undefined {
  const ends = parseChannelId(channel);
  if (!ends) return undefined;
  const from = splitProcessId(ends.from);
  const to = splitProcessId(ends.to);
  if (!from || !to) return undefined;
  return `${from.server}.${from.app}.${to.server}.${to.app}`;
}

/** The data subject of a channel between two `server/app` endpoints; undefined for a malformed id. */
export function channelSubject(tenant: string, channel: ChannelId): string | undefined {
  const t = channelTokens(channel);
  return t === undefined ? undefined : `${SUBJECT_ROOT}.${tenant}.ch.${t}`;
}

/**
 * The headers of a log channel's records in its stream. A message: the channel id, the sender's
 * epoch and the message's per-channel seq (its payload is the app's, as it is). A barrier: the
 * channel id, the epoch, the checkpoint id and the seq of the last message before it (its payload
 * is empty).
 */
export const LOG_HEADERS = {
  channel: 'Snap-Channel',
  epoch: 'Snap-Epoch',
  seq: 'Snap-Seq',
  barrier: 'Snap-Barrier',
  afterSeq: 'Snap-After-Seq',
} as const;

export function creditSubject(tenant: string, channel: ChannelId): string | undefined {
  const t = channelTokens(channel);
  return t === undefined ? undefined : `${SUBJECT_ROOT}.${tenant}.cr.${t}`;
}

/**
 * The prefix of an agent's reply subjects (its JetStream calls): one per server, so NATS
 * permissions can give each agent its own inbox and no other's (docs/security.md).
 */
export function agentInboxPrefix(tenant: string, server: string): string {
  return `_INBOX.${tenant}.${server}`;
}
