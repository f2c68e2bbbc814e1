/**
 * The demo's plan (APP1@s1 -> APP2@s2 -> APP3@s3, APP1 -> APP3, APP3 -> APP1: a diamond and a
 * cycle) and the agent configuration that goes with each of its apps. Tests use the same ones.
 */
import type { PlanInput } from '../../coordinator/model.js';

export function demoPlan(tenant: string, id = 'demo'): PlanInput {
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
      },
    ],
    ...extra,
  };
}
