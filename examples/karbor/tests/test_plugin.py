"""The consistency-group plugin driven by the stand-in of Karbor's flow engine (flow.py) against a
live coordinator with agents: the hooks in Karbor's order, a protect that completes with the
volume plugins' snapshots, restore and delete, and failures between begin and finish: a volume
plugin that fails (the flow reverts: the checkpoint is cancelled, the servers thawed at once) and a
protection service that dies (the agents thaw at the hold deadline, the checkpoint is aborted and
cleaned up by the coordinator)."""
import os
import sys
import time
import unittest

HERE = os.path.abspath(os.path.dirname(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "clients", "python", "tests"))

from stack import Stack, with_client_path  # noqa: E402

with_client_path()

import snapshot_coordinator as sc  # noqa: E402
from snapshot.v1 import coordinator_pb2 as pb  # noqa: E402

from consistency_group_plugin import GROUP_TYPE, VOLUME_TYPE, ConsistencyGroupProtectionPlugin, ExampleVolumeProtectionPlugin  # noqa: E402
from flow import Checkpoint, FlowCrashed, Resource, run_flow  # noqa: E402

STACK = Stack()
INFO = {}
IN_FLIGHT = [pb.CHECKPOINT_STATE_PENDING, pb.CHECKPOINT_STATE_TRIGGERING, pb.CHECKPOINT_STATE_COLLECTING, pb.CHECKPOINT_STATE_HELD, pb.CHECKPOINT_STATE_COMMITTING, pb.CHECKPOINT_STATE_ABORTING]


def setUpModule():
    INFO.update(STACK.start())


def tearDownModule():
    STACK.stop()


def graph():
    volumes = [Resource(VOLUME_TYPE, "cinder-%s" % v["id"], extra_info={"volume_id": v["id"], "server": v["server"]}) for v in INFO["volumes"]]
    return Resource(GROUP_TYPE, INFO["plan"], dependents=volumes)


