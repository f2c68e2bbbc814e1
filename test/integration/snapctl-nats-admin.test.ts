/**
 * The operator's path to secured NATS, as docs/security.md gives it, with the real commands:
 * `snapctl nats init` writes the key directory (secrets 0600) and nats-server's configuration,
 * nats-server starts with it, `snapctl tenant create` and `snapctl agent enroll` give an agent a
 * credential that works, `snapctl agent revoke` cuts it off. Bad input is a usage error (exit 2)
 * that changes nothing.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectWithCreds } from '../../coordinator/nats-auth/push.js';
import { ROOT } from '../support/live-processes.js';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.js';

const run = promisify(execFile);

async function snapctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'coordinator/snapctl.ts', ...args], { cwd: ROOT });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('snapctl nats init, tenant create, agent enroll and revoke against a real nats-server', () => {
  let dir: string;
  let keys: string;
  let nats: NatsServerHandle;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'snapctl-nats-'));
    keys = join(dir, 'keys');
    const init = await snapctl('nats', 'init', '--keys-dir', keys, '--config-out', join(dir, 'operator.conf'));
    expect(init.code, init.stderr).toBe(0);
    nats = await startNatsServer({
      configText: readFileSync(join(dir, 'operator.conf'), 'utf8'),
      readyTimeoutMs: 30_000,
      readyCheck: async (url) => {
        const nc = await connectWithCreds(url, join(keys, 'coordinator', 'user.creds'), 'ready', { timeout: 1_000, reconnect: false });
        await nc.close();
      },
    });
  }, 180_000);

  afterAll(async () => {
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the key directory keeps its secrets readable by their owner only', () => {
    for (const f of ['', 'operator.nk', 'system/user.creds', 'coordinator/account.nk', 'coordinator/user.creds']) {
      expect((statSync(join(keys, f)).mode & 0o077).toString(8), f).toBe('0');
    }
  });

  it('an enrolled agent connects; once revoked it is refused', async () => {
    const url = ['--nats', nats.url, '--keys-dir', keys];
    expect((await snapctl('tenant', 'create', 'acme', ...url)).code).toBe(0);
    const creds = join(dir, 's1.creds');
    const enrolled = await snapctl('agent', 'enroll', '--tenant', 'acme', '--server', 's1', '--out', creds, ...url);
    expect(enrolled.code, enrolled.stderr).toBe(0);
    expect(statSync(creds).mode & 0o777).toBe(0o600);
    expect((await snapctl('agent', 'list', '--tenant', 'acme', ...url)).stdout).toBe('s1\n');
    const nc = await connectWithCreds(nats.url, creds, 'agent s1');
    const closed = nc.closed();
    await nc.flush();
    const revoked = await snapctl('agent', 'revoke', '--tenant', 'acme', '--server', 's1', ...url);
    expect(revoked.code, revoked.stderr).toBe(0);
    await closed;
    await expect(connectWithCreds(nats.url, creds, 'agent s1 again')).rejects.toThrow(/Authorization Violation/);
    expect((await snapctl('agent', 'list', '--tenant', 'acme', ...url)).stdout).toBe('');
    // Pushing every account again (a server that lost its resolver) keeps the revocation.
    const pushed = await snapctl('nats', 'push', ...url);
    expect(pushed.code, pushed.stderr).toBe(0);
    await expect(connectWithCreds(nats.url, creds, 'agent s1 after push')).rejects.toThrow(/Authorization Violation/);
  }, 180_000);

  it('bad input is a usage error naming the problem', async () => {
    const url = ['--nats', nats.url, '--keys-dir', keys];
    const unknown = await snapctl('agent', 'enroll', '--tenant', 'nope', '--server', 's1', '--out', join(dir, 'x.creds'), ...url);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('tenant nope does not exist');
    const twice = await snapctl('tenant', 'create', 'acme', ...url);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain('tenant acme exists already');
    const noKeys = await snapctl('tenant', 'create', 'x', '--keys-dir', join(dir, 'none'));
    expect(noKeys.code).toBe(2);
    expect(noKeys.stderr).toContain('is not a NATS key directory');
    const revokeUnknown = await snapctl('agent', 'revoke', '--tenant', 'acme', '--server', 's9', ...url);
    expect(revokeUnknown.code).toBe(2);
    expect(revokeUnknown.stderr).toContain('no agent of server s9');
    const noSubject = await snapctl('agent', 'enroll', '--tenant', 'acme', '--server', 's2', '--out', join(dir, 'y.creds'), '--log-publish', 'ORDERS', ...url);
    expect(noSubject.code).toBe(2);
    expect(noSubject.stderr).toContain('--log-publish takes STREAM:SUBJECT');
    const wildcard = await snapctl('agent', 'enroll', '--tenant', 'acme', '--server', 's2', '--out', join(dir, 'y.creds'), '--log-publish', 'ORDERS:ORDERS.>', ...url);
    expect(wildcard.code).toBe(2);
    expect(wildcard.stderr).toContain('log subject "ORDERS.>" must be dot-separated tokens');
    // The control: well formed, the same enrollment is made.
    const fine = await snapctl('agent', 'enroll', '--tenant', 'acme', '--server', 's2', '--out', join(dir, 'y.creds'), '--log-publish', 'ORDERS:ORDERS.s2.A.s3.B', '--log-read', 'ORDERS', ...url);
    expect(fine.code, fine.stderr).toBe(0);
  }, 180_000);
});
