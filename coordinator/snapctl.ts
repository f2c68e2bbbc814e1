/**
 * Entry point of `snapctl` (`npm run -s snapctl -- ...` or `npx tsx coordinator/snapctl.ts ...`):
 * wires the CLI (snapctl/main.ts) to the real process, file system and gRPC client. See
 * `snapctl --help` for the commands and exit codes.
 */
import { readFileSync } from 'node:fs';
import { CoordinatorClient } from './grpc/client.js';
import { clientCredentialsFrom } from './grpc/tls.js';
import { connect, credsAuthenticator } from 'nats';
import { readAudit } from './audit.js';
import { runSnapctl, type Connection } from './snapctl/main.js';
import { NATS_ADMIN_COMMANDS, runNatsAdmin } from './snapctl/nats-admin.js';

const argv = process.argv.slice(2);
const io = { stdout: (text: string) => void process.stdout.write(text), stderr: (text: string) => void process.stderr.write(text) };
const code = NATS_ADMIN_COMMANDS.has(argv[0] ?? '') ? await runNatsAdmin(argv, process.env, io) : await runSnapctl(argv, process.env, {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  stdoutIsTTY: process.stdout.isTTY === true,
  readFile: (path) => readFileSync(path, 'utf8'),
  now: Date.now,
  onInterrupt: (handler) => {
    process.on('SIGINT', handler);
    return () => void process.off('SIGINT', handler);
  },
}, (address, connection) => new CoordinatorClient(address, {
  ...(connection.token !== undefined ? { token: connection.token } : {}),
  ...(connection.tls !== undefined ? { credentials: clientCredentialsFrom(connection.tls) } : {}),
  ...(connection.tlsServerName !== undefined ? { tlsServerName: connection.tlsServerName } : {}),
}), async (natsUrl, filter) => {
  // Operator mode: the coordinator's account holds the audit stream (docs/security.md).
  const creds = process.env['SNAPCTL_NATS_CREDS'];
  const nc = await connect({ servers: natsUrl.split(','), name: 'snapctl-audit', ...(creds !== undefined && creds !== '' ? { authenticator: credsAuthenticator(readFileSync(creds)) } : {}) });
  try {
    return await readAudit(nc, filter);
  } finally {
    await nc.close();
  }
});
// Let stdout drain (it may be a pipe) rather than cutting it off with process.exit.
process.exitCode = code;
