/**
 * snapctl's NATS administration (docs/security.md): the operator-mode key directory, tenants as
 * NATS accounts, and agents' credentials. These commands run on the coordinator's host: they read
 * and write the key directory, and push account JWTs to NATS as its system account. They do not
 * go through the coordinator's gRPC API.
 */
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { NatsConnection } from 'nats';
import { ensureStateBucket } from '../../adapters/state-store.js';
import { NatsKeys } from '../nats-auth/keys.js';
import { connectWithCreds, pushAccountJwts } from '../nats-auth/push.js';
import { EXIT } from './help.js';

export const NATS_ADMIN_COMMANDS: ReadonlySet<string> = new Set(['nats', 'tenant', 'agent']);

export const KEYS_DIR_DEFAULT = '/etc/snapcoord/nats-keys';

export const NATS_ADMIN_HELP = `Usage (on the coordinator's host; docs/security.md):
  snapctl nats init [--keys-dir DIR] [--resolver-dir DIR] [--config-out FILE]
      a new key directory (operator, system account, the coordinator's account and credentials)
      and the nats-server configuration of operator mode (printed, or written to FILE)
  snapctl nats push [--keys-dir DIR] [--nats URL]
      push every account JWT of the key directory again (a server that lost its resolver directory)
  snapctl tenant create T [--keys-dir DIR] [--nats URL] [--replicas N]
      tenant T's NATS account, pushed to NATS, and its state bucket
  snapctl tenant list [--keys-dir DIR]
  snapctl agent enroll --tenant T --server S --out FILE [--log-publish STREAM:SUBJECT]...
                      [--log-read STREAM]... [--keys-dir DIR] [--nats URL]
      a credential (.creds, mode 0600) for the agent of server S: give it to the agent as
      nats.credsFile. Enrolling S again revokes its previous credential. For log channels
      (docs/channels.md): --log-publish for each one that starts at S (its stream and subject),
      --log-read for the stream of each one that ends at S
  snapctl agent revoke --tenant T --server S [--keys-dir DIR] [--nats URL]
      revoke S's credential: NATS disconnects the agent within seconds and refuses it from then on
  snapctl agent list --tenant T [--keys-dir DIR]

Options:
  --keys-dir DIR   the key directory (default: $SNAPCTL_NATS_KEYS_DIR, else ${KEYS_DIR_DEFAULT}); it
                   holds the operator's and every account's signing keys: keep it on the
                   coordinator's host, readable by root only (files 0600, directories 0700)
  --nats URL       NATS, as the system account (default: $NATS_URL, else nats://127.0.0.1:4222)

Exit codes: 0 ok, 1 NATS refused or could not be reached (the key directory may hold a change
NATS has not got: run snapctl nats push), 2 usage or key directory error
`;

export interface NatsAdminIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

