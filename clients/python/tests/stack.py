"""Starts the live coordinator the Python tests run against (test/support/python-stack.ts: a real
nats-server, the coordinator's service and gRPC server, the demo plan's agents) and stops it.

One stack per test module (setUpModule / tearDownModule); SNAPSHOT_STACK_JSON (the stack's JSON
line) points the tests at a stack already running instead. `Stack(secure=True)` starts one whose API
is authenticated (TLS with tokens, and mTLS; SNAPSHOT_SECURE_STACK_JSON for one already running).
"""
import json
import os
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
STARTUP_TIMEOUT_S = 120


class Stack:
    def __init__(self, secure: bool = False):
        self.process = None
        self.info = {}
        self.secure = secure

    def start(self) -> dict:
        given = os.environ.get("SNAPSHOT_SECURE_STACK_JSON" if self.secure else "SNAPSHOT_STACK_JSON")
        if given:
            self.info = json.loads(given)
            return self.info
        self.process = subprocess.Popen(
            ["npx", "tsx", "test/support/python-stack.ts"] + (["--secure"] if self.secure else []),
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=sys.stderr,
            text=True,
        )
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait(timeout=STARTUP_TIMEOUT_S)
            raise RuntimeError("the coordinator stack exited (%s) before serving" % code)
        self.info = json.loads(line)
        return self.info

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            self.process.stdin.close()
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def with_client_path() -> None:
    """Makes the client package (clients/python) importable without installing it."""
    here = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    if here not in sys.path:
        sys.path.insert(0, here)
