"""Soak: a mixed load for SOAK_S seconds against a running stack, with the
resident memory of every program sampled every SOAK_SAMPLE_S seconds
(from GET /metrics) and printed as a series.

    EVR_BASE_URL=... EVR_ADMIN_KEY=... EVR_HOME=... python3 soak.py

The load, on threads: REST calls (list, create, read, update, delete
sessions; read agents and models), turns on the llmsim models (streamed
text, tool calls), SSE streams that follow a turn and hang up, long-polls.
At the end: the number of each operation and of errors, and whether the
memory of each program stayed flat after the warm-up (the first third of
the run): growth from the first sample after the warm-up to the last one
of at most SOAK_MAX_GROWTH_PCT percent (or 4 MiB). Exit 1 when a program
grew more (unless SOAK_CHECK_RSS=0), or when an operation failed more
than 1 % of the time.
"""
import http.client
import os
import random
import re
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from evr import api, BASE  # noqa: E402

DURATION = float(os.environ.get("SOAK_S", "600"))
SAMPLE = float(os.environ.get("SOAK_SAMPLE_S", "5"))
MAX_GROWTH = float(os.environ.get("SOAK_MAX_GROWTH_PCT", "20"))
CHECK_RSS = os.environ.get("SOAK_CHECK_RSS", "1") != "0"
REST_THREADS = int(os.environ.get("SOAK_REST_THREADS", "3"))
TURN_THREADS = int(os.environ.get("SOAK_TURN_THREADS", "3"))
STREAM_THREADS = int(os.environ.get("SOAK_STREAM_THREADS", "3"))
PROGRAMS = ("api", "sse", "runner", "nginx")
RSS = re.compile(r'^everruns_process_resident_memory_bytes\{program="([a-z]+)"\} (\d+)$', re.M)

stop = threading.Event()
lock = threading.Lock()
counts = {}
errors = {}


def note(op, ok, detail=""):
    with lock:
        counts[op] = counts.get(op, 0) + 1
        if not ok:
            errors[op] = errors.get(op, 0) + 1
            if errors[op] <= 3:
                print("  error in %s: %s" % (op, detail[:200]), flush=True)


def agent_id():
    return api("GET", "/api/v1/agents/assistant").json["id"]


def rest_loop(agent):
    while not stop.is_set():
        r = api("POST", "/api/v1/sessions", {"agent_id": agent, "title": "soak", "tags": ["soak"]})
        note("session.create", r.status == 201, r.text)
        if r.status != 201:
            time.sleep(0.5)
            continue
        sid = r.json["id"]
        for op, (m, p, b, want) in (
                ("session.get", ("GET", "/api/v1/sessions/" + sid, None, 200)),
                ("session.update", ("PATCH", "/api/v1/sessions/" + sid, {"title": "soak 2"}, 200)),
                ("sessions.list", ("GET", "/api/v1/sessions?limit=20", None, 200)),
                ("agents.get", ("GET", "/api/v1/agents/assistant", None, 200)),
                ("models.list", ("GET", "/api/v1/llm-models", None, 200)),
                ("health", ("GET", "/health", None, 200)),
                ("session.delete", ("DELETE", "/api/v1/sessions/" + sid, None, 204))):
            r = api(m, p, b)
            note(op, r.status == want, "%d %s" % (r.status, r.text))


