"""Benchmark: turns waiting for client-side tool results (ARCHITECTURE
3.9), printed, never asserted.

1. The runner's RSS when idle, after a warm-up round of the same work
   (N turns waiting at once, then answered: the allocator's and the
   history cache's high-water marks are reached), then with N new turns
   waiting at once (each asked the client for one call): a waiting turn
   is held by no runner, so the figure should stay at the idle one.
2. Answering all N at once: the resumed turns' rate (turns/s, from the
   first turn.resumed to the last turn.completed, server timestamps),
   next to the rate of N plain turns started at once on the same model
   in the same run (the turn-overhead reference), and the server's
   input.message -> turn.completed p50 of sequential plain turns.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evr import api, psql, stack_pid, wait_until  # noqa: E402
from benchlib import pool  # noqa: E402
import figures  # noqa: E402

N = int(os.environ.get("BENCH_WAITING", "1000"))
TOOL = {"type": "client_side", "name": "get_location", "description": "Where the user is.",
        "parameters": {"type": "object", "properties": {}}}


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def sessions(model, base, n, tools=None):
    out = [None] * n

    def mk(i):
        body = {"harness_id": base, "model_id": model}
        if tools:
            body["tools"] = tools
        r = api("POST", "/api/v1/sessions", body)
        assert r.status == 201, r.text
        out[i] = r.json["id"]
    pool(mk, n)
    return out


def send_all(sids, text):
    def go(i):
        r = api("POST", "/api/v1/sessions/%s/messages" % sids[i], {"message": {"content": text}})
        assert r.status == 201, r.text
    pool(go, len(sids))


def count(sql, sids):
    return int(psql(sql, "{%s}" % ",".join(s[4:] for s in sids))[0][0])


def rate(first_type, sids):
    """turns/s from the first `first_type` event to the last turn.completed."""
    row = psql("SELECT count(*) FILTER (WHERE type = 'turn.completed'), "
               "extract(epoch FROM max(ts) FILTER (WHERE type = 'turn.completed') "
               "  - min(ts) FILTER (WHERE type = $2)) "
               "FROM events WHERE session_id = ANY($1::uuid[])",
               "{%s}" % ",".join(s[4:] for s in sids), first_type)[0]
    return int(row[0]) / max(float(row[1]), 1e-6)


def main():
    prv = [p for p in api("GET", "/api/v1/llm-providers").json["data"] if p["provider_type"] == "llmsim"][0]
    model = api("POST", "/api/v1/llm-providers/%s/models" % prv["id"],
                {"model_id": "llmsim-instant", "display_name": "instant",
                 "capabilities": ["chat", "tools"]}).json["id"]
    base = api("GET", "/api/v1/harnesses/base").json["id"]
    runner = stack_pid("runner")
    done_sql = ("SELECT count(*) FROM turns WHERE session_id = ANY($1::uuid[]) "
                "AND state = 'completed'")

    # warm-up and the turn-overhead reference: N plain turns at once
    plain = sessions(model, base, N)
    send_all(plain, "hello")
    wait_until(lambda: count(done_sql, plain) == N, timeout=600, what="plain turns")
    plain_rate = rate("input.message", plain)
    seq = sessions(model, base, 1)[0]
    srv = []
    for i in range(100):
        send_all([seq], "turn %d" % i)
        wait_until(lambda: api("GET", "/api/v1/sessions/" + seq).json["status"] == "idle",
                   timeout=30, interval=0.001, what="sequential turn")
    srv = [float(x[0]) for x in psql(
        "SELECT extract(epoch FROM c.ts - i.ts) * 1000 FROM events i JOIN events c "
        "ON c.session_id = i.session_id AND c.turn_id = i.turn_id AND c.type = 'turn.completed' "
        "WHERE i.session_id = $1::uuid AND i.type = 'input.message'", seq[4:])]
    def wait_round():
        sids = sessions(model, base, N, tools=[TOOL])
        send_all(sids, "#tool get_location {}")
        wait_until(lambda: count("SELECT count(*) FROM turns WHERE session_id = ANY($1::uuid[]) "
                                 "AND state = 'waiting'", sids) == N, timeout=600, what="all waiting")
        return sids

    def answer_round(sids):
        calls = {}
        for sid, cid in psql("SELECT evr_id('ses', session_id), data->'tool_calls'->0->>'id' "
                             "FROM events WHERE session_id = ANY($1::uuid[]) "
                             "AND type = 'tool.call_requested'",
                             "{%s}" % ",".join(s[4:] for s in sids)):
            calls[sid] = cid

        def answer(i):
            r = api("POST", "/api/v1/sessions/%s/tool-results" % sids[i],
                    {"tool_results": [{"tool_call_id": calls[sids[i]], "result": "Kyiv"}]})
            assert r.status == 200, r.text
        t0 = time.monotonic()
        pool(answer, N)
        took = time.monotonic() - t0
        wait_until(lambda: count(done_sql, sids) == N, timeout=600, what="resumed turns")
        return took

    answer_round(wait_round())  # warm-up
    time.sleep(1)
    idle = rss(runner)
    waiting = wait_round()
    time.sleep(1)
    held = rss(runner)
    leases = count("SELECT count(*) FROM turns WHERE session_id = ANY($1::uuid[]) "
                   "AND lease_owner IS NOT NULL", waiting)
    answered_s = answer_round(waiting)
    resumed_rate = rate("turn.resumed", waiting)

    print("  %d turns waiting for a client-side tool at once:" % N)
    print("    runner RSS idle %.1f MiB, with them waiting %.1f MiB (+%.1f MiB); leases held: %d"
          % (idle / 2**20, held / 2**20, (held - idle) / 2**20, leases))
    print("    answering all: %.0f answers/s (client); resumed turns %.0f turns/s"
          % (N / answered_s, resumed_rate))
    print("    reference, same run: %d plain turns at once %.0f turns/s; sequential turn overhead "
          "p50 %.2f ms (server)" % (N, plain_rate, figures.pct(srv, 50)))
    figures.record("runner RSS idle", idle / 2**20, "MiB", better="lower")
    figures.record("runner RSS with %d turns waiting" % N, held / 2**20, "MiB", better="lower",
                   reference="runner RSS idle")
    figures.record("resumed turns after answers", resumed_rate, "turns/s",
                   reference="plain turns at once")
    figures.record("plain turns at once", plain_rate, "turns/s")
    figures.latency("turn overhead (server), sequential", srv)


if __name__ == "__main__":
    main()
