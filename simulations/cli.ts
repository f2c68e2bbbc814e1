/**
 * Entry point of `npm run sim`: wires the CLI (cli-main.ts) to the real process, file system and
 * simulation engine. Everything with a decision in it lives in cli-main.ts and cli-args.ts.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { InternalError, runCli, EXIT } from './cli-main.js';
import { runSimulation } from './engine.js';

const color = process.stdout.isTTY === true && process.env['NO_COLOR'] === undefined;

let code: number;
try {
  code = runCli(
    process.argv.slice(2),
    {
      stdout: (text) => process.stdout.write(text),
      stderr: (text) => process.stderr.write(text),
      color,
      stderrIsTTY: process.stderr.isTTY === true,
      readFile: (path) => readFileSync(path, 'utf8'),
      writeFile: (path, text) => writeFileSync(path, text, 'utf8'),
    },
    runSimulation,
  );
} catch (err) {
  // A bug in the simulator or the core: crash loudly, but say how to get back here.
  const cause = err instanceof InternalError ? err.cause : err;
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  if (cause instanceof Error && cause.stack !== undefined) process.stderr.write(`${cause.stack}\n`);
  if (err instanceof InternalError) process.stderr.write(`reproduce with: ${err.reproduce}\n`);
  code = EXIT.internal;
}
// Let stdout drain (it may be a pipe) rather than cutting it off with process.exit.
process.exitCode = code;
