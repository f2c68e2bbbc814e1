/**
 * The one-schema-per-daemon rules (adapters/config-schema.ts, coordinator/config-schema.ts): a
 * misspelt key is refused and the nearest real key suggested, every problem names its key path,
 * bad values (negative timeouts, wrong types) are refused, and the environment and the flags land
 * on the same keys as the file, flags winning.
 */
import { describe, expect, it } from 'vitest';
import { editDistance, flagOptions, loadConfig, nearest, parseWith } from '../../adapters/config-schema.js';
import { agentConfigFrom, agentConfigSchema } from '../../agent/config.js';
import { coordinatorConfigSchema } from '../../coordinator/config-schema.js';

const CLI = { extra: { config: { type: 'string' as const }, help: { type: 'boolean' as const } } };

describe('config schema: keys', () => {
  it('edit distance counts a swap of neighbours as one edit', () => {
    expect(editDistance('natsUrl', 'natsUrll')).toBe(1);
    expect(editDistance('retain', 'retian')).toBe(1);
    expect(editDistance('listen', 'timeoutMs')).toBeGreaterThan(3);
  });

  it('the nearest key is suggested only when it is near', () => {
    expect(nearest('natsUrll', ['natsUrl', 'listen'])).toBe('natsUrl');
    expect(nearest('wholly-different', ['natsUrl', 'listen'])).toBeUndefined();
  });
});

describe('coordinator config', () => {
  it('empty: every default from the schema, no metrics endpoint', () => {
    const r = parseWith(coordinatorConfigSchema, {});
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config).toMatchObject({ natsUrl: 'nats://127.0.0.1:4222', listen: '127.0.0.1:50051', logLevel: 'info', schedules: [], metrics: { host: '127.0.0.1' } });
    expect(r.config.metrics.port).toBeUndefined();
  });

  it('one misspelt top-level key: refused, named, and the real key suggested', () => {
    const r = parseWith(coordinatorConfigSchema, { natsUrll: 'nats://127.0.0.1:4222' });
    expect(r).toEqual({ ok: false, problems: ['natsUrll is not a setting; did you mean natsUrl?'] });
  });

  it('a misspelt nested key names its whole path', () => {
    const r = parseWith(coordinatorConfigSchema, { metrics: { prot: 9100 } });
    expect(r.ok ? [] : r.problems).toEqual(['metrics.prot is not a setting; did you mean metrics.port?']);
  });

  it('a key nothing resembles lists the real keys', () => {
    const r = parseWith(coordinatorConfigSchema, { metrics: { zzzzzzzz: 1 } });
    expect(r.ok ? [] : r.problems).toEqual(['metrics.zzzzzzzz is not a setting; the settings of metrics are port, host']);
  });

  it('negative and zero timeouts, wrong types and bad schedules: one problem per key, each named', () => {
    const r = parseWith(coordinatorConfigSchema, { timeoutMs: -5, restoreTimeoutMs: 0, retain: '3', listen: 'nowhere', logLevel: 'crash', schedules: ['plan=a'], metrics: { port: 70_000 } });
    expect(r.ok ? [] : r.problems).toEqual([
      'listen must be HOST:PORT, got "nowhere"',
      'timeoutMs must be an integer >= 1, got -5',
      'retain must be an integer >= 1, got "3"',
      'restoreTimeoutMs must be an integer >= 1, got 0',
      'schedules[0] interval=MS is required, got "plan=a"',
      'logLevel must be one of fatal, error, warn, info, debug, trace, silent, got "crash"',
      'metrics.port must be an integer from 0 to 65535, got 70000',
    ]);
  });

  it('flags win over the environment, which wins over the file; flag text is judged as the key type', () => {
    const loaded = loadConfig(
      coordinatorConfigSchema,
      ['--metrics-port', '9100', '--schedule', 'plan=a,interval=5', '--retain', '7'],
      { NATS_URL: 'nats://env:4222', SNAPCOORD_RETAIN: '3', SNAPCOORD_METRICS_HOST: '0.0.0.0', SNAPCOORD_SCHEDULES: 'plan=b,interval=3;plan=c,interval=4' },
      CLI,
    );
    expect(loaded.ok, loaded.ok ? '' : loaded.problems.join('; ')).toBe(true);
    if (!loaded.ok) return;
    expect(loaded.config).toMatchObject({ natsUrl: 'nats://env:4222', retain: 7, metrics: { port: 9100, host: '0.0.0.0' } });
    expect(loaded.config.schedules.map((s) => s.planId)).toEqual(['a']);
    const fromEnv = loadConfig(coordinatorConfigSchema, [], { SNAPCOORD_SCHEDULES: 'plan=b,interval=3;plan=c,interval=4' }, CLI);
    expect(fromEnv.ok && fromEnv.config.schedules.map((s) => s.planId)).toEqual(['b', 'c']);
  });

  it('a flag with a value of the wrong type is refused naming the key, not the flag', () => {
    const loaded = loadConfig(coordinatorConfigSchema, ['--timeout-ms', '10s'], {}, CLI);
    expect(loaded).toMatchObject({ ok: false, kind: 'config', problems: ['timeoutMs must be an integer >= 1, got "10s"'] });
  });

  it('an unknown flag is a usage error', () => {
    const loaded = loadConfig(coordinatorConfigSchema, ['--natsurl', 'x'], {}, CLI);
    expect(loaded).toMatchObject({ ok: false, kind: 'usage' });
  });
});

describe('agent config: flags and environment', () => {
  const file = { tenant: 't1', server: 's1', nats: { servers: ['nats://file:4222'] }, apps: [{ name: 'APP1' }] };

  it('a variable replaces the file value, a list variable splits on commas, a repeated flag wins over both', () => {
    const fromEnv = agentConfigFrom(file, { SNAPAGENT_NATS_SERVERS: 'nats://a:4222, nats://b:4222', SNAPAGENT_LOG_LEVEL: 'debug', SNAPAGENT_HOOKS_DIR: '/etc/snapagent/hooks.d' }, {});
    expect(fromEnv.ok && fromEnv.config).toMatchObject({ nats: { servers: ['nats://a:4222', 'nats://b:4222'] }, logLevel: 'debug', freeze: { hooksDir: '/etc/snapagent/hooks.d' } });
    const fromFlags = agentConfigFrom(file, { SNAPAGENT_NATS_SERVERS: 'nats://a:4222' }, { nats: ['nats://c:4222', 'nats://d:4222'], 'state-dir': '/run/x' });
    expect(fromFlags.ok && fromFlags.config).toMatchObject({ nats: { servers: ['nats://c:4222', 'nats://d:4222'] }, stateDir: '/run/x' });
  });

  it('a bad value from a variable is named by its key', () => {
    expect(agentConfigFrom(file, { SNAPAGENT_STATE_DIR: 'relative' }, {})).toEqual({ ok: false, problems: ['stateDir must be an absolute path, got "relative"'] });
  });

  it('the agent has exactly the configuration flags its --help names', () => {
    const flags = Object.keys(flagOptions(agentConfigSchema)).sort();
    expect(flags).toEqual(['hooks-dir', 'log-level', 'nats', 'nats-creds', 'server', 'state-dir', 'tenant']);
  });
});
