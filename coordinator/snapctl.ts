/**
 * Entry point of `snapctl` (`npm run -s snapctl -- ...` or `npx tsx coordinator/snapctl.ts ...`):
 * wires the CLI (snapctl/main.ts) to the real process, file system and gRPC client. See
 * `snapctl --help` for the commands and exit codes.
 */
import { readFileSync } from 'node:fs';
import { CoordinatorClient } from './grpc/client.js';
import { runSnapctl } from './snapctl/main.js';

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
}, (address) => new CoordinatorClient(address));
// Let stdout drain (it may be a pipe) rather than cutting it off with process.exit.
process.exitCode = code;
