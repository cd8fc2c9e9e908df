"""Run the end-to-end test files in one process and count the results.

    python3 tests/e2e/runner.py RESULT_FILE [test_x.py ...]

Without file arguments: every tests/e2e/test_*.py, in name order, limited
to the names containing one of the comma-separated substrings of
$EVR_TEST_FILTER when it is set. Prints progress per test and the details
of each failure; keeps "passed failed skipped complete" in RESULT_FILE,
rewritten after every test, so tests/run can count what ran even if this
process dies. A test running longer than $EVR_TEST_TIMEOUT seconds (300)
fails with a TimeoutError; a whole file longer than $EVR_FILE_TIMEOUT
(1200) aborts the process with a traceback of every thread.
"""

import faulthandler
import importlib.util
import os
import signal
import sys
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TEST_TIMEOUT = int(os.environ.get("EVR_TEST_TIMEOUT", "300"))
FILE_TIMEOUT = int(os.environ.get("EVR_FILE_TIMEOUT", "1200"))


class Counts:
    passed = failed = skipped = 0
    failures = []


def save(path, complete):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d %d %d\n" % (Counts.passed, Counts.failed,
                                   Counts.skipped, 1 if complete else 0))
        # the failed tests' names, a line each, so the run's final summary
        # (the last lines a CI log shows) can name them
        for name in Counts.failures:
            f.write(name.replace("\n", " ") + "\n")
    os.replace(tmp, path)


def say(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def indent(text):
    return "".join("      " + line + "\n" for line in text.rstrip().splitlines())


class TestTimeout(Exception):
    pass


def on_alarm(signum, frame):
    raise TestTimeout("test exceeded EVR_TEST_TIMEOUT=%d s" % TEST_TIMEOUT)


class Result(unittest.TestResult):
    """Prints one line per test, failure details at once, and counts."""

    def __init__(self, result_file):
        unittest.TestResult.__init__(self)
        self.result_file = result_file
        self.t0 = 0.0

    def startTest(self, test):
        unittest.TestResult.startTest(self, test)
        self.t0 = time.monotonic()
        signal.alarm(TEST_TIMEOUT)

    def stopTest(self, test):
        signal.alarm(0)
        unittest.TestResult.stopTest(self, test)
        save(self.result_file, False)

    def _name(self, test):
        if hasattr(test, "test_case"):  # a subtest
            return "%s %s" % (self._name(test.test_case), test._subDescription())
        if not isinstance(test, unittest.TestCase):  # setUpClass and the like
            return str(test)
        return "%s.%s" % (type(test).__name__, test._testMethodName)

    def _took(self):
        return "%.2f s" % (time.monotonic() - self.t0)

    def addSuccess(self, test):
        unittest.TestResult.addSuccess(self, test)
        Counts.passed += 1
        say("  ok    %s (%s)" % (self._name(test), self._took()))

    def _bad(self, kind, test, err):
        Counts.failed += 1
        name = self._name(test)
        Counts.failures.append("%s: %s" % (self.current_file, name))
        if isinstance(test, unittest.TestCase):
            say("  %-5s %s (%s)" % (kind, name, self._took()))
        else:
            say("  %-5s %s" % (kind, name))
        say(indent(self._exc_info_to_string(err, test)))

    def addFailure(self, test, err):
        unittest.TestResult.addFailure(self, test, err)
        self._bad("FAIL", test, err)

    def addError(self, test, err):
        unittest.TestResult.addError(self, test, err)
        self._bad("ERROR", test, err)

    def addSubTest(self, test, subtest, err):
        # a failing subtest counts as one failure; passing ones are silent
        unittest.TestResult.addSubTest(self, test, subtest, err)
        if err is not None:
            kind = "FAIL" if issubclass(err[0], test.failureException) else "ERROR"
            self._bad(kind, subtest, err)

    def addSkip(self, test, reason):
        unittest.TestResult.addSkip(self, test, reason)
        Counts.skipped += 1
        say("  skip  %s: %s" % (self._name(test), reason))

    def addExpectedFailure(self, test, err):
        unittest.TestResult.addExpectedFailure(self, test, err)
        Counts.passed += 1
        say("  ok    %s (expected failure)" % self._name(test))

    def addUnexpectedSuccess(self, test):
        unittest.TestResult.addUnexpectedSuccess(self, test)
        Counts.failed += 1
        Counts.failures.append("%s: %s" % (self.current_file, self._name(test)))
        say("  FAIL  %s (unexpected success)" % self._name(test))


def select_files(args):
    if args:
        return [os.path.abspath(a) for a in args]
    names = sorted(n for n in os.listdir(HERE)
                   if n.startswith("test_") and n.endswith(".py"))
    filt = [f.strip() for f in os.environ.get("EVR_TEST_FILTER", "").split(",")
            if f.strip()]
    if filt:
        names = [n for n in names if any(f in n for f in filt)]
    return [os.path.join(HERE, n) for n in names]


def run_file(path, result):
    name = os.path.basename(path)
    result.current_file = name
    before = (Counts.passed, Counts.failed, Counts.skipped)
    t0 = time.monotonic()
    say("== %s" % name)
    faulthandler.dump_traceback_later(FILE_TIMEOUT, exit=True)
    try:
        spec = importlib.util.spec_from_file_location(name[:-3], path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name[:-3]] = mod
        spec.loader.exec_module(mod)
        suite = unittest.defaultTestLoader.loadTestsFromModule(mod)
    except Exception:
        Counts.failed += 1
        Counts.failures.append("%s: import" % name)
        say("  ERROR cannot load %s" % name)
        say(indent(traceback.format_exc()))
        save(result.result_file, False)
        return
    try:
        suite.run(result)
    finally:
        faulthandler.cancel_dump_traceback_later()
    say("   %s: %d passed, %d failed, %d skipped (%.1f s)" % (
        name, Counts.passed - before[0], Counts.failed - before[1],
        Counts.skipped - before[2], time.monotonic() - t0))


def main():
    if len(sys.argv) < 2:
        sys.stderr.write("usage: runner.py RESULT_FILE [test files]\n")
        return 2
    result_file = sys.argv[1]
    sys.path.insert(0, HERE)
    signal.signal(signal.SIGALRM, on_alarm)
    save(result_file, False)
    files = select_files(sys.argv[2:])
    if not files:
        say("no end-to-end test files selected")
    result = Result(result_file)
    for path in files:
        run_file(path, result)
    if Counts.failures:
        say("failed end-to-end tests:")
        for f in Counts.failures:
            say("  " + f)
    save(result_file, True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
