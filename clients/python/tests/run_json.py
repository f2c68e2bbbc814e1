"""Runs the unittest suites of a folder and writes one JSON result per test case, for the vitest
file that reports them to CI (test/integration/python-client.test.ts).

    python3 run_json.py --list START_DIR            the test ids, as a JSON list, on stdout
    python3 run_json.py --run START_DIR OUT.json    runs them; OUT.json maps id -> {outcome, message}
"""
import json
import sys
import traceback
import unittest


def cases(suite):
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from cases(test)
        else:
            yield test


class Recorder(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcomes = {}

    def addSuccess(self, test):
        super().addSuccess(test)
        self.outcomes[test.id()] = {"outcome": "passed", "message": ""}

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.outcomes[test.id()] = {"outcome": "failed", "message": "".join(traceback.format_exception(*err))}

    def addError(self, test, err):
        super().addError(test, err)
        # A module's setUpModule failing is reported against a pseudo-test: every case of it failed.
        self.outcomes[test.id()] = {"outcome": "failed", "message": "".join(traceback.format_exception(*err))}

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.outcomes[test.id()] = {"outcome": "skipped", "message": reason}


def main(argv):
    mode, start = argv[1], argv[2]
    suite = unittest.defaultTestLoader.discover(start, top_level_dir=start)
    ids = [t.id() for t in cases(suite)]
    if mode == "--list":
        print(json.dumps(ids))
        return 0
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=2, resultclass=Recorder).run(suite)
    outcomes = dict(result.outcomes)
    # Tests that never ran (their module's set-up failed) fail with that failure.
    setup_failures = [v["message"] for k, v in outcomes.items() if k not in ids]
    for test_id in ids:
        if test_id not in outcomes:
            outcomes[test_id] = {"outcome": "failed", "message": "did not run: " + ("\n".join(setup_failures) or "unknown")}
    with open(argv[3], "w") as f:
        json.dump(outcomes, f)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
