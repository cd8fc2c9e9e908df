"""Benchmarks of turns (issue "Turns"), printed, never asserted.

1. Turn overhead: 1,000 sequential turns on an instant llmsim model, from
   the POST of the message to turn.completed (measured by the client, which
   long-polls nothing: it polls the event log every millisecond, so the
   figure includes up to ~1 ms of polling) and, from the server's own
   event timestamps, input.message to turn.completed.
2. Durable event writes: many concurrent turns, each a burst of tool calls,
   so the runner writes events of many turns at once (the messages are
   posted while it is stopped, so the API's POST rate is not what is
   timed); events/s of the runner's events from their timestamps, next to pgbench inserting the same row shape one per
   transaction and 64 per transaction, in the same run.
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evr import api, psql, stack_pid  # noqa: E402
from benchlib import pool as run_threads  # noqa: E402
import figures  # noqa: E402

N_TURNS = int(os.environ.get("BENCH_TURNS", "1000"))
N_SESSIONS = int(os.environ.get("BENCH_SESSIONS", "400"))
TOOLS_PER_TURN = 20


pct = figures.pct


def setup():
    prv = [p for p in api("GET", "/api/v1/llm-providers").json["data"] if p["provider_type"] == "llmsim"][0]
    r = api("POST", "/api/v1/llm-providers/%s/models" % prv["id"],
            {"model_id": "llmsim-instant", "display_name": "instant", "capabilities": ["chat", "tools"]})
    assert r.status == 201, r.text
    model = r.json["id"]
    base = api("GET", "/api/v1/harnesses/base").json["id"]
    return model, base


def session(model, base, caps=None):
    body = {"harness_id": base, "model_id": model}
    if caps:
        body["capabilities"] = caps
    r = api("POST", "/api/v1/sessions", body)
    assert r.status == 201, r.text
    return r.json["id"]


def overhead(model, base, per_session):
    """N_TURNS turns, per_session of them in each session, one at a time."""
    lat, srv = [], []
    for first in range(0, N_TURNS, per_session):
        sid = session(model, base)
        since = 1
        for i in range(first, min(first + per_session, N_TURNS)):
            t0 = time.monotonic()
            r = api("POST", "/api/v1/sessions/%s/messages" % sid, {"message": {"content": "turn %d" % i}})
            assert r.status == 201, r.text
            while True:
                ev = api("GET", "/api/v1/sessions/%s/events?since_sequence=%d&types=turn.completed"
                         % (sid, since)).json["data"]
                if ev:
                    break
                time.sleep(0.001)
            lat.append((time.monotonic() - t0) * 1000)
            since = ev[-1]["sequence"] + 1  # session.idled follows
        srv += [float(x[0]) for x in psql(
            "SELECT extract(epoch FROM c.ts - i.ts) * 1000 FROM events i JOIN events c "
            "ON c.session_id = i.session_id AND c.turn_id = i.turn_id AND c.type = 'turn.completed' "
            "WHERE i.session_id = $1::uuid AND i.type = 'input.message'", sid[4:])]
    print("  turn overhead, %d turns on llmsim-instant, %d per session:" % (N_TURNS, per_session))
    print("    client POST -> turn.completed seen  p50 %.2f ms  p99 %.2f ms (includes 1 ms event polling)"
          % (pct(lat, 50), pct(lat, 99)))
    print("    server input.message -> turn.completed  p50 %.2f ms  p99 %.2f ms  (targets p50 <= 5, p99 <= 20)"
          % (pct(srv, 50), pct(srv, 99)))
    figures.latency("turn overhead, client, %d per session" % per_session, lat)
    figures.latency("turn overhead, server, %d per session" % per_session, srv)
    return pct(srv, 50)


HZ = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    """User + system CPU seconds of a process."""
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / HZ


def postgres_cpu_s():
    """CPU seconds of every postgres process of this machine."""
    total = 0.0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/comm" % d) as f:
                    if f.read().strip() != "postgres":
                        continue
                total += cpu_s(int(d))
            except (OSError, ValueError):
                pass
    return total


def event_writes(model, base):
    caps = [{"ref": "test_math"}]
    sids = [None] * N_SESSIONS

    def make(i):
        sids[i] = session(model, base, caps)
    run_threads(make, N_SESSIONS)
    calls = "\n".join('#tool calculate {"operation":"add","a":%d,"b":1}' % i for i in range(TOOLS_PER_TURN))
    # the overhead runs before left autovacuum work on these tables (its
    # insert and update thresholds); done now, it cannot land inside the
    # timed writes at a random moment (as pgbench vacuums before its runs)
    psql("VACUUM (ANALYZE) events, turns, sessions")
    before = int(psql("SELECT count(*) FROM events")[0][0])

    def post(i):
        r = api("POST", "/api/v1/sessions/%s/messages" % sids[i], {"message": {"content": calls}})
        assert r.status == 201, r.text
    # The messages are all posted while the runner is stopped, so what is
    # timed is the runner's writing (claims, the tool loop, the batched
    # event writes), not the API's POST rate: the runner's events, from
    # its first to its last, after it is let go.
    runner = stack_pid("runner")
    os.kill(runner, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        run_threads(post, N_SESSIONS)
        posted = time.monotonic() - t0
    finally:
        cpu0, pg0 = cpu_s(runner), postgres_cpu_s()
        os.kill(runner, signal.SIGCONT)
    t0 = time.monotonic()
    deadline = time.monotonic() + 300
    while int(psql("SELECT count(*) FROM sessions WHERE status = 'active'")[0][0]) and time.monotonic() < deadline:
        time.sleep(0.2)
    wall = time.monotonic() - t0
    cpu, pg = cpu_s(runner) - cpu0, postgres_cpu_s() - pg0
    ids = "{" + ",".join(s[4:] for s in sids) + "}"
    total = int(psql("SELECT count(*) FROM events WHERE type <> 'session.started' "
                     "AND session_id = ANY($1::uuid[])", ids)[0][0])
    n, span = psql("SELECT count(*), extract(epoch FROM max(ts) - min(ts)) FROM events "
                   "WHERE type NOT IN ('session.started', 'input.message', 'session.activated') "
                   "AND session_id = ANY($1::uuid[])", ids)[0]
    n, span = int(n), float(span)
    print("  durable event writes: %d turns x %d tool calls at once, %d events (%d by the runner)"
          % (N_SESSIONS, TOOLS_PER_TURN, total, n))
    print("    runner: %.0f events/s over %.2f s of writes (messages posted first, in %.1f s, "
          "with the runner stopped; all idle %.1f s after it resumed)" % (n / span, span, posted, wall))
    print("    CPU while they ran: everruns-runner %.2f s, PostgreSQL %.2f s (%.1f / %.1f us per event)"
          % (cpu, pg, cpu / n * 1e6, pg / n * 1e6))
    figures.record("durable event writes, runner", n / span, "events/s")
    out = os.environ.get("BENCH_EVENTS_OUT")
    if out:
        with open(out, "w") as f:
            f.write("%.1f\n" % (n / span))
    assert int(psql("SELECT count(*) FROM events")[0][0]) - before == total
    return n



def main():
    model, base = setup()
    # a conversation's own history grows with it; the overhead of a turn
    # is measured on conversations of 10 turns, and once on one long one
    short = overhead(model, base, 10)
    long_ = overhead(model, base, N_TURNS)
    print("    p50 in one conversation of %d turns = %.2f x p50 in 10-turn conversations (target <= 1.2)"
          % (N_TURNS, long_ / short))
    figures.record("turn overhead p50, long / 10-turn conversations", long_ / short, "x",
                   better="lower", kind="ratio", target=1.2,
                   reference="server p50 in 10-turn conversations, same run")
    event_writes(model, base)


if __name__ == "__main__":
    main()