export async function runNatsAdmin(argv: readonly string[], env: NodeJS.ProcessEnv, io: NatsAdminIo): Promise<number> {
  let values: Record<string, string | string[] | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...argv],
      options: {
        'keys-dir': { type: 'string' },
        'resolver-dir': { type: 'string' },
        'config-out': { type: 'string' },
        nats: { type: 'string' },
        tenant: { type: 'string' },
        server: { type: 'string' },
        out: { type: 'string' },
        replicas: { type: 'string' },
        'log-publish': { type: 'string', multiple: true },
        'log-read': { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    }));
  } catch (error) {
    io.stderr(`snapctl: ${error instanceof Error ? error.message : String(error)}\n\n${NATS_ADMIN_HELP}`);
    return EXIT.usage;
  }
  if (values['help'] === true) {
    io.stdout(NATS_ADMIN_HELP);
    return EXIT.ok;
  }
  const usage = (message: string): number => {
    io.stderr(`snapctl: ${message}\n\n${NATS_ADMIN_HELP}`);
    return EXIT.usage;
  };
  const str = (key: string): string | undefined => (typeof values[key] === 'string' ? (values[key] as string) : undefined);
  const keysDir = resolve(str('keys-dir') ?? env['SNAPCTL_NATS_KEYS_DIR'] ?? KEYS_DIR_DEFAULT);
  const natsUrl = str('nats') ?? env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
  const [group, verb, arg] = positionals;
  const command = `${group ?? ''} ${verb ?? ''}`;
  if (command === 'nats init') {
    const keys = NatsKeys.init(keysDir);
    if (!keys.ok) return usage(keys.error);
    const config = keys.value.serverConfig(resolve(str('resolver-dir') ?? join(keysDir, 'resolver')));
    const out = str('config-out');
    if (out !== undefined) writeFileSync(out, config, { mode: 0o644 });
    else io.stdout(config);
    io.stderr(`snapctl: NATS keys in ${keysDir}; the coordinator connects with --nats-creds ${keys.value.coordinatorCredsFile} --nats-tenant-creds-dir ${keys.value.tenantCredsDir}\n`);
    return EXIT.ok;
  }
  const opened = NatsKeys.open(keysDir);
  if (!opened.ok) return usage(opened.error);
  const keys = opened.value;
  const push = async (jwts: readonly string[]): Promise<number> => {
    const pushed = await pushAccountJwts(natsUrl, keys.systemCredsFile, jwts);
    if (pushed.ok) return EXIT.ok;
    io.stderr(`snapctl: ${pushed.error}\n`);
    return EXIT.coordinator;
  };
  switch (command) {
    case 'nats push':
      return push(keys.allAccountJwts());
    case 'tenant create': {
      if (arg === undefined) return usage('tenant create needs the tenant: snapctl tenant create T');
      const replicas = Number(str('replicas') ?? '1');
      if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) return usage('--replicas must be an integer from 1 to 5');
      const created = keys.createTenant(arg);
      if (!created.ok) return usage(created.error);
      const code = await push(created.value.jwts);
      if (code !== EXIT.ok) return code;
      let nc: NatsConnection | undefined;
      try {
        nc = await connectWithCreds(natsUrl, join(keys.tenantCredsDir, arg, 'coordinator.creds'), 'snapctl-tenant-create');
        await ensureStateBucket(nc, arg, { replicas, bucketBytesMax: 0 });
      } catch (error) {
        io.stderr(`snapctl: tenant ${arg} created, but its state bucket was not (the coordinator creates it when an agent registers): ${error instanceof Error ? error.message : String(error)}\n`);
        return EXIT.coordinator;
      } finally {
        await nc?.close();
      }
      io.stdout(`tenant ${arg} created\n`);
      return EXIT.ok;
    }
    case 'tenant list':
      io.stdout(keys.tenants().map((t) => `${t}\n`).join(''));
      return EXIT.ok;
    case 'agent enroll': {
      const tenant = str('tenant');
      const server = str('server');
      const out = str('out');
      if (tenant === undefined || server === undefined || out === undefined) return usage('agent enroll needs --tenant T --server S --out FILE');
      const list = (key: string): string[] => (Array.isArray(values[key]) ? (values[key] as string[]) : []);
      const publish: { stream: string; subject: string }[] = [];
      for (const given of list('log-publish')) {
        const at = given.indexOf(':');
        if (at <= 0 || at === given.length - 1) return usage(`--log-publish takes STREAM:SUBJECT (the stream and the log channel's subject), got ${JSON.stringify(given)}`);
        publish.push({ stream: given.slice(0, at), subject: given.slice(at + 1) });
      }
      const read = list('log-read');
      const enrolled = keys.enrollAgent(tenant, server, publish.length > 0 || read.length > 0 ? { publish, read } : undefined);
      if (!enrolled.ok) return usage(enrolled.error);
      // Written before the push: a credential NATS does not know yet only fails to connect.
      writeFileSync(out, enrolled.value.creds, { mode: 0o600 });
      chmodSync(out, 0o600);
      const code = await push(enrolled.value.jwts);
      if (code !== EXIT.ok) return code;
      io.stdout(`agent ${tenant}/${server} enrolled: ${out}${enrolled.value.replaced ? ' (its previous credential is revoked)' : ''}\n`);
      return EXIT.ok;
    }
    case 'agent revoke': {
      const tenant = str('tenant');
      const server = str('server');
      if (tenant === undefined || server === undefined) return usage('agent revoke needs --tenant T --server S');
      const revoked = keys.revokeAgent(tenant, server);
      if (!revoked.ok) return usage(revoked.error);
      const code = await push(revoked.value.jwts);
      if (code !== EXIT.ok) return code;
      io.stdout(`agent ${tenant}/${server} revoked\n`);
      return EXIT.ok;
    }
    case 'agent list': {
      const tenant = str('tenant');
      if (tenant === undefined) return usage('agent list needs --tenant T');
      if (!existsSync(join(keys.tenantCredsDir, tenant))) return usage(`tenant ${tenant} does not exist`);
      io.stdout(keys.agents(tenant).map((s) => `${s}\n`).join(''));
      return EXIT.ok;
    }
    default:
      return usage(`unknown command ${command.trim()}`);
  }
}
