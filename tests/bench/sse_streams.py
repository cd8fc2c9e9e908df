"""The streaming benchmarks (issue "Event streaming"), driven by the C
client tests/bench/sse-bench against a private stack (tests/bench/lib.sh).

  sse_streams.py idle     10,000 idle streams on one everruns-sse through
                          nginx (10 organizations x 200 sessions x 5
                          streams, the per-session and per-organization
                          limits); RSS of everruns-sse and of nginx's
                          workers while they are held, next to the same
                          processes' RSS before.
  sse_streams.py fanout   commit-to-client latency of one event: to 1
                          stream (light load), to 1,000 streams of one
                          session, and to one stream each of 1,000 sessions
                          (one commit with an event in each), next to a
                          bare libpq LISTEN client on the same commits."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evr  # noqa: E402
from evr import api, new_org, stack_pid, stack_env, BUILDDIR, HOME  # noqa: E402
from benchlib import pool  # noqa: E402
import figures  # noqa: E402

BENCH = os.path.join(BUILDDIR, "tests", "bench", "sse-bench")
PORT = stack_env("EVR_HTTP_PORT")


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def nginx_workers():
    with open(os.path.join(HOME, "run", "nginx.pid")) as f:
        master = int(f.read().split()[0])
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == master:
                        out.append(int(d))
            except OSError:
                pass
    return master, out


def sessions(n_orgs, per_org):
    """[(session id, key)] for per_org new sessions in each of n_orgs new
    organizations."""
    out = []
    for o in range(n_orgs):
        key = new_org("bench-sse-%d-%d" % (o, time.time()))["api_key"]
        agent = api("GET", "/api/v1/agents/assistant", key=key).json["id"]
        got = [None] * per_org

        def make(i):
            r = api("POST", "/api/v1/sessions", {"agent_id": agent}, key=key)
            if r.status != 201:
                raise SystemExit("session create: %d %s" % (r.status, r.text))
            got[i] = r.json["id"]
        pool(make, per_org, width=16)
        out += [(s, key) for s in got]
    return out


def run(args, lines, on_line=None):
    """sse-bench ARGS with the streams on stdin (as the stack's user: the
    fanout mode connects to its database); prints and returns its output."""
    p = subprocess.Popen(evr._as_run_user([BENCH] + args), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, universal_newlines=True,
                         env=evr._stack_environ(), cwd="/")
    p.stdin.write("".join("%s %s\n" % l for l in lines))
    p.stdin.close()
    out = []
    for line in p.stdout:
        print("   " + line.rstrip())
        out.append(line)
        if on_line:
            on_line(line)
    if p.wait() != 0:
        raise SystemExit("sse-bench failed (exit %d)" % p.returncode)
    return out


def idle():
    n_orgs, per_org, per_session = 10, 200, 5
    print("preparing %d organizations x %d sessions" % (n_orgs, per_org))
    lines = [l for l in sessions(n_orgs, per_org) for _ in range(per_session)]
    sse = stack_pid("sse")
    master, workers = nginx_workers()
    before = rss_kb(sse), sum(rss_kb(w) for w in workers)
    fds_before = len(os.listdir("/proc/%d/fd" % sse))
    held = {}

    def sample(line):
        if line.startswith("holding"):
            time.sleep(3)
            held["sse"] = rss_kb(sse)
            held["nginx"] = sum(rss_kb(w) for w in workers)
            held["fds"] = len(os.listdir("/proc/%d/fd" % sse))
    print("%d streams, ramp at most 2,000 connections/s" % len(lines))
    run(["hold", "127.0.0.1", PORT, "8"], lines, sample)
    print("everruns-sse RSS: %.1f MB idle -> %.1f MB with the streams held "
          "(%.1f KB per stream; target <= 256 MB); fds %d -> %d"
          % (before[0] / 1024, held["sse"] / 1024,
             (held["sse"] - before[0]) / (len(lines)), fds_before, held["fds"]))
    print("nginx (%d workers) RSS: %.1f MB -> %.1f MB (%.1f KB per stream, "
          "client plus upstream connection)"
          % (len(workers), before[1] / 1024, held["nginx"] / 1024,
             (held["nginx"] - before[1]) / len(lines)))
    figures.record("everruns-sse RSS with %d idle streams" % len(lines), held["sse"] / 1024, "MB",
                   "lower", reference="idle %.1f MB" % (before[0] / 1024))
    figures.record("everruns-sse RSS / 256 MB target, %d idle streams" % len(lines),
                   held["sse"] / 1024 / 256, "x", "lower", "ratio", target=1.0)
    figures.record("nginx RSS per idle stream", (held["nginx"] - before[1]) / len(lines), "KB", "lower")


def fanout_case(title, label, args, lines):
    """One sse-bench fanout run; its distributions become figures."""
    print(title)
    pcts_file = os.path.join(HOME, "bench-pcts.txt")
    if os.path.exists(pcts_file):
        os.unlink(pcts_file)
    os.environ["BENCH_PCTS"] = pcts_file
    run(args, lines)
    if not os.path.exists(pcts_file):
        return
    with open(pcts_file) as f:
        for line in f:
            what, spec = line.rstrip("\n").split("\t")
            pcts = [tuple(map(float, x.split(":"))) for x in spec.split(",")]
            p = dict(pcts)
            ref = "libpq LISTEN" in what
            name = "%s, %s" % (label, "LISTEN reference" if ref else "SSE commit-to-client")
            p50_target = 1 if label == "light load" and not ref else None
            p99_target = 50 if label != "light load" and not ref else None
            figures.record(name + " p50", p[50.0], "ms", "lower", "latency", pcts=pcts,
                           target=p50_target)
            figures.record(name + " p99", p[99.0], "ms", "lower", "latency", target=p99_target)


def fanout():
    conninfo = stack_env("EVR_DATABASE_URL")
    fanout_case("light load: 1 stream, one event per round, 200 rounds", "light load",
                ["fanout", "127.0.0.1", PORT, conninfo, "200"], sessions(1, 1))
    fanout_case("one event to 1,000 streams of one session, 30 rounds", "1,000 streams of one session",
                ["fanout", "127.0.0.1", PORT, conninfo, "30"], sessions(1, 1) * 1000)
    fanout_case("one event to each of 1,000 sessions (one commit), one stream each, 20 rounds",
                "1,000 sessions", ["fanout", "127.0.0.1", PORT, conninfo, "20"], sessions(1, 1000))


if __name__ == "__main__":
    {"idle": idle, "fanout": fanout}[sys.argv[1]]()
