/**
 * What each NATS user this project issues may publish and subscribe to (DESIGN.md §5a). NATS
 * enforces these lists itself: a publish outside them is dropped with a permissions violation, a
 * subscription outside them is refused, so a forged message never reaches a subscriber.
 *
 * An agent's rights are exact for its server: its own event subject, the data of channels that
 * start at its server and the credit of channels that end there (publish); its own control
 * subject, its tenant's plan triggers, the data of channels that end at its server and the credit
 * of channels that start there, and its private inbox (subscribe); and of its tenant's state
 * bucket, what storing and reading an object needs, never creating, deleting or purging a stream.
 */
import { SUBJECT_ROOT, agentInboxPrefix } from '../../src/wire/subjects.js';
import { stateBucketName } from '../../adapters/state-store.js';
import type { UserPermissions } from './jwt.js';

export interface AgentIdentity {
  readonly tenant: string;
  readonly server: string;
  /** The log channels of its apps (docs/channels.md), given at enrollment; none: no log stream. */
  readonly logs?: LogChannelRights;
}

/**
 * An agent's rights on log channels' streams: publish on the subjects of the log channels that
 * start at its server, and read the streams of those that end there (a restore into other apps
 * reads a range recorded under another channel's name, on any subject of the stream).
 */
export interface LogChannelRights {
  readonly publish: readonly { readonly stream: string; readonly subject: string }[];
  readonly read: readonly string[];
}

export interface SubjectGrant {
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
}

/**
 * The grants every agent gets, one function per feature. A feature that gives agents new subjects
 * (for example a JetStream stream of its own) adds its function here: every credential enrolled
 * from then on carries it, and agents enrolled before must be enrolled again.
 */
export const AGENT_GRANTS: readonly ((a: AgentIdentity) => SubjectGrant)[] = [controlPlaneGrant, channelGrant, stateBucketGrant, logChannelGrant];

/** Events out; its control subject and the tenant's plan triggers in (every plan of the tenant: see docs/security.md). */
export function controlPlaneGrant({ tenant, server }: AgentIdentity): SubjectGrant {
  return {
    publish: [`${SUBJECT_ROOT}.${tenant}.evt.${server}`],
    subscribe: [`${SUBJECT_ROOT}.${tenant}.ctl.${server}`, `${SUBJECT_ROOT}.${tenant}.plan.*.trg`, `${agentInboxPrefix(tenant, server)}.>`],
  };
}

/** In-band channels (`ch`/`cr`.<fromServer>.<fromApp>.<toServer>.<toApp>): only as their sending or receiving server. */
export function channelGrant({ tenant, server }: AgentIdentity): SubjectGrant {
  const root = `${SUBJECT_ROOT}.${tenant}`;
  return {
    publish: [`${root}.ch.${server}.*.*.*`, `${root}.cr.*.*.${server}.*`],
    subscribe: [`${root}.ch.*.*.${server}.*`, `${root}.cr.${server}.*.*.*`],
  };
}

/**
 * The tenant's Object Store bucket: look it up, read objects (direct or through an ordered
 * consumer, answering its flow control), write chunks and metadata. Not: create, delete, purge or
 * update the stream (the coordinator does), nor any other stream of the account.
 */
export function stateBucketGrant({ tenant }: AgentIdentity): SubjectGrant {
  const bucket = stateBucketName(tenant);
  const stream = `OBJ_${bucket}`;
  return {
    publish: [
      '$JS.API.INFO',
      // An ordered consumer looks up which stream holds its subject: names of this account's streams only.
      '$JS.API.STREAM.NAMES',
      `$JS.API.STREAM.INFO.${stream}`,
      `$JS.API.STREAM.MSG.GET.${stream}`,
      `$JS.API.DIRECT.GET.${stream}`,
      `$JS.API.DIRECT.GET.${stream}.>`,
      `$JS.API.CONSUMER.CREATE.${stream}`,
      `$JS.API.CONSUMER.CREATE.${stream}.>`,
      `$JS.API.CONSUMER.INFO.${stream}.>`,
      `$JS.API.CONSUMER.DELETE.${stream}.>`,
      `$JS.FC.${stream}.>`,
      `$O.${bucket}.C.>`,
      `$O.${bucket}.M.>`,
    ],
    subscribe: [],
  };
}

/**
 * Log channels: look up and read the info of the streams named; publish on the sending channels'
 * own subjects (the stream acknowledges to the agent's inbox); an ephemeral pull consumer on the
 * receiving channels' streams, without acks. Not: create, delete, purge or update a stream, nor
 * publish on another channel's subject.
 */
export function logChannelGrant({ logs }: AgentIdentity): SubjectGrant {
  if (logs === undefined || (logs.publish.length === 0 && logs.read.length === 0)) return { publish: [], subscribe: [] };
  const streams = [...new Set([...logs.publish.map((p) => p.stream), ...logs.read])];
  return {
    publish: [
      '$JS.API.INFO',
      '$JS.API.STREAM.NAMES',
      ...streams.map((stream) => `$JS.API.STREAM.INFO.${stream}`),
      ...logs.publish.map((p) => p.subject),
      ...logs.read.flatMap((stream) => [
        `$JS.API.CONSUMER.CREATE.${stream}`,
        `$JS.API.CONSUMER.CREATE.${stream}.>`,
        `$JS.API.CONSUMER.INFO.${stream}.>`,
        `$JS.API.CONSUMER.DELETE.${stream}.>`,
        `$JS.API.CONSUMER.MSG.NEXT.${stream}.>`,
      ]),
    ],
    subscribe: [],
  };
}

export function agentPermissions(agent: AgentIdentity, grants: readonly ((a: AgentIdentity) => SubjectGrant)[] = AGENT_GRANTS): UserPermissions {
  const all = grants.map((g) => g(agent));
  const unique = (xs: string[]): string[] => [...new Set(xs)];
  return { pub: { allow: unique(all.flatMap((g) => [...g.publish])) }, sub: { allow: unique(all.flatMap((g) => [...g.subscribe])) } };
}

/**
 * The coordinator's user inside a tenant's account: the tenant's JetStream (its state bucket, which
 * it creates, verifies, restores from and deletes from) and its own inbox; no `snap.` subject, so
 * this connection can neither forge an event nor read a channel.
 */
export function coordinatorInTenantPermissions(): UserPermissions {
  return { pub: { allow: ['$JS.API.>', '$JS.FC.>', '$JS.ACK.>', '$O.>'] }, sub: { allow: ['_INBOX.>'] } };
}
