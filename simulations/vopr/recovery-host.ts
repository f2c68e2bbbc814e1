/**
 * Start-up recovery of the simulated coordinator: the real decision (src/control/recovery.ts)
 * carried out as coordinator/checkpoints/recover.ts does.
 */
import { EMPTY_SLOTS, type PlanSlots } from '../../src/control/admission.js';
import { decideRecovery, decideUnfinishedDeletes } from '../../src/control/recovery.js';
import type { Control } from '../../src/wire/index.js';
import type { CoordinatorHost, CoordinatorWorld } from './coordinator-host.js';
import { checkpointKey, liveVolumeRefs, objectPrefix, slotsKey, type CheckpointRecord } from './records.js';
import { TENANT } from './topology.js';

const IN_FLIGHT: readonly string[] = ['pending', 'triggering', 'collecting', 'held', 'committing', 'aborting'];

/**
 * As coordinator/checkpoints/recover.ts: every record in flight and every plan's slots read, then
 * the actions carried out in order; an abort deletes the parts and writes the record aborted, and
 * only then is its slot released. `done` once every action ran.
 */
export function recoverLeftRounds(c: CoordinatorHost, w: CoordinatorWorld, done: () => void): void {
  c.store.retried(
    'list checkpoints and slots',
    () => ({
      records: w.kv.keys('ckpt.').map((k) => w.kv.get(k)?.value as CheckpointRecord),
      slots: w.topology.plans.map((p) => ({ planId: p.id, slots: ((w.kv.get(slotsKey(p.id))?.value as PlanSlots | undefined) ?? EMPTY_SLOTS).slots })),
    }),
    ({ records, slots }) => {
      const inFlight = records.filter((r) => IN_FLIGHT.includes(r.state));
      const unfinished = decideUnfinishedDeletes(
        records.filter((r) => r.deleting === true).map((r) => ({ checkpointId: r.id, planId: r.plan, state: r.state })),
        [],
      );
      const actions = decideRecovery({
        inFlight: inFlight.map((r) => ({ checkpointId: r.id, planId: r.plan, state: r.state, createdAtUnixMs: r.createdAtMs, hasVolumes: r.level === 'crash' })),
        slots: slots.filter((s) => s.slots.length > 0),
        runningHere: [],
        nowMs: w.agenda.now,
      });
      const byId = new Map(records.map((r) => [r.id, r]));
      const aborted = new Set<number>();
      const next = (i: number): void => {
        const a = actions[i];
        if (a === undefined) {
          finishDeletes(0);
          return;
        }
        if (a.type === 'release-slot') {
          if (a.reason !== 'aborted-now' || aborted.has(a.checkpointId)) c.releaseSlot(a.planId, a.checkpointId);
          next(i + 1);
          return;
        }
        const r = byId.get(a.checkpointId) as CheckpointRecord;
        w.trace(`recovery: aborting ckpt ${r.id} (${r.state}) left by a stopped coordinator`);
        for (const server of c.plan(r.plan).servers) {
          w.controls.send('coordinator', server, { requestId: `abort:${r.id}:${server}:recovery`, tenant: TENANT, server, plan: r.plan, epoch: r.epoch, type: 'abort', checkpointId: r.id, reason: 'the coordinator running this checkpoint stopped' } as Control);
        }
        if (!w.cleanUps.has(r.id)) w.cleanUps.set(r.id, w.agenda.now);
        const objects = w.objects.list().filter((o) => o.name.startsWith(objectPrefix(r.id))).map((o) => o.name);
        // The backend is asked for what it holds under the checkpoint's name, beside what the record lists.
        const swept = a.sweepVolumes ? w.volumes.list().filter((v) => v.tag === `ckpt-${r.id}`).map((v) => v.id) : [];
        const detail = a.detail;
        c.deleteAll(objects, [...new Set([...liveVolumeRefs(r), ...swept])], () =>
          c.store.update<CheckpointRecord>(
            checkpointKey(r.id),
            (cur) => (cur === undefined || !IN_FLIGHT.includes(cur.state) ? undefined : Object.assign({}, cur, { state: 'aborted' as const, failure: { reason: 'internal' as const, detail } })),
            () => {
              aborted.add(r.id);
              next(i + 1);
            },
          ),
        );
      };
      // Then the deletes a stopped coordinator began: finished, never undone (the mark went before the first part).
      const finishDeletes = (k: number): void => {
        const f = unfinished[k];
        if (f === undefined) {
          done();
          return;
        }
        const r = byId.get(f.checkpointId) as CheckpointRecord;
        w.trace(`recovery: finishing the delete of ckpt ${r.id}`);
        c.deleteAll(r.parts.map((p) => p.ref.name), liveVolumeRefs(r), () =>
          c.store.retried(`delete ${checkpointKey(r.id)}`, () => w.kv.delete(checkpointKey(r.id)), () => finishDeletes(k + 1)),
        );
      };
      next(0);
    },
  );
}
