"""docs/api.md's Python examples run against a live coordinator: every ```python block of its
"From Python" section is executed, and every function it defines is called (a function of the
examples that this table does not know fails the test, so no example goes untested)."""
import os
import re
import time
import types
import unittest

from stack import REPO, Stack, with_client_path

with_client_path()

from snapshot.v1 import coordinator_pb2 as pb  # noqa: E402

STACK = Stack()
INFO = {}


def setUpModule():
    INFO.update(STACK.start())


def tearDownModule():
    STACK.stop()


def python_blocks():
    with open(os.path.join(REPO, "docs", "api.md")) as f:
        doc = f.read()
    section = doc[doc.index("## From Python\n") : doc.index("## snapctl\n")]
    return re.findall(r"^```python\n(.*?)^```$", section, flags=re.S | re.M)


def key():
    return "docs-%d" % time.time_ns()


# How each example function is called, and what its answer must be.
CALLS = {
    "take_app_checkpoint": (lambda f: f(INFO["address"], INFO["plan"], key()), lambda r: r.state == pb.CHECKPOINT_STATE_COMPLETED),
    "completed_checkpoints": (lambda f: f(INFO["address"], INFO["plan"]), lambda r: len(r) > 0 and all(isinstance(i, int) for i, _ in r)),
    "crash_consistent_with_own_snapshots": (
        lambda f: f(INFO["address"], INFO["plan"], lambda volume: "docs-%s-%d" % (volume.id, time.time_ns())),
        lambda r: r.state == pb.CHECKPOINT_STATE_COMPLETED and len(r.caller_volumes) == len(INFO["volumes"]),
    ),
    "take_with_the_stubs": (lambda f: f(INFO["address"], INFO["plan"], key()), lambda r: r.state == pb.CHECKPOINT_STATE_COMPLETED),
}


class DocsExamplesTest(unittest.TestCase):
    def test_every_python_example_runs_and_answers_as_documented(self):
        blocks = python_blocks()
        self.assertGreaterEqual(len(blocks), 3)
        called = set()
        for i, code in enumerate(blocks):
            namespace = {"__name__": "docs_example_%d" % i}
            exec(compile(code, "docs/api.md python block %d" % (i + 1), "exec"), namespace)
            functions = [n for n, v in namespace.items() if isinstance(v, types.FunctionType) and v.__module__ == namespace["__name__"]]
            for name in functions:
                with self.subTest(example=name):
                    self.assertIn(name, CALLS, "docs/api.md defines %s: add how to call it to CALLS" % name)
                    call, check = CALLS[name]
                    result = call(namespace[name])
                    self.assertTrue(check(result), "%s answered %r" % (name, result))
                    called.add(name)
        self.assertEqual(called, set(CALLS))


if __name__ == "__main__":
    unittest.main()
