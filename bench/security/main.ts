/**
 * `npm run security-check -- [--json] [--fuzz N] [--seed S]`: the security suite (./run.ts). Progress
 * goes to stderr as pino logs; with --json stdout gets exactly one JSON line, the report, else a
 * summary for people. Exit code 0 only when nothing got through and the checkpoints after the fuzz
 * completed; 1 otherwise; 2 on a usage error.
 */
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { passed, runSecurity, securityOptionsDefault, type SecurityOptions, type SecurityReport } from './run.js';

const HELP = `npm run security-check -- [options]

Attacks a live secured system (NATS with tenants as accounts and agents as users, a coordinator
serving TLS with tokens, two tenants with three agents each, every daemon a process of its own):
forged messages, reads of other tenants' subjects and bucket, the gRPC API without or beyond its
credentials, malformed messages; prints what got through (docs/security.md, "The security suite").

  --fuzz N            malformed messages to publish on the subjects the daemons read (default ${securityOptionsDefault.fuzzCount})
  --seed S            the PRNG seed that picks them (default: a random one, printed in the report)
  --checkpoint-timeout-ms MS
                      how long each checkpoint of the run may take (default ${securityOptionsDefault.checkpointTimeoutMs})
  --keep-logs         keep every daemon's log (kept anyway when something got through)
  --json              print the report as one JSON line on stdout
  --log-level LEVEL   progress on stderr (default info)
  -h, --help          this help

exit codes: 0 nothing got through and the checkpoints after the fuzz completed, 1 otherwise, 2 usage error`;

function count(text: string | undefined, fallback: number, name: string, min: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < min || !Number.isSafeInteger(Number(text))) throw new Error(`--${name} must be an integer >= ${min}, got ${text}`);
  return Number(text);
}

function summary(r: SecurityReport, fuzzCount: number): string {
  const lines = [
    `security suite, seed ${r.seed}: ${passed(r, fuzzCount) ? 'PASSED' : 'FAILED'}`,
    `  forgery   ${r.forgeries_accepted} accepted of ${r.forgeries_tried} tried (after ${r.forgery_controls_delivered} of ${r.forgery_controls_sent} rightful messages delivered)`,
    `  reads     ${r.reads_succeeded} succeeded of ${r.reads_tried} tried`,
    ...r.forgery_findings.map((f) => `              ${f.what} on ${f.subject}: ${f.refused ? 'refused' : 'not refused'}, ${f.delivered ? 'delivered' : 'not delivered'}`),
    ...(r.forgery_state_changed ? ["              the coordinator's view of agents, plans and checkpoints changed during the forgeries"] : []),
    `  API       ${r.api_denials_missing} denials missing of ${r.api_denials_expected} expected, over ${r.api_methods} methods`,
    ...r.api_missing.map((f) => `              ${f.method} by ${f.caller} (${f.case}): expected ${f.expected}, got ${f.got}: ${f.message}`),
    `  fuzz      ${r.fuzzed} messages on ${r.fuzz_subjects} subjects (${Object.entries(r.fuzz_by_mutation).map(([k, v]) => `${v} ${k}`).join(', ')}); the daemons logged ${r.fuzz_malformed_logged} as malformed`,
    `  after it  ${Object.entries(r.checkpoints_after_fuzz).map(([t, s]) => `${t}: ${s}`).join('; ')}`,
    `  crashes   ${r.crashes}${r.crashed.length > 0 ? ` (${r.crashed.join(', ')})` : ''}`,
    `  took ${Math.round(r.duration_ms / 1_000)} s${r.logs !== undefined ? `; logs in ${r.logs}` : ''}`,
  ];
  return lines.join('\n');
}

async function main(): Promise<number> {
  let options: SecurityOptions;
  let json: boolean;
  let level: string;
  try {
    const { values } = parseArgs({
      options: {
        fuzz: { type: 'string' },
        seed: { type: 'string' },
        'checkpoint-timeout-ms': { type: 'string' },
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
      fuzzCount: count(values.fuzz, securityOptionsDefault.fuzzCount, 'fuzz', 0),
      seed: count(values.seed, randomInt(1, 2 ** 31), 'seed', 0),
      checkpointTimeoutMs: count(values['checkpoint-timeout-ms'], securityOptionsDefault.checkpointTimeoutMs, 'checkpoint-timeout-ms', 1),
      keepLogs: values['keep-logs'],
    };
    json = values.json;
    level = values['log-level'];
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n\n${HELP}`);
    return 2;
  }
  const log = pino({ level }, pino.destination(2));
  const report = await runSecurity(options, log);
  console.log(json ? JSON.stringify(report) : summary(report, options.fuzzCount));
  return passed(report, options.fuzzCount) ? 0 : 1;
}

// Stopped from outside: exit, so that the daemons' exit hooks kill them instead of leaving them behind.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(signal === 'SIGINT' ? 130 : 143));

main()
  .catch((error: unknown) => {
    console.error(`security suite failed: ${error instanceof Error ? error.stack : String(error)}`);
    return 1;
  })
  .then((code) => process.exit(code));
