/** The orphan decision (src/control/orphans.ts), case by case. */
import { describe, expect, it } from 'vitest';
import { checkpointIdsOf, checkpointOfObject, findOrphans, type Owner } from '../../src/control/orphans.js';

const T = 'acme';
const NOW = 1_000_000;
const SETTLE = 30_000;
const aborted = (finishedAtUnixMs: number | undefined, tenant = T): Owner => ({
  kind: 'record',
  tenant,
  state: 'ended-incomplete',
  timeoutMs: 10_000,
  ...(finishedAtUnixMs !== undefined ? { finishedAtUnixMs } : {}),
});

const cases: { name: string; owner: Owner | undefined; orphaned: string | undefined }[] = [
  { name: 'no record', owner: { kind: 'absent' }, orphaned: 'no-record' },
  { name: 'a record that could not be read', owner: { kind: 'unreadable' }, orphaned: undefined },
  { name: 'no answer about the record at all', owner: undefined, orphaned: undefined },
  { name: 'in flight', owner: { kind: 'record', tenant: T, state: 'in-flight', timeoutMs: 10_000 }, orphaned: undefined },
  { name: 'completed', owner: { kind: 'record', tenant: T, state: 'completed', timeoutMs: 10_000, finishedAtUnixMs: 0 }, orphaned: undefined },
  { name: "completed, but another tenant's", owner: { kind: 'record', tenant: 'other', state: 'completed', timeoutMs: 10_000 }, orphaned: 'other-tenant' },
  { name: 'aborted long ago', owner: aborted(0), orphaned: 'ended-incomplete' },
  { name: 'aborted exactly timeout + settle ago', owner: aborted(NOW - 10_000 - SETTLE), orphaned: 'ended-incomplete' },
  { name: 'aborted 1 ms less than timeout + settle ago', owner: aborted(NOW - 10_000 - SETTLE + 1), orphaned: undefined },
  { name: 'aborted, with no end time', owner: aborted(undefined), orphaned: undefined },
];

describe('findOrphans', () => {
  for (const c of cases) {
    it(`${c.name}: ${c.orphaned ?? 'kept'}`, () => {
      const owners = new Map<number, Owner>(c.owner ? [[7, c.owner]] : []);
      const found = findOrphans({ tenant: T, names: ['cp/7/s1/A/state', 'cp/7/s1/A/channels'], owners, nowUnixMs: NOW, settleMs: SETTLE });
      expect(found).toEqual(c.orphaned === undefined ? [] : [{ checkpointId: 7, reason: c.orphaned, names: ['cp/7/s1/A/state', 'cp/7/s1/A/channels'] }]);
    });
  }

  it('groups by checkpoint in ascending id order and leaves names outside cp/<id>/ alone', () => {
    const names = ['cp/20/s/A/state', 'copy/site/3/cp/3/s/A/state', 'cp/3/s/A/state', 'other', 'cp/20/s/B/state'];
    const owners = new Map<number, Owner>([
      [3, { kind: 'absent' }],
      [20, { kind: 'absent' }],
    ]);
    expect(findOrphans({ tenant: T, names, owners, nowUnixMs: NOW, settleMs: SETTLE })).toEqual([
      { checkpointId: 3, reason: 'no-record', names: ['cp/3/s/A/state'] },
      { checkpointId: 20, reason: 'no-record', names: ['cp/20/s/A/state', 'cp/20/s/B/state'] },
    ]);
  });
});

describe('checkpointOfObject', () => {
  it('reads the id of cp/<id>/ names only, as the agents write them', () => {
    expect(checkpointOfObject('cp/42/s1/APP1/state')).toBe(42);
    for (const name of ['cp/0/s/A/state', 'cp/042/s/A/state', 'cp/42', 'cp/x/s', 'copy/a/42/cp/42/s/A/state', 'cp/99999999999999999/s/A']) expect(checkpointOfObject(name), name).toBeUndefined();
    expect(checkpointIdsOf(['cp/9/a', 'cp/10/b', 'cp/9/c', 'z'])).toEqual([9, 10]);
  });
});
