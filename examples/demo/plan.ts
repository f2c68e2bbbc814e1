/**
 * The demo's plan (APP1@s1 -> APP2@s2 -> APP3@s3, APP1 -> APP3, APP3 -> APP1: a diamond and a
 * cycle) and the agent configuration that goes with each of its apps. Tests use the same ones.
 */
import type { PlanChannel, PlanInput } from '../../coordinator/model.js';

/** The stream of the demo's log channel (`--log-channel`). */
export const DEMO_LOG_STREAM = 'DEMO_LOG';

/** The demo's log channel: APP2 -> APP3, on the cycle APP1 -> APP2 -> APP3 -> APP1 with in-band ones. */
export const DEMO_LOG_CHANNEL = 's2/APP2->s3/APP3';

/** The subject of a log channel's messages in its stream: the plan's, else as the demo and the tests name it. */
export function logSubjectOf(c: PlanChannel): string {
  return c.logSubject ?? `${c.logStream ?? ''}.${c.from.server}.${c.from.app}.${c.to.server}.${c.to.app}`;
}

/** `logChannel`: APP2 -> APP3 is a log channel over the stream DEMO_LOG instead of in-band. */
export function demoPlan(tenant: string, id = 'demo', options: { logChannel?: boolean } = {}): PlanInput {
  const plan = demoPlanInBand(tenant, id);
  if (options.logChannel !== true) return plan;
  return {
    ...plan,
    channels: plan.channels.map((c) =>
      `${c.from.server}/${c.from.app}->${c.to.server}/${c.to.app}` === DEMO_LOG_CHANNEL
        ? { ...c, kind: 'log' as const, logStream: DEMO_LOG_STREAM, logSubject: logSubjectOf({ ...c, logStream: DEMO_LOG_STREAM }) }
        : c,
    ),
  };
}

function demoPlanInBand(tenant: string, id: string): PlanInput {
  return {
    id,
    tenant,
    servers: ['s1', 's2', 's3'],
    apps: [
      { server: 's1', app: 'APP1' },
      { server: 's2', app: 'APP2' },
      { server: 's3', app: 'APP3' },
    ],
    channels: [
      ['s1', 'APP1', 's2', 'APP2'],
      ['s2', 'APP2', 's3', 'APP3'],
      ['s1', 'APP1', 's3', 'APP3'],
      ['s3', 'APP3', 's1', 'APP1'],
    ].map(([fs, fa, ts, ta]) => ({ from: { server: fs as string, app: fa as string }, to: { server: ts as string, app: ta as string }, kind: 'in-band' as const })),
    volumes: [],
  };
}

/** The JSON configuration of the agent hosting `app` on `server` (see agent/config.ts); `natsUrl` may list a cluster's nodes, comma-separated. */
export function agentConfigJson(plan: PlanInput, server: string, app: string, natsUrl: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const id = (s: string, a: string): string => `${s}/${a}`;
  return {
    tenant: plan.tenant,
    server,
    nats: { servers: natsUrl.split(',') },
    apps: [
      {
        name: app,
        inputs: plan.channels.filter((c) => c.to.server === server && c.to.app === app).map((c) => `${id(c.from.server, c.from.app)}->${id(server, app)}`),
        outputs: plan.channels.filter((c) => c.from.server === server && c.from.app === app).map((c) => `${id(server, app)}->${id(c.to.server, c.to.app)}`),
        logChannels: plan.channels
          .filter((c) => c.kind === 'log' && ((c.from.server === server && c.from.app === app) || (c.to.server === server && c.to.app === app)))
          .map((c) => ({ channel: `${id(c.from.server, c.from.app)}->${id(c.to.server, c.to.app)}`, stream: c.logStream, subject: logSubjectOf(c) })),
      },
    ],
    ...extra,
  };
}
