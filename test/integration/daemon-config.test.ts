/**
 * Bad configuration stops a daemon at start-up (exit 2), naming the key: a misspelt top-level key
 * (with the real key suggested), a negative timeout, a wrong type from the environment, and a hook
 * directory holding a directory that names no configured app. Nothing here needs NATS: each
 * daemon must refuse before it connects.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'snap-daemon-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(script: string, args: readonly string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: ROOT, env: { ...process.env, ...env }, timeout: 60_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function file(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(content));
  return path;
}

const agentBase = { tenant: 't1', server: 's1', nats: { servers: ['nats://127.0.0.1:1'] }, apps: [{ name: 'APP1' }], stateDir: join(dir, 'state') };

describe('daemons refuse a bad configuration at start-up, naming the key', () => {
  it('coordinator: one misspelt top-level key fails start-up, naming it and the real key', async () => {
    const r = await run('coordinator/main.ts', ['--config', file('coord-typo.json', { natsUrll: 'nats://127.0.0.1:4222', listen: '127.0.0.1:0' })]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('natsUrll is not a setting; did you mean natsUrl?');
    expect(r.stdout).not.toContain('listening on');
  });

  it('coordinator: a negative timeout from the environment fails start-up naming the key', async () => {
    const r = await run('coordinator/main.ts', ['--listen', '127.0.0.1:0'], { SNAPCOORD_RESTORE_TIMEOUT_MS: '-1' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('restoreTimeoutMs must be an integer >= 1, got -1');
  });

  it('agent: a misspelt key and a negative timeout, both named', async () => {
    const r = await run('agent/main.ts', ['--config', file('agent-typo.json', { ...agentBase, heartbeatIntervalMS: 100, freeze: { hookTimeoutMs: -5 } })]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('heartbeatIntervalMS is not a setting; did you mean heartbeatIntervalMs?');
    expect(r.stderr).toContain('freeze.hookTimeoutMs must be an integer >= 1, got -5');
  });

  it('agent: a hook directory of an app that is not configured is refused, with the app meant', async () => {
    const hooks = join(dir, 'hooks');
    mkdirSync(join(hooks, 'APP01'), { recursive: true });
    const r = await run('agent/main.ts', ['--config', file('agent-hooks.json', { ...agentBase, freeze: { hooksDir: hooks } })]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`freeze.hooksDir: ${join(hooks, 'APP01')} is a directory that names no configured app (apps: APP1); did you mean APP1?`);
  });

  it('agent: a NATS credentials file that is missing or is not one stops it (exit 2), naming the file and not its content', async () => {
    const missing = await run('agent/main.ts', ['--config', file('agent-creds-missing.json', { ...agentBase, nats: { ...agentBase.nats, credsFile: join(dir, 'none.creds') } })]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`cannot read ${join(dir, 'none.creds')}: ENOENT`);
    const wrong = join(dir, 'wrong.creds');
    writeFileSync(wrong, 'SUAM-secret-looking-text');
    const notCreds = await run('agent/main.ts', ['--config', file('agent-creds-wrong.json', { ...agentBase, nats: { ...agentBase.nats, credsFile: wrong } })]);
    expect(notCreds.code).toBe(2);
    expect(notCreds.stderr).toContain(`${wrong} is not a NATS credentials file`);
    expect(notCreds.stderr).not.toContain('SUAM-secret-looking-text');
  });

  it('coordinator: a NATS credentials file it cannot read stops it (exit 2) before it connects', async () => {
    const r = await run('coordinator/main.ts', ['--listen', '127.0.0.1:0', '--nats', 'nats://127.0.0.1:1', '--nats-creds', join(dir, 'none.creds')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`cannot read the NATS credentials ${join(dir, 'none.creds')}: ENOENT`);
  });

  it('both print the package version', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const [agent, coordinator] = await Promise.all([run('agent/main.ts', ['--version']), run('coordinator/main.ts', ['--version'])]);
    expect(agent).toMatchObject({ code: 0, stdout: `${version}\n` });
    expect(coordinator).toMatchObject({ code: 0, stdout: `${version}\n` });
  });
});
