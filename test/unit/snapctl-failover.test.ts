/**
 * snapctl with several coordinators (`--address a,b`): a call answered UNAVAILABLE (a standby's
 * NOT_LEADER, or a coordinator that cannot be reached) is made on the next; the one that served
 * stays the first choice.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import type { CallError } from '../../coordinator/grpc/client.js';
import { failoverClient } from '../../coordinator/snapctl/failover.js';
import { runSnapctl, type SnapctlClient, type SnapctlIo } from '../../coordinator/snapctl/main.js';

const notLeader: CallError = { code: GrpcStatus.UNAVAILABLE, codeName: 'UNAVAILABLE', reason: 'NOT_LEADER', message: 'NOT_LEADER: this coordinator is a standby; the leader is at b:50051' };

/** A fake coordinator: every call answers `error`, or ok with its own name. */
function fake(name: string, error: CallError | undefined, calls: string[], closed: string[]): SnapctlClient {
  return new Proxy({} as SnapctlClient, {
    get: (_, key) =>
      key === 'close'
        ? () => void closed.push(name)
        : async () => {
            calls.push(`${name}.${String(key)}`);
            return error === undefined ? { ok: true, value: { items: [], nextPageToken: '', served: name } } : { ok: false, error };
          },
  });
}

describe('several coordinators', () => {
  it('a standby\'s NOT_LEADER sends the call on to the next, which then stays the first choice', async () => {
    const calls: string[] = [];
    const closed: string[] = [];
    const clients: Record<string, SnapctlClient> = { a: fake('a', notLeader, calls, closed), b: fake('b', undefined, calls, closed) };
    const c = failoverClient(['a', 'b'], (address) => clients[address] as SnapctlClient);
    expect(await c.listPlans(undefined, 10, '')).toMatchObject({ ok: true, value: { served: 'b' } });
    expect(await c.listAgents('')).toMatchObject({ ok: true, value: { served: 'b' } });
    expect(calls).toEqual(['a.listPlans', 'b.listPlans', 'b.listAgents']);
    c.close();
    expect(closed.sort()).toEqual(['a', 'b']);
  });

  it('when every one answers UNAVAILABLE, the last answer is the result; other errors are not retried', async () => {
    const calls: string[] = [];
    const c = failoverClient(['a', 'b'], (address) => fake(address, notLeader, calls, []));
    expect(await c.listAgents('')).toEqual({ ok: false, error: notLeader });
    expect(calls).toEqual(['a.listAgents', 'b.listAgents']);
    const notFound: CallError = { code: GrpcStatus.NOT_FOUND, codeName: 'NOT_FOUND', message: 'checkpoint 9 does not exist' };
    const calls2: string[] = [];
    const d = failoverClient(['a', 'b'], (address) => fake(address, notFound, calls2, []));
    expect(await d.getCheckpoint(9)).toEqual({ ok: false, error: notFound });
    expect(calls2).toEqual(['a.getCheckpoint']);
  });

  it('snapctl --address a,b connects to both; an empty entry is a usage error', async () => {
    const connected: string[] = [];
    const io: SnapctlIo = { stdout: () => undefined, stderr: () => undefined, stdoutIsTTY: false, readFile: () => '', now: () => 0, onInterrupt: () => () => undefined };
    const code = await runSnapctl(['--address', 'a:1,b:2', 'plans', 'list'], {}, io, (address) => {
      connected.push(address);
      return fake(address, address === 'a:1' ? notLeader : undefined, [], []);
    });
    expect(connected).toEqual(['a:1', 'b:2']);
    expect(code).toBe(0);
    let stderr = '';
    const bad = await runSnapctl(['--address', 'a:1,', 'plans', 'list'], {}, { ...io, stderr: (t) => void (stderr += t) }, () => fake('x', undefined, [], []));
    expect(bad).toBe(2);
    expect(stderr).toContain('empty entry');
  });
});
