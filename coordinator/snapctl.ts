/**
 * Entry point of `snapctl` (`npm run -s snapctl -- ...` or `npx tsx coordinator/snapctl.ts ...`):
 * wires the CLI (snapctl/main.ts) to the real process, file system and gRPC client. See
 * `snapctl --help` for the commands and exit codes.
 */
import { readFileSync } from 'node:fs';
import { CoordinatorClient } from './grpc/client.js';
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';
import { connect } from 'nats';
import { readAudit } from './audit.js';
import { runSnapctl, type Connection } from './snapctl/main.js';

function tlsCredentials(tls: NonNullable<Connection['tls']>): ChannelCredentials {
  const pem = (text: string | undefined): Buffer | null => (text === undefined ? null : Buffer.from(text));
  return credentials.createSsl(pem(tls.ca), pem(tls.key), pem(tls.cert));
}

const code = await runSnapctl(process.argv.slice(2), process.env, {
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
  ...(connection.tls !== undefined ? { credentials: tlsCredentials(connection.tls) } : {}),
}), async (natsUrl, filter) => {
  const nc = await connect({ servers: natsUrl.split(','), name: 'snapctl-audit' });
  try {
    return await readAudit(nc, filter);
  } finally {
    await nc.close();
  }
});
// Let stdout drain (it may be a pipe) rather than cutting it off with process.exit.
process.exitCode = code;
