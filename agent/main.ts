/**
 * snapagent: the agent daemon's command line.
 *
 *   snapagent --config agent.json [--demo-app tokens] [--transfer-interval-ms 5]
 *
 * Exit codes: 0 stopped cleanly (SIGINT/SIGTERM), 1 failed at run time, 2 bad usage or configuration.
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { TokenApp } from '../examples/token-app.js';
import { Agent } from './agent.js';
import { loadAgentConfig } from './config.js';
import { startLocalApi } from './local-api/server.js';

const HELP = `snapagent: the snapshot agent, one per VM

usage: snapagent --config FILE [options]

options:
  --config FILE               agent configuration (JSON): tenant, server, nats.servers, apps with
                              their input and output channels, limits (see docs/agent.md)
  --demo-app tokens           host the demo token app for every configured app (embedded mode)
  --initial-tokens N          tokens each demo app starts with (default 1000)
  --transfer-interval-ms MS   how often each demo app transfers tokens (default 5)
  -h, --help                  this help

limits (configuration file, defaults):
  heartbeatIntervalMs 2000, triggerWaitMs 2000, controlIdsRememberedMax 4096,
  channels.creditWindowMessages 256, channels.outboundQueueMessagesMax 10000,
  channels.creditRefreshMs 1000

exit codes: 0 stopped cleanly, 1 runtime failure, 2 usage or configuration error`;

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        config: { type: 'string' },
        'demo-app': { type: 'string' },
        'initial-tokens': { type: 'string', default: '1000' },
        'transfer-interval-ms': { type: 'string', default: '5' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (error) {
    console.error(`snapagent: ${error instanceof Error ? error.message : String(error)}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.config) {
    console.error(`snapagent: --config is required\n\n${HELP}`);
    return 2;
  }
  const loaded = loadAgentConfig(values.config);
  if (!loaded.ok) {
    console.error(`snapagent: invalid configuration ${values.config}:\n  ${loaded.problems.join('\n  ')}`);
    return 2;
  }
  const demo = values['demo-app'];
  if (demo !== undefined && demo !== 'tokens') {
    console.error(`snapagent: unknown --demo-app ${demo}; the only demo app is tokens`);
    return 2;
  }
  const initialTokens = Number(values['initial-tokens']);
  const intervalMs = Number(values['transfer-interval-ms']);
  if (!Number.isFinite(initialTokens) || initialTokens < 0 || !Number.isFinite(intervalMs) || intervalMs <= 0) {
    console.error('snapagent: --initial-tokens must be >= 0 and --transfer-interval-ms > 0');
    return 2;
  }
  const config = loaded.config;
  const logger = pino({ level: config.logLevel, base: { component: 'agent' } });
  const agent = await Agent.start(config, logger);
  const closers: (() => Promise<void> | void)[] = [];
  if (config.localApiSocket) {
    const api = await startLocalApi({ host: agent, socketPath: config.localApiSocket, logger });
    closers.push(() => api.close());
  }
  if (demo === 'tokens') {
    const apps: TokenApp[] = [];
    for (const a of config.apps) {
      const app = new TokenApp({ initialTokens, transferTokensMax: 10 });
      const attached = agent.attach(a.name, app);
      if (!attached.ok) throw new Error(attached.error.message);
      app.bind(attached.link);
      apps.push(app);
    }
    await agent.ready();
    const timer = setInterval(() => {
      for (const app of apps) app.transfer()?.catch(() => undefined);
    }, intervalMs);
    closers.push(() => clearInterval(timer));
  }
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
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
