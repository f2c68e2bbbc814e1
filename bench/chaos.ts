/**
 * `npm run chaos -- --checkpoints N [--seed S] [--json]`: the chaos run (bench/chaos-run.ts). Progress
 * goes to stderr as pino logs; with --json stdout gets exactly one JSON line, the report. Exit code
 * 0 only when nothing was inconsistent, frozen past its deadline, lost, leaked or stuck and at least
 * 80% of the checkpoints completed; 1 otherwise; 2 on a usage error.
 */
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { chaosOptionsDefault, passed, runChaos, type ChaosOptions } from './chaos-run.js';

const HELP = `npm run chaos -- [options]

  --checkpoints N     manual checkpoints to request (default ${chaosOptionsDefault.checkpoints})
  --seed S            the PRNG seed that picks the faults (default: a random one, printed)
  --interval-ms MS    pause between manual checkpoints (default ${chaosOptionsDefault.intervalMs})
  --periodic-ms MS    the plan's periodic schedule, 0 for none (default ${chaosOptionsDefault.periodicMs})
  --fault-every N     a fault every N manual checkpoints on average (default ${chaosOptionsDefault.faultEvery})
  --rollback-every N  a rollback every N manual checkpoints on average (default ${chaosOptionsDefault.rollbackEvery})
  --keep-logs         keep every process's log (kept anyway when the run fails)
  --json              print the report as one JSON line on stdout
  --log-level LEVEL   progress on stderr (default info)`;

function count(text: string | undefined, fallback: number, name: string, min: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < min) throw new Error(`--${name} must be an integer >= ${min}, got ${text}`);
  return Number(text);
}

async function main(): Promise<number> {
  let options: ChaosOptions;
  let json: boolean;
  let level: string;
  try {
    const { values } = parseArgs({
      options: {
        checkpoints: { type: 'string' },
        seed: { type: 'string' },
        'interval-ms': { type: 'string' },
        'periodic-ms': { type: 'string' },
        'fault-every': { type: 'string' },
        'rollback-every': { type: 'string' },
        'keep-logs': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        'log-level': { type: 'string', default: 'info' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    options = {
      checkpoints: count(values.checkpoints, chaosOptionsDefault.checkpoints, 'checkpoints', 1),
      seed: count(values.seed, randomInt(1, 2 ** 31), 'seed', 0),
      intervalMs: count(values['interval-ms'], chaosOptionsDefault.intervalMs, 'interval-ms', 0),
      periodicMs: count(values['periodic-ms'], chaosOptionsDefault.periodicMs, 'periodic-ms', 0),
      faultEvery: count(values['fault-every'], chaosOptionsDefault.faultEvery, 'fault-every', 1),
      rollbackEvery: count(values['rollback-every'], chaosOptionsDefault.rollbackEvery, 'rollback-every', 1),
      initialTokens: chaosOptionsDefault.initialTokens,
      checkpointTimeoutMs: chaosOptionsDefault.checkpointTimeoutMs,
      keepLogs: values['keep-logs'],
    };
    json = values.json;
    level = values['log-level'];
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n\n${HELP}`);
    return 2;
  }
  const log = pino({ level }, pino.destination(2));
  const report = await runChaos(options, log);
  if (json) console.log(JSON.stringify(report));
  else console.error(JSON.stringify(report, null, 2));
  return passed(report) ? 0 : 1;
}

main()
  .catch((error: unknown) => {
    console.error(`chaos run failed: ${error instanceof Error ? error.stack : String(error)}`);
    return 1;
  })
  .then((code) => process.exit(code));