def wait_idle(sid, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        r = api("GET", "/api/v1/sessions/" + sid)
        if r.status == 200 and r.json["status"] == "idle":
            return True
        time.sleep(0.2)
    return stop.is_set()


MESSAGES = ["#tokens 40\n#rate 200", "Hello there", '#tool test_math {"operation":"add","a":2,"b":3}',
            "#think\n#tokens 20\n#rate 400"]


def turn_loop(agent):
    r = api("POST", "/api/v1/sessions", {"agent_id": agent, "title": "soak turns"})
    sid = r.json["id"]
    n = 0
    while not stop.is_set():
        n += 1
        text = random.choice(MESSAGES)
        r = api("POST", "/api/v1/sessions/%s/messages" % sid,
                {"message": {"content": [{"type": "text", "text": text}]}})
        note("turn", r.status == 201, "%d %s" % (r.status, r.text))
        if r.status == 201:
            note("turn.idle", wait_idle(sid), "turn did not finish")
        if n % 20 == 0:  # a fresh session now and then: history stays short
            api("DELETE", "/api/v1/sessions/" + sid)
            sid = api("POST", "/api/v1/sessions", {"agent_id": agent}).json["id"]


def stream_once(sid, key):
    u = urllib.parse.urlsplit(BASE)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        c.request("GET", "/api/v1/sessions/%s/sse" % sid,
                  headers={"Authorization": "Bearer " + key, "Accept": "text/event-stream"})
        r = c.getresponse()
        if r.status != 200:
            return False
        r2 = api("POST", "/api/v1/sessions/%s/messages" % sid,
                 {"message": {"content": [{"type": "text", "text": "#tokens 30\n#rate 300"}]}})
        if r2.status != 201:
            return False
        while True:
            line = r.readline()
            if not line:
                return False
            if line.startswith(b"event: session.idled"):
                return True
    finally:
        c.close()


def stream_loop(agent, key):
    while not stop.is_set():
        sid = api("POST", "/api/v1/sessions", {"agent_id": agent}).json["id"]
        try:
            ok = stream_once(sid, key)
        except OSError as e:
            ok = False
            note("stream", False, repr(e))
            continue
        note("stream", ok, "stream ended early")
        r = api("GET", "/api/v1/sessions/%s/events?since_sequence=1&wait=1" % sid)
        note("longpoll", r.status == 200, r.text)
        api("DELETE", "/api/v1/sessions/" + sid)


def rss():
    r = api("GET", "/metrics", key=None)
    if r.status != 200:
        return None
    return {p: int(v) for p, v in RSS.findall(r.text)}


def main():
    from evr import ADMIN_KEY
    agent = agent_id()
    threads = [threading.Thread(target=rest_loop, args=(agent,)) for _ in range(REST_THREADS)]
    threads += [threading.Thread(target=turn_loop, args=(agent,)) for _ in range(TURN_THREADS)]
    threads += [threading.Thread(target=stream_loop, args=(agent, ADMIN_KEY))
                for _ in range(STREAM_THREADS)]
    for t in threads:
        t.daemon = True
        t.start()
    print("soak: %d s, RSS sampled every %g s (MiB)" % (DURATION, SAMPLE))
    print("%7s %8s %8s %8s %8s %9s" % (("t (s)",) + PROGRAMS + ("ops",)))
    series = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < DURATION:
        time.sleep(SAMPLE)
        m = rss()
        if not m:
            print("  /metrics did not answer")
            continue
        t = time.monotonic() - t0
        series.append((t, m))
        with lock:
            ops = sum(counts.values())
        print("%7.0f %s %9d" % (t, " ".join("%8.1f" % (m.get(p, 0) / 1048576) for p in PROGRAMS),
                                ops), flush=True)
    stop.set()
    for t in threads:
        t.join(timeout=70)

    print("\noperations (errors):")
    bad = False
    for op in sorted(counts):
        e = errors.get(op, 0)
        print("  %-16s %7d (%d)" % (op, counts[op], e))
        if e > counts[op] * 0.01:
            bad = True
    if not CHECK_RSS:
        return 1 if bad else 0
    warm = [s for s in series if s[0] >= DURATION / 3]
    if len(warm) < 2:
        print("too few samples after the warm-up")
        return 1
    print("\nRSS after the warm-up (%.0f s .. %.0f s):" % (warm[0][0], warm[-1][0]))
    for p in PROGRAMS:
        a, b = warm[0][1].get(p, 0), warm[-1][1].get(p, 0)
        peak = max(s[1].get(p, 0) for s in warm)
        growth = (b - a) * 100.0 / a if a else 0.0
        flat = b - a <= 4 * 1048576 or growth <= MAX_GROWTH
        print("  %-7s %7.1f -> %7.1f MiB (peak %.1f, %+.1f %%) %s" % (
            p, a / 1048576, b / 1048576, peak / 1048576, growth, "flat" if flat else "GROWING"))
        bad = bad or not flat
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
