/**
 * The `siteName` and `sites` keys of the coordinator's configuration (docs/sites.md): where copies
 * of checkpoints go, off this NATS deployment's failure domain. Kept here so the site code owns its
 * own options; coordinator/config-schema.ts only places them.
 */
import { z } from 'zod';
import { field } from '../../adapters/config-schema.js';

/** A site name is a KV key token and an object name segment: kept to one safe alphabet. */
export const SITE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const SITE_NAME_ERROR = 'must be 1 to 64 letters, digits, "-" or "_"';

const path = (description: string) => field(z.string({ error: 'must be a file path' }).min(1, { error: 'must be a file path' }).optional(), { description, unit: 'path' });

export const siteNameSchema = field(z.string({ error: SITE_NAME_ERROR }).regex(SITE_NAME, { error: SITE_NAME_ERROR }).default('local'), {
  description: "this deployment's own site name: the source named by every copy it makes (docs/sites.md); give each deployment that copies to a shared site its own",
  flag: '--site-name',
  env: 'SNAPCOORD_SITE_NAME',
});

export const siteSchema = z.strictObject(
  {
    name: field(z.string({ error: SITE_NAME_ERROR }).regex(SITE_NAME, { error: SITE_NAME_ERROR }), { description: 'the name CopyCheckpoint, snapctl copy and restore --from-site use' }),
    natsUrl: field(z.string({ error: 'must be a NATS URL' }).min(1, { error: 'must be a NATS URL' }), {
      description: "the site's NATS server with JetStream, or its cluster's nodes separated by commas",
      unit: 'URL',
    }),
    credsFile: path('a NATS credentials file (JWT and NKey seed) for the site'),
    token: field(z.string({ error: 'must be a token' }).min(1, { error: 'must be a token' }).optional(), { description: "the site's NATS token (prefer credsFile; a token in the file is readable by whoever reads the file)" }),
    tlsCaFile: path("CA certificates (PEM) that sign the site's NATS server certificate; given: the connection uses TLS"),
    tlsCertFile: path('client certificate (PEM) for NATS TLS with client authentication'),
    tlsKeyFile: path('its private key (PEM)'),
    replicas: field(z.int({ error: 'must be an integer from 1 to 5' }).min(1, { error: 'must be an integer from 1 to 5' }).max(5, { error: 'must be an integer from 1 to 5' }).default(1), {
      description: 'copies of the buckets the coordinator creates at the site (3 on a 3-node cluster)',
      unit: 'copies',
    }),
  },
  { error: 'must be an object' },
);

export type SiteConfig = z.output<typeof siteSchema>;

export const sitesSchema = field(
  z
    .array(siteSchema, { error: 'must be a list of sites' })
    .default([])
    .refine((sites) => new Set(sites.map((s) => s.name)).size === sites.length, { error: 'site names must be unique' })
    .refine((sites) => sites.every((s) => (s.tlsCertFile === undefined) === (s.tlsKeyFile === undefined)), { error: 'tlsCertFile and tlsKeyFile go together' }),
  { description: 'other sites (NATS deployments) that checkpoints are copied to and restored from (docs/sites.md); only in the configuration file' },
);
