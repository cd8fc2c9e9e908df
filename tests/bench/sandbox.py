"""Benchmark of the virtual_bash sandbox (issue "A sandboxed shell"),
printed, never asserted.

1. One `true`: the bash tool's own duration (tool.completed duration_ms:
   laying in the session's files, starting bubblewrap, the command, its
   exit, writing back) over N sequential calls, next to the same command
   without a sandbox (`bash -c true` forked and waited for) and to bwrap
   alone with the sandbox's argv, in the same run, as the stack's user.
2. 20 concurrent commands from 20 sessions (`true`, each in its own turn,
   all sent at once): the time until the last session is idle, and the
   tools' own durations.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evr import api, tool_output  # noqa: E402
import figures  # noqa: E402

N = int(os.environ.get("BENCH_SANDBOX_CALLS", "30"))
CONC = int(os.environ.get("BENCH_SANDBOX_SESSIONS", "20"))
pct = figures.pct


def out(name, ms):
    """A figure (ms) for the shell's `figure` (BENCH_SANDBOX_OUT: one
    `name<TAB>value` line each)."""
    with open(os.environ["BENCH_SANDBOX_OUT"], "a") as f:
        f.write("%s\t%.2f\n" % (name, ms))


def setup():
    prv = [p for p in api("GET", "/api/v1/llm-providers").json["data"] if p["provider_type"] == "llmsim"][0]
    r = api("POST", "/api/v1/llm-providers/%s/models" % prv["id"],
            {"model_id": "llmsim-instant", "display_name": "instant", "capabilities": ["chat", "tools"]})
    assert r.status == 201, r.text
    return r.json["id"], api("GET", "/api/v1/harnesses/base").json["id"]


def session(model, base):
    r = api("POST", "/api/v1/sessions", {"harness_id": base, "model_id": model,
                                         "capabilities": [{"ref": "virtual_bash"}]})
    assert r.status == 201, r.text
    return r.json["id"]


def one_turn(sid, since, deadline=60):
    """Send `#tool bash true`; (tool duration_ms, seq after the turn)."""
    msg = '#tool bash {"command": "true"}'
    r = api("POST", "/api/v1/sessions/%s/messages" % sid, {"message": {"content": msg}})
    assert r.status == 201, r.text
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        evs = api("GET", "/api/v1/sessions/%s/events?since_sequence=%d" % (sid, since)).json["data"]
        if any(e["type"] == "session.idled" for e in evs):
            done = [e["data"] for e in evs if e["type"] == "tool.completed"]
            assert done and done[0]["success"] and tool_output(done[0])["exit_code"] == 0, done
            return done[0]["duration_ms"], evs[-1]["sequence"]
        time.sleep(0.005)
    raise SystemExit("bench sandbox: a turn did not end in %d s" % deadline)


def as_user(argv):
    user = os.environ.get("EVR_RUN_USER")
    if os.geteuid() == 0 and user:
        return ["setpriv", "--reuid=" + user, "--regid=" + user, "--init-groups"] + argv
    return argv


def timed(argv, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main():
    model, base = setup()
    sid = session(model, base)
    since = 1
    tool = []
    for _ in range(N):
        d, since = one_turn(sid, since)
        tool.append(d)
    plain = timed(as_user(["/bin/bash", "-c", "true"]), N)
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o777)
        bw = ["/usr/bin/bwrap", "--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net",
              "--unshare-uts", "--unshare-cgroup-try", "--disable-userns", "--die-with-parent",
              "--new-session", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
              "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--proc", "/proc",
              "--dev", "/dev", "--tmpfs", "/tmp", "--bind", d, "/workspace", "--chdir", "/workspace",
              "--clearenv", "--", "/bin/bash", "-c", "true"]
        bwrap = timed(as_user(bw), N)
    print("bench sandbox: %d sequential calls of `true`, 2 cores shared" % N)
    for name, v in (("bash tool, sandboxed (tool duration)", tool),
                    ("bwrap alone, same namespaces", bwrap),
                    ("bash -c true, no sandbox", plain)):
        print("  %-40s p50 %7.1f ms  p90 %7.1f ms" % (name, pct(v, 50), pct(v, 90)))
    print("    overhead of the sandboxed call: %.1f ms (p50) over the plain command"
          % (pct(tool, 50) - pct(plain, 50)))
    out("sandbox: bash tool true p50 (lay-in, bwrap, write-back)", pct(tool, 50))
    out("sandbox: bwrap alone true p50", pct(bwrap, 50))
    out("sandbox: bash -c true without a sandbox p50", pct(plain, 50))
    out("sandbox: overhead of one sandboxed true p50", pct(tool, 50) - pct(plain, 50))

    # concurrency
    sids = [session(model, base) for _ in range(CONC)]
    res = [None] * CONC
    t0 = time.monotonic()

    def go(i):
        res[i] = one_turn(sids[i], 1)[0]
    ts = [threading.Thread(target=go, args=(i,)) for i in range(CONC)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = (time.monotonic() - t0) * 1000
    print("  %d concurrent `true` from %d sessions: all idle after %.0f ms; tool duration p50 %.1f ms, "
          "max %.1f ms" % (CONC, CONC, wall, pct(res, 50), max(res)))
    out("sandbox: %d concurrent true from %d sessions, all done" % (CONC, CONC), wall)
    out("sandbox: %d concurrent true, tool duration p50" % CONC, pct(res, 50))
    out("sandbox: %d concurrent true, tool duration max" % CONC, max(res))


if __name__ == "__main__":
    main()
