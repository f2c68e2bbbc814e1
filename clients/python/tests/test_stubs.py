"""The committed stubs are what generate_stubs.py writes from proto/ today (no .proto change left
them behind)."""
import filecmp
import os
import sys
import tempfile
import unittest

HERE = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, HERE)

import generate_stubs  # noqa: E402


class StubsTest(unittest.TestCase):
    def test_the_committed_stubs_match_the_proto(self):
        with tempfile.TemporaryDirectory() as out:
            generate_stubs.generate(out)
            for name in ("__init__.py", os.path.join("v1", "__init__.py"), os.path.join("v1", "coordinator_pb2.py"), os.path.join("v1", "coordinator_pb2_grpc.py")):
                fresh = os.path.join(out, "snapshot", name)
                committed = os.path.join(HERE, "snapshot", name)
                self.assertTrue(filecmp.cmp(fresh, committed, shallow=False), "clients/python/snapshot/%s is stale: run python3 clients/python/generate_stubs.py" % name)


if __name__ == "__main__":
    unittest.main()