class PluginTest(unittest.TestCase):
    def setUp(self):
        self.client = sc.Client(INFO["address"], timeout=20)
        self.addCleanup(self.client.close)
        self.addCleanup(self.settle)
        self.snapshots = []

    def settle(self):
        """Waits for the plan's checkpoints in flight to end: the next test's begin is not busy."""
        for c in list(self.client.checkpoints(INFO["plan"], states=IN_FLIGHT)):
            try:
                self.client.wait(c.id)
            except sc.CheckpointAborted:
                pass

    def snapshot(self, volume):
        ref = "cinder-snap-%s-%d" % (volume.id, time.time_ns())
        self.snapshots.append(ref)
        return ref

    def plugins(self, bank=None, snapshot=None):
        return {
            GROUP_TYPE: ConsistencyGroupProtectionPlugin({"address": INFO["address"], "bank": bank}),
            VOLUME_TYPE: ExampleVolumeProtectionPlugin(snapshot or self.snapshot),
        }

    def protect(self, level):
        checkpoint = Checkpoint("karbor-%d" % time.time_ns())
        group = graph()
        calls = run_flow("protect", [group], self.plugins(), checkpoint, {GROUP_TYPE: {"consistency_level": level, "hold_deadline_s": 20}})
        return checkpoint, group, calls

    def coordinator_checkpoint(self, checkpoint, group):
        return self.client.get_checkpoint(checkpoint.get_resource_bank_section(group.id).get_object("coordinator_checkpoint_id"))

    def test_the_plugin_contract(self):
        self.assertEqual(ConsistencyGroupProtectionPlugin.get_supported_resources_types(), [GROUP_TYPE])
        schema = ConsistencyGroupProtectionPlugin.get_options_schema(GROUP_TYPE)
        self.assertEqual(schema["properties"]["consistency_level"]["enum"], ["crash", "app"])
        self.assertIn("consistency_level", schema["required"])

    def test_protect_runs_the_hooks_in_karbors_order_and_completes_crash_consistent(self):
        checkpoint, group, calls = self.protect("crash")
        volumes = [d.id for d in group.dependents]
        prepare = calls[: 2 + 2 * len(volumes)]
        self.assertEqual(prepare[0], "%s.on_prepare_begin" % group.id)
        self.assertEqual(prepare[-1], "%s.on_prepare_finish" % group.id)
        for v in volumes:
            self.assertLess(prepare.index("%s.on_prepare_begin" % v), prepare.index("%s.on_prepare_finish" % v))
        self.assertEqual(calls.index("%s.on_main" % group.id), 2 + 3 * len(volumes))
        self.assertEqual(calls[-1], "%s.on_complete" % group.id)
        section = checkpoint.get_resource_bank_section(group.id)
        self.assertEqual(section.get_object("status"), "available")
        done = self.coordinator_checkpoint(checkpoint, group)
        self.assertEqual(done.state, pb.CHECKPOINT_STATE_COMPLETED)
        self.assertEqual(done.level_achieved, pb.CONSISTENCY_LEVEL_CRASH)
        self.assertEqual(sorted(v.snapshot_ref for v in done.caller_volumes), sorted(self.snapshots))
        for s in done.servers:
            self.assertTrue(s.HasField("thawed_at"), s.server)

    def test_app_level_protect_then_restore_and_delete(self):
        checkpoint, group, _ = self.protect("app")
        done = self.coordinator_checkpoint(checkpoint, group)
        self.assertEqual(done.level_achieved, pb.CONSISTENCY_LEVEL_APP)
        calls = run_flow("restore", [group], self.plugins(bank=checkpoint), Checkpoint("restore"), {})
        self.assertIn("%s.on_main" % group.id, calls)
        run_flow("delete", [group], self.plugins(bank=checkpoint), Checkpoint("delete"), {})
        with self.assertRaises(sc.NotFound):
            self.client.get_checkpoint(done.id)

    def test_a_volume_plugin_failing_between_begin_and_finish_reverts_the_servers_thaw_at_once(self):
        def failing(volume):
            raise RuntimeError("cinder: snapshot of %s failed" % volume.id)

        checkpoint = Checkpoint("karbor-fail")
        group = graph()
        started = time.time()
        with self.assertRaises(RuntimeError):
            run_flow("protect", [group], self.plugins(snapshot=failing), checkpoint, {GROUP_TYPE: {"consistency_level": "crash", "hold_deadline_s": 30}})
        cancelled = self.coordinator_checkpoint(checkpoint, group)
        with self.assertRaises(sc.CheckpointAborted) as caught:
            self.client.wait(cancelled.id)
        final = caught.exception.checkpoint
        self.assertEqual(final.state, pb.CHECKPOINT_STATE_ABORTED)
        self.assertEqual(final.failure_reason, pb.FAILURE_REASON_CANCELLED)
        self.assertLess(time.time() - started, 15, "thawed long before the 30 s hold deadline")
        for s in final.servers:
            self.assertTrue(s.HasField("thawed_at"), s.server)
        self.assertEqual(checkpoint.get_resource_bank_section(group.id).get_object("status"), "error")

    def test_a_protection_service_dying_between_begin_and_finish_is_ended_at_the_hold_deadline(self):
        checkpoint = Checkpoint("karbor-dies")
        group = graph()
        with self.assertRaises(FlowCrashed):
            run_flow(
                "protect",
                [group],
                self.plugins(),
                checkpoint,
                {GROUP_TYPE: {"consistency_level": "crash", "hold_deadline_s": 3}},
                crash_after=lambda hook, r: hook == "on_prepare_finish" and r.type == VOLUME_TYPE,
            )
        held = self.coordinator_checkpoint(checkpoint, group)
        self.assertEqual(held.state, pb.CHECKPOINT_STATE_HELD)
        final = held
        deadline = time.time() + 20
        while final.state != pb.CHECKPOINT_STATE_ABORTED and time.time() < deadline:
            time.sleep(0.2)
            final = self.client.get_checkpoint(held.id)
        self.assertEqual(final.state, pb.CHECKPOINT_STATE_ABORTED)
        self.assertEqual(final.failure_reason, pb.FAILURE_REASON_TIMEOUT)
        self.assertIn("hold deadline", final.failure_detail)
        for s in final.servers:
            self.assertTrue(s.HasField("thawed_at"), s.server)
        # The service, back, cannot finish it any more.
        with self.assertRaises(sc.HoldExpired):
            self.client.finish(final.id, [])


if __name__ == "__main__":
    unittest.main()
