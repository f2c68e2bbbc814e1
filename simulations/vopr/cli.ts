/** Entry point of `npm run vopr`: the CLI (cli-main.ts) wired to the process and the world (run.ts). */
import { runVopr } from './cli-main.js';
import { runSeed } from './run.js';

process.exitCode = runVopr(process.argv.slice(2), { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t) }, runSeed);
