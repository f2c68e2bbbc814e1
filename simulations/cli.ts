/**
 * Entry point of `npm run sim`: wires the CLI (cli-main.ts) to the real process, file system and
 * simulation engine. Everything with a decision in it lives in cli-main.ts and cli-args.ts.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { InternalError, runCli, EXIT } from './cli-main.js';
import { runSimulation } from './engine.js';

const color = process.stdout.isTTY === true && process.env['NO_COLOR'] === undefined;

/**
 * The reader of stdout went away (`sim ... | head -3`). As for any CLI in a pipe, that is the end of
 * the output, not a failure: stop at once, quietly, with 0, rather than finish a sweep nobody reads.
 */
class StdoutClosed extends Error {}

function isBrokenPipe(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | null | undefined)?.code === 'EPIPE';
}

// A failed write also emits 'error' on a later tick; without a listener Node crashes on it.
process.stdout.on('error', (err) => {
  if (isBrokenPipe(err)) process.exit(EXIT.ok);
  throw err;
});

function writeStdout(text: string): void {
  process.stdout.write(text);
  // On a pipe the write is synchronous and sets `errored` at once, so the run stops at the first
  // line nobody can read instead of when the event loop next turns.
  if (isBrokenPipe(process.stdout.errored)) throw new StdoutClosed();
}

let code: number;
try {
  code = runCli(
    process.argv.slice(2),
    {
      stdout: writeStdout,
      stderr: (text) => process.stderr.write(text),
      color,
      stderrIsTTY: process.stderr.isTTY === true,
      readFile: (path) => readFileSync(path, 'utf8'),
      writeFile: (path, text) => writeFileSync(path, text, 'utf8'),
    },
    runSimulation,
  );
} catch (err) {
  if (err instanceof StdoutClosed) process.exit(EXIT.ok);
  // A bug in the simulator or the core: crash loudly, but say how to get back here.
  const cause = err instanceof InternalError ? err.cause : err;
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  if (cause instanceof Error && cause.stack !== undefined) process.stderr.write(`${cause.stack}\n`);
  if (err instanceof InternalError) process.stderr.write(`reproduce with: ${err.reproduce}\n`);
  code = EXIT.internal;
}
// Let stdout drain (it may be a pipe) rather than cutting it off with process.exit.
process.exitCode = code;
