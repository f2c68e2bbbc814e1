/**
 * snapagent: the agent daemon's command line.
 *
 *   snapagent --config agent.json [--demo-app tokens] [--transfer-interval-ms 5]
 *   snapagent status --config agent.json      (the freeze status, as JSON)
 *
 * With --demo-app, SIGUSR2 stops the demo apps' transfers, and the next SIGUSR2 starts them again.
 *
 * Exit codes: 0 stopped cleanly (SIGINT/SIGTERM), 1 failed at run time, 2 bad usage or configuration.
 */
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { flagOptions, readConfigFile } from '../adapters/config-schema.js';
import { rootLogger } from '../adapters/logger.js';
import { VERSION } from '../adapters/version.js';
import { TokenApp } from './demo-apps/token-app.js';
import { WriterApp } from './demo-apps/writer-app.js';
import { Agent } from './agent.js';
import { CHANNEL_LIMITS_DEFAULT } from './channels/index.js';
import { AGENT_DEFAULTS, agentConfigFrom, agentConfigSchema, FREEZE_DEFAULTS } from './config.js';
import { checkFreezeSetup } from './freeze.js';
import { loadStateKeyring } from '../adapters/state-crypto.js';
import { processAlive, readFreezeStatus } from './freeze-status.js';
import { unknownHookEntries } from './hooks/index.js';
import { startLocalApi } from './local-api/server.js';

const HELP = `snapagent: the snapshot agent, one per VM

usage: snapagent --config FILE [options]
       snapagent status --config FILE    print the freeze status (JSON): frozen, checkpointId,
                                         frozenAtUnixMs, deadlineAtUnixMs, frozen mounts, last thaw
       snapagent --version

options:
  --config FILE               agent configuration (JSON): tenant, server, nats.servers, apps with
                              their input and output channels, limits. Every key, its default and
                              unit: docs/configuration.md; what the agent does: docs/agent.md.
                              An unknown key is refused, naming the nearest real one.
  --tenant NAME, --server NAME, --nats URL (repeatable), --nats-creds FILE, --log-level LEVEL,
  --state-dir DIR, --hooks-dir DIR
                              set the keys tenant, server, nats.servers, nats.credsFile, logLevel,
                              stateDir and freeze.hooksDir over the file's (environment:
                              SNAPAGENT_TENANT, SNAPAGENT_SERVER, SNAPAGENT_NATS_SERVERS,
                              SNAPAGENT_NATS_CREDS, SNAPAGENT_LOG_LEVEL, SNAPAGENT_STATE_DIR,
                              SNAPAGENT_HOOKS_DIR; also SNAPAGENT_NATS_USER, SNAPAGENT_NATS_PASS,
                              SNAPAGENT_NATS_TOKEN); a flag wins over a variable, a variable over
                              the file. nats.credsFile: the .creds file of snapctl agent enroll
  --demo-app tokens           host the demo token app for every configured app (embedded mode)
  --demo-app writer           host the crash-level demo app: it writes records to its volume
                              (--volume DIR/<app>) and sends their ids downstream
  --volume DIR                with --demo-app writer: the directory holding each app's volume
  --initial-tokens N          tokens each demo app starts with (default 1000)
  --transfer-interval-ms MS   how often each demo app transfers tokens (default 5; 0: never)
  --deliver-delay-ms MS       how long each demo app takes to handle one message (default 0):
                              a slow consumer on purpose
  --version                   print the version and exit
  -h, --help                  this help

signals: SIGINT/SIGTERM/SIGHUP stop the agent, thawing the guest first if it is frozen (further
signals while it stops are logged, not obeyed); with --demo-app, SIGUSR2 stops the demo apps' transfers
and the next SIGUSR2 starts them again (tests use it to quiesce the traffic)

limits (configuration file, defaults):
  heartbeatIntervalMs ${AGENT_DEFAULTS.heartbeatIntervalMs}, triggerWaitMs ${AGENT_DEFAULTS.triggerWaitMs}, controlIdsRememberedMax ${AGENT_DEFAULTS.controlIdsRememberedMax},
  channels.creditWindowMessages ${CHANNEL_LIMITS_DEFAULT.creditWindowMessages}, channels.inFlightBytesMax ${CHANNEL_LIMITS_DEFAULT.inFlightBytesMax},
  channels.outboundQueueMessagesMax ${CHANNEL_LIMITS_DEFAULT.outboundQueueMessagesMax}, channels.creditRefreshMs ${CHANNEL_LIMITS_DEFAULT.creditRefreshMs}

crash consistency (configuration file, "freeze": {...}; see docs/hooks.md), defaults:
  freeze.hooksDir DIR                  hook directory (fsfreeze-hook.d style), default none; a
                                       directory in it that names no configured app is refused
  freeze.mounts [DIR, ...]             mount points for fsfreeze -f / -u, default none
  freeze.sync BOOL                     run sync before fsfreeze, default ${FREEZE_DEFAULTS.sync}
  freeze.hookTimeoutMs MS              one attempt of one hook, then SIGTERM, default ${FREEZE_DEFAULTS.hookTimeoutMs}
  freeze.hookRetriesMax N              further attempts after a failed one, default ${FREEZE_DEFAULTS.hookRetriesMax}
  freeze.hookKillGraceMs MS            from SIGTERM to SIGKILL, default ${FREEZE_DEFAULTS.hookKillGraceMs}
  freeze.freezeDeadlineMsMax MS        longest frozen window, caps the coordinator's deadline, default ${FREEZE_DEFAULTS.freezeDeadlineMsMax}
  freeze.sessionReadyTimeoutMs MS      a hook session's wait for "ready", default ${FREEZE_DEFAULTS.sessionReadyTimeoutMs}
  freeze.sessionReleaseTimeoutMs MS    a hook session's exit after "release", default ${FREEZE_DEFAULTS.sessionReleaseTimeoutMs}
  stateDir DIR                         freeze status file and hook state; never on a frozen mount,
                                       default /run/snapagent/TENANT-SERVER (root)
  The agent thaws by itself at the freeze deadline (watchdog), whether or not the coordinator
  or NATS are still there.

exit codes: 0 stopped cleanly, 1 runtime failure, 2 usage or configuration error`;

