"""The Python client against a live coordinator with agents (tests/stack.py): takes, waits with
progress, paging, errors by status and reason (PlanBusy, InvalidArgument with its field, NotFound),
staged checkpoints (the context manager, a cancel on an exception, HoldExpired), agents and health."""
import datetime
import time
import unittest

from stack import Stack, with_client_path

with_client_path()

import snapshot_coordinator as sc  # noqa: E402
from snapshot.v1 import coordinator_pb2 as pb  # noqa: E402

STACK = Stack()
INFO = {}
IN_FLIGHT = [pb.CHECKPOINT_STATE_PENDING, pb.CHECKPOINT_STATE_TRIGGERING, pb.CHECKPOINT_STATE_COLLECTING, pb.CHECKPOINT_STATE_HELD, pb.CHECKPOINT_STATE_COMMITTING, pb.CHECKPOINT_STATE_ABORTING]


def setUpModule():
    INFO.update(STACK.start())


def tearDownModule():
    STACK.stop()


def now():
    return datetime.datetime.now(datetime.timezone.utc)


class ClientTest(unittest.TestCase):
    def setUp(self):
        self.client = sc.Client(INFO["address"], timeout=20)
        self.addCleanup(self.client.close)
        self.addCleanup(self.settle)

    def settle(self):
        """Waits for the demo plan's checkpoints in flight to end: the next test's take is not busy."""
        for c in list(self.client.checkpoints(INFO["plan"], states=IN_FLIGHT)):
            try:
                self.client.wait(c.id)
            except sc.CheckpointAborted:
                pass

    def volumes(self, started_at):
        return [sc.VolumeSnapshot(v["id"], v["server"], "py-%s-%d" % (v["id"], time.time_ns()), started_at, now()) for v in INFO["volumes"]]

    def test_several_addresses_go_on_to_the_one_that_answers(self):
        # Nothing listens on port 1: that coordinator is UNAVAILABLE, the next one serves.
        with sc.Client("127.0.0.1:1," + INFO["address"], timeout=5) as client:
            self.assertIn(INFO["plan"], [p.id for p in client.plans()])
            self.assertEqual(client.get_plan(INFO["plan"]).id, INFO["plan"])
        with self.assertRaises(ValueError):
            sc.Client("127.0.0.1:1,")

    def test_health_is_serving(self):
        self.assertEqual(self.client.health(), "SERVING")
        with self.assertRaises(sc.NotFound):
            self.client.health("no.such.Service")

    def test_take_and_wait_reports_progress_and_returns_the_completed_checkpoint(self):
        events = []
        done = self.client.take_and_wait(INFO["plan"], "app", on_progress=events.append)
        self.assertEqual(done.state, pb.CHECKPOINT_STATE_COMPLETED)
        self.assertEqual(done.level_achieved, pb.CONSISTENCY_LEVEL_APP)
        acked = sorted("%s/%s" % (e.server, e.app) for e in events if e.kind == pb.PROGRESS_KIND_APP_ACKED)
        self.assertEqual(len(acked), done.stats.total)
        self.assertEqual(events[-1].checkpoint.state, pb.CHECKPOINT_STATE_COMPLETED)
        created = done.created_at.ToDatetime()
        self.assertLess(abs((datetime.datetime.utcnow() - created).total_seconds()), 60)
        self.assertTrue(done.HasField("finished_at"))

    def test_take_then_wait_follows_the_checkpoint_to_its_end(self):
        taken = self.client.take(INFO["plan"], "app", sc.snapshot_options(timeout=20))
        self.assertEqual(taken.options.timeout.ToMilliseconds(), 20000)
        self.assertFalse(taken.HasField("finished_at"))
        self.assertEqual(self.client.wait(taken.id).state, pb.CHECKPOINT_STATE_COMPLETED)

    def test_checkpoints_pages_through_every_checkpoint_newest_first(self):
        ids = [self.client.take_and_wait(INFO["plan"], "app").id for _ in range(3)]
        listed = [c.id for c in self.client.checkpoints(INFO["plan"], states=[pb.CHECKPOINT_STATE_COMPLETED], page_size=1)]
        self.assertEqual(listed, sorted(listed, reverse=True))
        for i in ids:
            self.assertIn(i, listed)

    def test_a_busy_plan_raises_plan_busy_with_its_metadata(self):
        first = self.client.take(INFO["busy_plan"], "app")
        self.addCleanup(lambda: self.client.cancel(first.id))
        with self.assertRaises(sc.PlanBusy) as caught:
            self.client.take(INFO["busy_plan"], "app")
        e = caught.exception
        self.assertIsInstance(e, sc.ResourceExhausted)
        self.assertEqual(e.reason, "PLAN_BUSY")
        self.assertEqual(e.metadata["plan_id"], INFO["busy_plan"])
        self.assertIn(str(first.id), e.metadata["in_flight"])

    def test_an_out_of_range_option_raises_invalid_argument_naming_the_field(self):
        with self.assertRaises(sc.InvalidArgument) as caught:
            self.client.take(INFO["plan"], "app", sc.snapshot_options(timeout=datetime.timedelta(hours=2)))
        self.assertEqual(caught.exception.field, "options.timeout")
        self.assertIn("out of range", caught.exception.details)

    def test_an_unknown_checkpoint_raises_not_found(self):
        with self.assertRaises(sc.NotFound):
            self.client.get_checkpoint(987654321)

    def test_a_copy_to_a_site_that_is_not_configured_raises_not_found_naming_it(self):
        done = self.client.take_and_wait(INFO["plan"], "app")
        with self.assertRaises(sc.NotFound) as caught:
            self.client.copy(done.id, "nowhere")
        self.assertIn("site nowhere is not configured", caught.exception.details)
        with self.assertRaises(sc.NotFound):
            self.client.copies("nowhere")
        with self.assertRaises(sc.NotFound):
            self.client.restore(done.id, {"s1": "t1"}, from_site="nowhere")

    def test_a_staged_checkpoint_completes_with_the_callers_volume_snapshots(self):
        with self.client.staged(INFO["plan"], "crash", hold_deadline=10) as staged:
            self.assertEqual(staged.checkpoint.state, pb.CHECKPOINT_STATE_HELD)
            self.assertEqual(staged.checkpoint.hold_deadline.ToMilliseconds(), 10000)
            done = staged.finish(self.volumes(now()))
        self.assertEqual(done.state, pb.CHECKPOINT_STATE_COMPLETED)
        self.assertEqual(sorted(v.volume_id for v in done.caller_volumes), sorted(v["id"] for v in INFO["volumes"]))
        with self.assertRaises(sc.AlreadyFinished):
            self.client.finish(done.id, self.volumes(now()))

    def test_an_exception_inside_a_staged_checkpoint_cancels_it(self):
        held = None
        with self.assertRaises(RuntimeError):
            with self.client.staged(INFO["plan"], "crash", hold_deadline=10) as staged:
                held = staged.checkpoint
                raise RuntimeError("a volume plugin failed")
        with self.assertRaises(sc.CheckpointAborted) as caught:
            self.client.wait(held.id)
        self.assertEqual(caught.exception.checkpoint.failure_reason, pb.FAILURE_REASON_CANCELLED)

    def test_a_finish_after_the_hold_deadline_raises_hold_expired(self):
        # Long enough to be held under a loaded CI machine, short enough to wait for.
        held = self.client.begin(INFO["plan"], "crash", hold_deadline=3)
        time.sleep(3.5)
        with self.assertRaises(sc.HoldExpired) as caught:
            self.client.finish(held.id, self.volumes(now()))
        self.assertIsInstance(caught.exception, sc.FailedPrecondition)

    def test_a_finish_with_a_volume_missing_is_invalid_and_the_checkpoint_stays_held(self):
        held = self.client.begin(INFO["plan"], "crash", hold_deadline=10)
        with self.assertRaises(sc.InvalidArgument) as caught:
            self.client.finish(held.id, self.volumes(now())[1:])
        self.assertEqual(caught.exception.field, "volumes")
        self.assertEqual(self.client.get_checkpoint(held.id).state, pb.CHECKPOINT_STATE_HELD)
        self.assertEqual(self.client.finish(held.id, self.volumes(now())).state, pb.CHECKPOINT_STATE_COMPLETED)

    def test_agents_show_their_channels(self):
        deadline = time.time() + 10
        agents = []
        while time.time() < deadline and len(agents) < len(INFO["volumes"]):
            agents = list(self.client.agents(INFO["tenant"]))
            time.sleep(0.1)
        self.assertEqual(len(agents), len(INFO["volumes"]))
        for a in agents:
            self.assertTrue(a.channels, a.server)
            for c in a.channels:
                self.assertIn(a.server, (c.from_app.server, c.to_app.server))


if __name__ == "__main__":
    unittest.main()
