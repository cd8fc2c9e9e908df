"""bystander: a second organization doing ordinary work while a test
attacks the server, so the test can check that one tenant cannot take the
server from the others.

    from bystander import Bystander

    b = Bystander("bystander")           # its own organization (once per class)
    quiet = b.measure(2.0)               # the load alone, for 2 s
    with b.running() as load:            # the same load in background threads
        attack()                         #   while the block runs (>= 1.5 s)
    b.check(quiet, load, "runaway grep") # every operation completed without
                                         #   error; prints p50/p99 side by side

The load: `workers` threads (default 2), each with a session of its own
(the built-in simulator, model llmsim-instant, and a file system). Each
worker repeats, in an order drawn from a seeded random generator (the seed
is printed; Bystander(seed=N) replays it): ordinary REST requests (get the
session, write and read a small file, list the agents, page the events)
and, every `turn_every` operations, a whole turn (post a message, wait for
session.idled). Every loop is bounded in count and time: at most
`max_ops` operations per worker, an HTTP timeout of `op_timeout` s per
request and a turn wait of `op_timeout` s; running() stops its workers
when its block ends and waits for the operation each is in, so a stalled
server shows up as errors and as latency, never as a hang.

A Load holds the latencies in seconds (`rest`, `turns`), the `errors`
(strings) and the wall time; `summary()` is one line with the counts and
p50/p99 of each kind.
"""

import random
import threading
import time
from contextlib import contextmanager

from evr import api, new_org

__all__ = ["Bystander", "Load"]


def _pct(xs, p):
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


class Load:
    """What the workers did: latencies in seconds and errors."""

    def __init__(self):
        self.rest, self.turns, self.errors = [], [], []
        self.seconds = 0.0
        self._lock = threading.Lock()

    def add(self, kind, seconds=None, error=None):
        with self._lock:
            if error is not None:
                self.errors.append(error)
            else:
                (self.turns if kind == "turn" else self.rest).append(seconds)

    def summary(self):
        def one(name, xs):
            return "%s n=%d p50=%.0f ms p99=%.0f ms" % (
                name, len(xs), _pct(xs, 50) * 1000, _pct(xs, 99) * 1000)
        return "%s; %s; errors=%d in %.1f s" % (
            one("rest", self.rest), one("turns", self.turns),
            len(self.errors), self.seconds)


class Bystander:
    """An organization with `workers` sessions of the simulator; see the
    module's text for the API."""

    def __init__(self, name="bystander", workers=2, turn_every=4,
                 max_ops=400, op_timeout=20.0, seed=None):
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        print("bystander %s: seed %d" % (name, self.seed), flush=True)
        self.key = new_org(name)["api_key"]
        self.turn_every, self.max_ops = turn_every, max_ops
        self.op_timeout = op_timeout
        prv = [p for p in self._ok("GET", "/api/v1/llm-providers").json["data"]
               if p["provider_type"] == "llmsim"][0]["id"]
        model = self._ok("POST", "/api/v1/llm-providers/%s/models" % prv,
                         {"model_id": "llmsim-instant",
                          "capabilities": ["chat", "tools"]}).json["id"]
        harness = self._ok("GET", "/api/v1/harnesses/base").json["id"]
        self.sessions = []
        for _ in range(workers):
            r = self._ok("POST", "/api/v1/sessions",
                         {"harness_id": harness, "model_id": model,
                          "capabilities": [{"ref": "session_file_system"}]})
            self.sessions.append({"id": r.json["id"], "seq": 0})
        self._round = 0

    def _ok(self, method, path, body=None, want=(200, 201)):
        r = api(method, path, body, key=self.key, timeout=self.op_timeout)
        if r.status not in want:
            raise AssertionError("bystander: %s %s: %r" % (method, path, r))
        return r

    # --- one operation of each kind ---------------------------------------

    def _rest(self, s, rng):
        sid = s["id"]
        which = rng.randrange(4)
        if which == 0:
            self._ok("GET", "/api/v1/sessions/" + sid)
        elif which == 1:
            body = "line %d\n" % rng.randrange(1 << 20)
            self._ok("PUT", "/api/v1/sessions/%s/fs/notes.txt" % sid,
                     {"content": body})
            r = self._ok("GET", "/api/v1/sessions/%s/fs/notes.txt" % sid)
            if r.json.get("content") != body:
                raise AssertionError("bystander: read back %r" % r.json)
        elif which == 2:
            self._ok("GET", "/api/v1/agents")
        else:
            self._ok("GET", "/api/v1/sessions/%s/events?since_sequence=%d&limit=20"
                     % (sid, max(0, s["seq"] - 5)))

    def _turn(self, s):
        sid = s["id"]
        self._ok("POST", "/api/v1/sessions/%s/messages" % sid,
                 {"message": {"content": "#text fine thanks"}})
        deadline = time.monotonic() + self.op_timeout
        while True:
            r = self._ok("GET", "/api/v1/sessions/%s/events?since_sequence=%d&limit=100"
                         % (sid, s["seq"]))
            evs = r.json["data"]
            if evs:
                s["seq"] = evs[-1]["sequence"]
            types = [e["type"] for e in evs]
            if "turn.failed" in types:
                raise AssertionError("bystander: turn failed: %r" % evs)
            if "session.idled" in types:
                return
            if time.monotonic() > deadline:
                raise AssertionError("bystander: no session.idled within %.0f s"
                                     % self.op_timeout)
            time.sleep(0.02)

    def _worker(self, s, rng, load, stop):
        for i in range(self.max_ops):
            if stop.is_set():
                return
            kind = "turn" if i % self.turn_every == self.turn_every - 1 else "rest"
            t = time.monotonic()
            try:
                if kind == "turn":
                    self._turn(s)
                else:
                    self._rest(s, rng)
            except Exception as e:  # noqa: BLE001 - every failure counts
                load.add(kind, error="%s: %s" % (kind, e))
                continue
            load.add(kind, time.monotonic() - t)

    # --- the API ----------------------------------------------------------

    @contextmanager
    def running(self, min_seconds=1.5):
        """The load in background threads for the duration of the block
        (at least min_seconds, so a quick attack still meets some turns);
        yields the Load, complete once the block has ended."""
        load, stop = Load(), threading.Event()
        self._round += 1
        threads = [threading.Thread(
            target=self._worker,
            args=(s, random.Random(self.seed * 1000 + self._round * 10 + k), load, stop),
            daemon=True) for k, s in enumerate(self.sessions)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        try:
            yield load
            left = min_seconds - (time.monotonic() - t0)
            if left > 0:
                time.sleep(left)
        finally:
            stop.set()
            # an operation in flight ends by its own timeouts
            for t in threads:
                t.join(timeout=3 * self.op_timeout)
            load.seconds = time.monotonic() - t0
            if any(t.is_alive() for t in threads):
                load.add("rest", error="a worker did not finish")

    def measure(self, seconds):
        """The load alone for `seconds`."""
        with self.running() as load:
            time.sleep(seconds)
        return load

    def check(self, quiet, load, label):
        """Print both loads side by side; AssertionError unless every
        operation of both completed and the attack's load did some of
        each kind."""
        print("\n  bystander during %s:\n    without attack: %s\n    with attack:    %s"
              % (label, quiet.summary(), load.summary()), flush=True)
        for name, l in (("without attack", quiet), ("with attack", load)):
            if l.errors:
                raise AssertionError("bystander work failed %s (%s): %s"
                                     % (name, label, l.errors[:3]))
        if not load.rest or not load.turns:
            raise AssertionError("bystander did no %s during %s"
                                 % ("turn" if load.rest else "request", label))
