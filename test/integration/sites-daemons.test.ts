/**
 * Copies of checkpoints at another site with the daemons as an operator runs them (docs/sites.md):
 * two deployments, each a nats-server with its coordinator daemon and agent daemons, the primary
 * configured to copy its plan's checkpoints to the DR site (copy_to_sites), snapctl as a child
 * process. With the primary's coordinator, agents and nats-server stopped, `snapctl restore
 * --from-site` at the DR site puts the copied checkpoint into the DR site's agents.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cyclicPlan, LiveSystem, ROOT, value, waitUntil } from '../support/live-processes.js';

const TENANT = 'ops';
const PLAN = cyclicPlan('demo', TENANT, ['s1', 's2', 's3']);
const DR_PLAN = cyclicPlan('demo-dr', TENANT, ['t1', 't2', 't3']);
const SERVERS: Record<string, string> = { s1: 't1', s2: 't2', s3: 't3' };

interface Outcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

let dir: string;
let dr: LiveSystem;
let primary: LiveSystem;

function configFile(name: string, config: unknown): string {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(config));
  return file;
}

function snapctl(address: string, args: readonly string[]): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', 'coordinator/snapctl.ts', '--address', address, ...args], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number') return reject(err);
      resolve({ code: err === null ? 0 : (err.code as number), stdout, stderr });
    });
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sites-daemons-'));
  // The DR site: its coordinator reads copies from its own NATS, configured as the site "dr".
  dr = await LiveSystem.start({
    plan: DR_PLAN,
    agents: { initialTokens: 0, transferIntervalMs: 0 },
    coordinatorArgs: (url) => ['--config', configFile('dr', { siteName: 'dr', sites: [{ name: 'dr', natsUrl: url }] })],
  });
  primary = await LiveSystem.start({
    plan: PLAN,
    agents: { initialTokens: 1_000, transferIntervalMs: 5 },
    coordinatorArgs: ['--config', configFile('primary', { siteName: 'primary', sites: [{ name: 'dr', natsUrl: dr.nats.url }] })],
  });
}, 120_000);

afterAll(async () => {
  await primary?.stop();
  await dr?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('sites with the daemons', () => {
  it('a plan copying to an unconfigured site is refused; with copy_to_sites dr each completed checkpoint is copied there and show lists the copy', async () => {
    const current = value(await primary.client.getPlan('demo'), 'GetPlan');
    const refused = await primary.client.registerPlan({ ...PLAN, copyToSites: ['mars'] }, current.revision);
    expect(refused.ok ? 'registered' : refused.error).toMatchObject({ codeName: 'INVALID_ARGUMENT', message: expect.stringMatching(/mars, which is not a configured site; the configured sites are dr/) });
    value(await primary.client.registerPlan({ ...PLAN, copyToSites: ['dr'] }, current.revision), 'RegisterPlan with copy_to_sites');

    const done = await primary.take({ planId: 'demo' });
    expect(done.state).toBe('completed');
    const copied = await waitUntil('the automatic copy to dr', async () => {
      const c = await primary.client.getCheckpoint(done.id);
      return c.ok && (c.value.copies ?? []).length > 0 ? c.value : undefined;
    }, { timeoutMs: 30_000, intervalMs: 100 });
    expect(copied.copies).toEqual([{ site: 'dr', state: 'copied', copiedAtUnixMs: expect.any(Number), lagMs: expect.any(Number) }]);
    const show = await snapctl(primary.address, ['show', String(done.id)]);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/^dr +copied /m);
    const list = await snapctl(primary.address, ['list', '--plan', 'demo']);
    expect(list.stdout).toMatch(/COPIES/);
  }, 90_000);

  it('snapctl copy to a site that is not configured exits 1 with NOT_FOUND; to dr it prints the lag', async () => {
    const done = await primary.take({ planId: 'demo' });
    const unknown = await snapctl(primary.address, ['copy', String(done.id), '--site', 'mars']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/NOT_FOUND.*site mars is not configured; the configured sites are dr/);
    const copied = await snapctl(primary.address, ['copy', String(done.id), '--site', 'dr']);
    expect(copied.code, copied.stderr).toBe(0);
    expect(copied.stdout).toMatch(new RegExp(`^checkpoint ${done.id} copied to site dr and verified there, \\S+ after it completed`));
  }, 60_000);

  it('with the primary site stopped, snapctl restore --from-site dr puts the copied checkpoint into the DR agents', async () => {
    const done = await primary.take({ planId: 'demo' });
    expect(done.state).toBe('completed');
    const copy = await snapctl(primary.address, ['copy', String(done.id), '--site', 'dr']);
    expect(copy.code, copy.stderr).toBe(0);
    const expected = (await primary.tokens(done.id)).byApp;
    expect(Object.values(expected).reduce((a, b) => a + b, 0)).toBe(3_000);

    await primary.stop();

    const listed = await snapctl(dr.address, ['--json', 'copies', '--site', 'dr', '--plan', 'demo']);
    expect(listed.code, listed.stderr).toBe(0);
    const copies = (JSON.parse(listed.stdout) as { copies: { sourceSite: string; sourceCheckpointId: number }[] }).copies;
    expect(copies.some((c) => c.sourceSite === 'primary' && c.sourceCheckpointId === done.id)).toBe(true);

    const restored = await snapctl(dr.address, ['restore', String(done.id), '--map', 's1=t1,s2=t2,s3=t3', '--from-site', 'dr']);
    expect(restored.code, restored.stderr).toBe(0);
    const imported = Number(/imported here as checkpoint (\d+)/.exec(restored.stdout)?.[1]);
    expect(imported).toBeGreaterThan(0);
    const shown = await snapctl(dr.address, ['show', String(imported)]);
    expect(shown.stdout).toMatch(new RegExp(`^imported +from site dr: checkpoint ${done.id} of site primary`, 'm'));

    // The DR apps never send, so their next checkpoint holds exactly what the restore gave them.
    const next = await dr.take({ planId: 'demo-dr' });
    expect(next.state).toBe('completed');
    const held = (await dr.tokens(next.id)).byApp;
    expect(held).toEqual(Object.fromEntries(Object.entries(expected).map(([who, n]) => [`${SERVERS[who.split('/')[0] ?? ''] ?? ''}/${who.split('/')[1] ?? ''}`, n])));
  }, 120_000);
});
