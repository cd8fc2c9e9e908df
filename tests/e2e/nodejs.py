"""nodejs: run a JavaScript test file of tests/ui under node and report its
checks as Python test cases.

A file prints one line `RESULT {"name", "ok", "error", "ms"}` per check
(tests/ui/lib.mjs). checks_case() makes a TestCase class whose setUpClass runs it
once (with its own organization's API key and the stack's addresses in the
environment) and whose test_<name> methods each assert that one check
passed, so each check counts in the summary; a check that never reported
fails, one that cannot run on this server (a route not built) is skipped."""

import json
import os
import shutil
import subprocess
import unittest

from evr import BASE, HOME, SRCDIR, BUILDDIR, new_org

OUT = os.path.join(SRCDIR, "tests", "out")


def run_checks(script, org_name, timeout=600, extra_env=None):
    """Run tests/ui/SCRIPT; returns (results dict, stdout+stderr text)."""
    node = shutil.which("node")
    if not node:
        raise AssertionError("node is not installed (conf/install-deps --test)")
    if not os.path.isdir(os.path.join(SRCDIR, "tests", "node_modules")):
        raise AssertionError("tests/node_modules is missing (npm ci in tests/)")
    os.makedirs(OUT, exist_ok=True)
    env = dict(os.environ)
    env.update({
        "EVR_BASE_URL": BASE,
        "EVR_TEST_KEY": new_org(org_name)["api_key"],
        "EVR_SRCDIR": SRCDIR,
        "EVR_BUILDDIR": BUILDDIR,
        "EVR_HOME": HOME,
        "EVR_OUT": OUT,
    })
    env.update(extra_env or {})
    try:
        out = subprocess.run([node, os.path.join(SRCDIR, "tests", "ui", script)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env=env, cwd=os.path.join(SRCDIR, "tests"),
                             timeout=timeout, universal_newlines=True).stdout
    except subprocess.TimeoutExpired as e:
        # keep what did report; the rest fail with this output
        out = e.stdout or ""
        if isinstance(out, bytes):
            out = out.decode("utf-8", "replace")
        out += "\n[node was stopped after %d s]" % timeout
    results = {}
    for line in out.splitlines():
        if line.startswith("RESULT "):
            r = json.loads(line[7:])
            results[r["name"]] = r
    return results, out


def checks_case(cls_name, script, org_name, names, timeout=600):
    """A unittest.TestCase class with one test_<name> per check name of
    SCRIPT, which runs once for the class."""

    def setUpClass(cls):
        cls.results, cls.output = run_checks(script, org_name, timeout=timeout)

    def make(name):
        def test(self):
            r = self.results.get(name)
            if r is None:
                self.fail("check %r did not report; node's output:\n%s" % (name, self.output[-4000:]))
            if r.get("skipped"):
                self.skipTest(r["skipped"])
            if not r["ok"]:
                self.fail("%s failed:\n%s" % (name, r["error"]))
        test.__name__ = "test_" + name
        return test

    attrs = {"setUpClass": classmethod(setUpClass)}
    for n in names:
        attrs["test_" + n] = make(n)
    return type(cls_name, (unittest.TestCase,), attrs)