/** Why a `.creds` file cannot be used, or undefined; never quotes the file's content. */
function natsCredsProblem(path: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    return `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`;
  }
  if (!text.includes('-----BEGIN NATS USER JWT-----') || !text.includes('-----BEGIN USER NKEY SEED-----')) {
    return `${path} is not a NATS credentials file (a user JWT and seed, as snapctl agent enroll writes)`;
  }
  return undefined;
}

/** `snapagent status`: the freeze status file as JSON, and whether its agent is running. */
async function printStatus(stateDir: string): Promise<number> {
  const read = await readFreezeStatus(stateDir);
  if (!read.ok) {
    console.error(`snapagent: ${read.message}`);
    return 1;
  }
  console.log(JSON.stringify({ ...read.status, agentRunning: processAlive(read.status.pid), stateDir }, null, 2));
  return 0;
}

async function main(): Promise<number> {
  let values: Record<string, unknown>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      options: {
        ...flagOptions(agentConfigSchema),
        config: { type: 'string' },
        'demo-app': { type: 'string' },
        volume: { type: 'string' },
        'initial-tokens': { type: 'string', default: '1000' },
        'transfer-interval-ms': { type: 'string', default: '5' },
        'deliver-delay-ms': { type: 'string', default: '0' },
        version: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: true,
    }));
  } catch (error) {
    console.error(`snapagent: ${error instanceof Error ? error.message : String(error)}\n\n${HELP}`);
    return 2;
  }
  if (values['help'] === true) {
    console.log(HELP);
    return 0;
  }
  if (values['version'] === true) {
    console.log(VERSION);
    return 0;
  }
  const configPath = values['config'];
  if (typeof configPath !== 'string') {
    console.error(`snapagent: --config is required\n\n${HELP}`);
    return 2;
  }
  if (positionals.length > 1 || (positionals.length === 1 && positionals[0] !== 'status')) {
    console.error(`snapagent: unknown command ${positionals.join(' ')}; the only command is status\n\n${HELP}`);
    return 2;
  }
  const file = readConfigFile(configPath);
  const loaded = file.ok ? agentConfigFrom(file.value, process.env, values) : { ok: false as const, problems: [file.problem] };
  if (!loaded.ok) {
    console.error(`snapagent: invalid configuration ${configPath}:\n  ${loaded.problems.join('\n  ')}`);
    return 2;
  }
  if (positionals[0] === 'status') return printStatus(loaded.config.stateDir);
  const freezeProblems = await checkFreezeSetup(loaded.config);
  const hooksDir = loaded.config.freeze.hooksDir;
  if (freezeProblems.length === 0 && hooksDir !== undefined) freezeProblems.push(...(await unknownHookEntries(hooksDir, loaded.config.apps.map((a) => a.name))));
  if (freezeProblems.length > 0) {
    console.error(`snapagent: the freeze setup of ${configPath} is not usable:\n  ${freezeProblems.join('\n  ')}`);
    return 2;
  }
  const keyring = loaded.config.stateEncryption === undefined ? undefined : await loadStateKeyring(loaded.config.stateEncryption);
  if (keyring !== undefined && !keyring.ok) {
    console.error(`snapagent: the state encryption of ${configPath} is not usable:\n  ${keyring.error.join('\n  ')}`);
    return 2;
  }
  const credsProblem = loaded.config.nats.credsFile === undefined ? undefined : natsCredsProblem(loaded.config.nats.credsFile);
  if (credsProblem !== undefined) {
    console.error(`snapagent: the NATS credentials of ${configPath} are not usable: ${credsProblem}`);
    return 2;
  }
  const demo = values['demo-app'] as string | undefined;
  const volumeDir = values['volume'];
  if (demo !== undefined && demo !== 'tokens' && demo !== 'writer') {
    console.error(`snapagent: unknown --demo-app ${demo}; the demo apps are tokens and writer`);
    return 2;
  }
  if (demo === 'writer' && typeof volumeDir !== 'string') {
    console.error('snapagent: --demo-app writer needs --volume DIR');
    return 2;
  }
  const initialTokens = Number(values['initial-tokens']);
  const intervalMs = Number(values['transfer-interval-ms']);
  const deliverDelayMs = Number(values['deliver-delay-ms']);
  if (
    !Number.isFinite(initialTokens) ||
    initialTokens < 0 ||
    !Number.isFinite(intervalMs) ||
    intervalMs < 0 ||
    !Number.isFinite(deliverDelayMs) ||
    deliverDelayMs < 0
  ) {
    console.error('snapagent: --initial-tokens, --transfer-interval-ms and --deliver-delay-ms must be numbers >= 0');
    return 2;
  }
  const config = loaded.config;
  const logger = rootLogger({ level: config.logLevel, bindings: { component: 'agent' } });
  const agent = await Agent.start(config, logger);
  const closers: (() => Promise<void> | void)[] = [];
  if (config.localApiSocket) {
    const api = await startLocalApi({ host: agent, socketPath: config.localApiSocket, logger });
    closers.push(() => api.close());
  }
  if (demo === 'tokens') {
    const apps: TokenApp[] = [];
    for (const a of config.apps) {
      const app = new TokenApp({ initialTokens, transferTokensMax: 10, deliverDelayMs });
      const attached = agent.attach(a.name, app);
      if (!attached.ok) throw new Error(attached.error.message);
      app.bind(attached.link);
      apps.push(app);
    }
    await agent.ready();
    let transfersOn = intervalMs > 0;
    const onToggle = (): void => {
      transfersOn = !transfersOn;
      logger.info({ transfers: transfersOn ? 'on' : 'off' }, 'demo transfers toggled (SIGUSR2)');
    };
    process.on('SIGUSR2', onToggle);
    closers.push(() => {
      process.removeListener('SIGUSR2', onToggle);
    });
    if (intervalMs > 0) {
      const timer = setInterval(() => {
        if (!transfersOn) return;
        for (const app of apps) app.transfer()?.catch(() => undefined);
      }, intervalMs);
      closers.push(() => clearInterval(timer));
    }
  }
  if (demo === 'writer') {
    const writers: WriterApp[] = [];
    for (const a of config.apps) {
      const app = new WriterApp(join(volumeDir as string, a.name));
      const attached = agent.attach(a.name, app);
      if (!attached.ok) throw new Error(attached.error.message);
      app.bind(attached.link);
      writers.push(app);
    }
    await agent.ready();
    const timer = setInterval(() => {
      for (const w of writers) w.tick();
    }, intervalMs);
    closers.push(() => clearInterval(timer));
  }
  // Handlers stay installed while stopping: a second SIGTERM must not kill the agent half-way
  // through a thaw (the default action would leave the guest frozen).
  await new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) {
        logger.warn({ signal }, 'already stopping (thawing first if frozen): signal ignored');
        return;
      }
      stopping = true;
      logger.info({ signal, frozen: agent.freezer.status().frozen }, 'stopping');
      resolve();
    };
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
  });
  // Thaw before anything else can fail or hang.
  await agent.stopFreezing();
  for (const close of closers) await close();
  await agent.stop();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`snapagent: ${error instanceof Error ? error.stack : String(error)}`);
    process.exit(1);
  },
);
