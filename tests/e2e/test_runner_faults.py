"""The runner's faults (issue 13), each made to happen on purpose:

- a cancel that lands while the turn's last events are on their way;
- a cancel notification lost with the LISTEN connection;
- a cancel notification read by libpq during the runner's heartbeat;
- a database that accepts connections and never answers;
- a failed event flight followed by the turn's queued events;
- a takeover that finds the answer already in the log;
- deltas from a runner that lost its lease;
- the turn's wall-time limit across takeovers, and a tool's time limit;
- a tool run by a runner that lost its lease;
- a turn queued while no runner is alive.

Locks that hold a statement up are taken by a psql kept open (HeldTx);
runners with special settings are extra everruns-runner processes
(evr.start_runner) while the stack's own runner is stopped (SIGSTOP)."""

import json
import os
import signal
import socket
import subprocess
import time
import unittest
import uuid

import evr
from evr import api, psql, new_org, wait_until, start_runner, stack_pid, ctl, at_once
from stacks import ExtraStack
from test_drivers import Fake, fake_providers
from test_turns import events, send, wait_idle


def turn_row(turn):
    return psql("SELECT state, attempt FROM turns WHERE id = $1::uuid", turn[4:])[0]


def holder_pid(turn):
    rows = psql("SELECT r.pid FROM turns t JOIN runners r ON r.id = t.lease_owner "
                "WHERE t.id = $1::uuid AND t.state = 'running'", turn[4:])
    return int(rows[0][0]) if rows else None


def signal_pid(pid, sig):
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, TypeError):
        pass


class HeldTx:
    """A psql session kept open: statements go in one by one (each waits
    for its answer), so a transaction holds its locks until commit()."""

    def __init__(self):
        argv = [evr._psql_bin(), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-d", evr.stack_env("EVR_DATABASE_URL")]
        self.p = subprocess.Popen(evr._as_run_user(argv), env=evr._stack_environ(), cwd="/",
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, universal_newlines=True, bufsize=1)

    def run(self, sql):
        mark = "done-%s" % uuid.uuid4().hex[:8]
        self.p.stdin.write(sql.rstrip().rstrip(";") + ";\n\\echo %s\n" % mark)
        self.p.stdin.flush()
        out = []
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise AssertionError("psql ended: %s" % "".join(out))
            if line.strip() == mark:
                return out
            out.append(line)

    def close(self, how="ROLLBACK"):
        if self.p.poll() is None:
            try:
                self.p.stdin.write(how + ";\n\\q\n")
                self.p.stdin.flush()
            except OSError:
                pass
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def waiting_backends(query_like):
    """Backends waiting for a lock while running a statement like this."""
    return [r[0] for r in psql(
        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query LIKE $1", query_like)]


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = Fake()
        cls.key = new_org("runner-faults-" + cls.__name__)["api_key"]
        cls.providers = fake_providers(cls.fake, cls.key)
        cls.harness = api("GET", "/api/v1/harnesses/base", key=cls.key).json["id"]
        cls.agent = api("GET", "/api/v1/agents/assistant", key=cls.key).json["id"]

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def setUp(self):
        self.runner = stack_pid("runner")
        self.extras = []
        self.addCleanup(self.cleanup)

    def cleanup(self):
        for p in self.extras:
            signal_pid(p.pid, signal.SIGCONT)
            signal_pid(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
        signal_pid(self.runner, signal.SIGCONT)
        if not stack_pid("runner") or not os.path.exists("/proc/%d" % stack_pid("runner")):
            ctl("start")

    def extra(self, **env):
        p = start_runner(log_name="runner-faults", **env)
        self.extras.append(p)
        wait_until(lambda: psql("SELECT 1 FROM runners WHERE pid = $1 AND seen_at > now() - "
                                "interval '2 s'", p.pid), timeout=10, what="the extra runner")
        return p

    def only_extra(self, **env):
        """The stack's runner stopped, one extra runner with env."""
        os.kill(self.runner, signal.SIGSTOP)
        return self.extra(**env)

    def model(self):
        name = "m-" + uuid.uuid4().hex[:12]
        r = api("POST", "/api/v1/llm-providers/%s/models" % self.providers["openai_completions"],
                {"model_id": name, "capabilities": ["chat", "tools"]}, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return name, r.json["id"]

    def session(self, model_id=None, caps=("test_math",)):
        body = {"harness_id": self.harness,
                "capabilities": [{"ref": c} for c in caps]}
        if model_id:
            body["model_id"] = model_id
        else:
            body = {"agent_id": self.agent, "capabilities": body["capabilities"]}
        r = api("POST", "/api/v1/sessions", body, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return r.json["id"]

    def status(self, sid):
        return api("GET", "/api/v1/sessions/" + sid, key=self.key).json["status"]

    def idle_within(self, sid, t0, limit):
        wait_until(lambda: self.status(sid) == "idle", timeout=max(limit * 4, 10),
                   interval=0.01, what="the session to be idle")
        took = time.monotonic() - t0
        self.assertLess(took, limit, "idle after %.2f s" % took)
        return took


class Cancels(Base):
    def cancel(self, sid, turn):
        c = api("POST", "/api/v1/sessions/%s/cancel" % sid, key=self.key)
        self.assertEqual((c.status, c.json["status"]), (200, "cancelled"), c.text)
        # the runner's lease was live: the runner is the one to finish it
        self.assertEqual(turn_row(turn)[0], "cancelling")

    def check_cancelled(self, sid, turn):
        evs = wait_idle(self.key, sid, 1)
        types = [e["type"] for e in evs]
        self.assertEqual(types[-2:], ["output.message.completed", "session.idled"], types)
        self.assertEqual(evs[-2]["data"]["message"]["content"][0]["text"],
                         "Work was cancelled by user.")
        self.assertNotIn("turn.completed", types)
        self.assertEqual(turn_row(turn)[0], "cancelled")

    def test_cancel_while_the_last_events_are_queued(self):
        # the answer has arrived (the fake sent all of it) but the runner
        # is stopped: the cancel lands, then the runner queues
        # turn.completed, which the fence refuses; the cancel pair follows
        name, mid = self.model()
        self.fake.script(name, {"text": "an answer in three parts", "chunks": 3, "delay_ms": 80})
        sid = self.session(mid)
        m = send(self.key, sid, "hello")
        turn = m.json["turn_id"]
        wait_until(lambda: self.fake.requests(name), timeout=10, interval=0.01,
                   what="the provider call")
        os.kill(self.runner, signal.SIGSTOP)
        try:
            wait_until(lambda: self.fake.requests(name)[0]["completed"], timeout=5,
                       what="the whole answer sent")
            self.cancel(sid, turn)
        finally:
            os.kill(self.runner, signal.SIGCONT)
        t0 = time.monotonic()
        took = self.idle_within(sid, t0, 1.0)
        print("cancel while finishing: idle %.0f ms after the runner resumed" % (took * 1000))
        self.check_cancelled(sid, turn)

    def test_cancel_lost_with_the_listen_connection(self):
        sid = self.session()
        m = send(self.key, sid, "#tokens 200\n#rate 20")
        turn = m.json["turn_id"]
        wait_until(lambda: events(self.key, sid, 1, types="output.message.started"),
                   timeout=10, what="streaming")
        os.kill(self.runner, signal.SIGSTOP)
        try:
            # every connection of the runner is cut (its LISTEN one too):
            # the cancel's notification goes nowhere
            cut = psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE state = 'idle' AND (query LIKE '%INSERT INTO runners%' "
                       "OR query LIKE '%evr_renew%' OR query LIKE '%evr_claim%' "
                       "OR query LIKE '%evr_turn_config%' OR query LIKE '%evr_write_%')")
            self.assertGreaterEqual(int(cut[0][0]), 1)
            self.cancel(sid, turn)
        finally:
            os.kill(self.runner, signal.SIGCONT)
        t0 = time.monotonic()
        took = self.idle_within(sid, t0, 2.0)
        print("cancel lost across a reconnect: idle %.0f ms after the runner resumed"
              % (took * 1000))
        self.check_cancelled(sid, turn)

    def test_cancel_read_during_the_heartbeat_acts_at_once(self):
        # renewals every 5 s, a provider that never answers: nothing
        # wakes the runner but its socket (and the 1 s cap of its poll)
        self.only_extra(EVERRUNS_LEASE_S=30, EVERRUNS_LEASE_RENEW_S=5,
                        EVERRUNS_RUNNER_POLL_S=30, EVERRUNS_LLM_FIRST_BYTE_TIMEOUT_S=60,
                        EVERRUNS_LLM_IDLE_TIMEOUT_S=60)
        name, mid = self.model()
        self.fake.script(name, {"hang_after_headers": True})
        sid, other = self.session(mid), self.session()
        m = send(self.key, sid, "hello")
        turn = m.json["turn_id"]
        wait_until(lambda: self.fake.requests(name), timeout=10, what="the provider call")
        owner = psql("SELECT lease_owner FROM turns WHERE id = $1::uuid", turn[4:])[0][0]
        tx = HeldTx()
        try:
            tx.run("BEGIN; SELECT 1 FROM runners WHERE id = '%s' FOR UPDATE" % owner)
            wait_until(lambda: waiting_backends("INSERT INTO runners%"), timeout=8,
                       what="the heartbeat to wait")
            self.cancel(sid, turn)
            # and a new turn elsewhere
            self.assertEqual(send(self.key, other, "#tokens 2").status, 201)
            time.sleep(0.3)  # the notifications reach the waiting connection
        finally:
            tx.close("COMMIT")
        t0 = time.monotonic()
        took = {}

        def both():
            if "cancel" not in took and self.status(sid) == "idle":
                took["cancel"] = time.monotonic() - t0
            if "start" not in took and events(self.key, other, 1, types="turn.started"):
                took["start"] = time.monotonic() - t0
            return len(took) == 2
        wait_until(both, timeout=10, interval=0.01, what="the cancel and the new turn")
        print("during a heartbeat: the cancel acted after %.0f ms, the new turn started "
              "after %.0f ms" % (took["cancel"] * 1000, took["start"] * 1000))
        self.assertLess(took["cancel"], at_once(0.4))
        self.assertLess(took["start"], at_once(0.4))
        self.check_cancelled(sid, turn)


class Connections(Base):
    def test_database_that_never_answers(self):
        # accepts the TCP connection (the kernel's backlog) and says nothing
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        self.addCleanup(s.close)
        log = os.path.join(evr.HOME, "log", "runner-faults.log")
        size = os.path.getsize(log) if os.path.exists(log) else 0
        p = start_runner(log_name="runner-faults",
                         EVERRUNS_DATABASE_URL="host=127.0.0.1 port=%d dbname=everruns user=everruns"
                         % s.getsockname()[1], EVERRUNS_DB_CONNECT_TIMEOUT_S=1)
        self.extras.append(p)

        def gave_up():
            with open(log, errors="replace") as f:
                f.seek(size)
                return "database connection failed" in f.read()
        t0 = time.monotonic()
        wait_until(gave_up, timeout=8, what="the runner to give up connecting")
        print("a silent database: the first connection gave up after %.1f s"
              % (time.monotonic() - t0))


    def test_sse_gives_up_a_silent_database_in_time(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        self.addCleanup(s.close)
        binary = evr.stack_env("EVR_SSE_BIN") or os.path.join(evr.BUILDDIR, "fcgi", "sse",
                                                                "everruns-sse")
        env = evr._stack_environ()
        env.update({"EVERRUNS_DATABASE_URL": "host=127.0.0.1 port=%d dbname=everruns "
                    "user=everruns" % s.getsockname()[1], "EVERRUNS_DB_CONNECT_TIMEOUT_S": "1"})
        log = os.path.join(evr.HOME, "log", "sse-faults.log")
        with open(log, "wb") as out:
            p = subprocess.Popen(evr._as_run_user(
                [binary, "--socket", os.path.join(evr.HOME, "run", "sse-faults.sock")]),
                env=env, cwd="/", stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        self.extras.append(p)

        def gave_up():
            with open(log, errors="replace") as f:
                return "LISTEN connection: timed out" in f.read()
        t0 = time.monotonic()
        wait_until(gave_up, timeout=4, what="everruns-sse to give up connecting")
        print("a silent database: everruns-sse gave up after %.1f s" % (time.monotonic() - t0))


class Writes(Base):
    def test_failed_flight_writes_nothing_after_it(self):
        name, mid = self.model()
        call = {"id": "c1", "name": "calculate", "arguments": json.dumps({"expression": "6*7"})}
        self.fake.script(name, {"text": "let me compute", "tool_calls": [call], "delay_ms": 600},
                         {"text": "it is 42", "chunks": 3, "delay_ms": 300},
                         {"text": "42"}, {"text": "42"})
        sid = self.session(mid)
        tx = HeldTx()
        try:
            m = send(self.key, sid, "what is 6*7?")
            turn = m.json["turn_id"]
            wait_until(lambda: events(self.key, sid, 1, types="reason.started"), timeout=10,
                       interval=0.01, what="reason.started")
            # the next flight (output.message.started) waits for the
            # session; the rest of the round queues up behind it
            tx.run("BEGIN; SELECT 1 FROM sessions WHERE id = '%s' FOR UPDATE" % sid[4:])
            pids = wait_until(lambda: waiting_backends("%evr_write_events%"), timeout=10,
                              what="a flight to wait")
            wait_until(lambda: len(self.fake.requests(name)) >= 2, timeout=10,
                       what="the tool run and the next call")
            time.sleep(0.3)
            # the flight fails (its connection is cut)
            psql("SELECT pg_terminate_backend(%s)" % pids[0])
        finally:
            tx.close()
        evs = wait_idle(self.key, sid, 1, timeout=20)
        types = [e["type"] for e in evs]
        self.assertIn(types[-2], ("turn.completed", "turn.failed"), types)
        # no gap: since the last reason.started, a message completes after
        # it started, and tools run after the message that asked for them
        seen = set()
        for e in evs:
            t = e["type"]
            if t == "reason.started":
                seen = set()
            elif t == "output.message.completed" and "error_code" not in e["data"]:
                self.assertIn("output.message.started", seen, "a gap: %s" % types)
            elif t == "act.started":
                self.assertIn("output.message.completed", seen, "a gap: %s" % types)
            elif t.startswith("tool."):
                self.assertIn("act.started", seen, "a gap: %s" % types)
            seen.add(t)
        self.assertEqual(turn_row(turn)[1], "2")

    def test_takeover_after_the_answer_does_not_ask_again(self):
        name, mid = self.model()
        self.fake.script(name, {"hang_after_headers": True}, {"text": "a second answer"})
        sid = self.session(mid)
        m = send(self.key, sid, "hello")
        turn = m.json["turn_id"]
        wait_until(lambda: self.fake.requests(name), timeout=10, what="the provider call")
        wait_until(lambda: events(self.key, sid, 1, types="reason.started"), timeout=10,
                   what="reason.started")
        os.kill(self.runner, signal.SIGSTOP)
        # what the runner's flight left when the batch that carried the
        # answer ended before turn.completed (a batch cut at its size)
        psql("SELECT evr_emit(session_id, 'output.message.completed', jsonb_build_object("
             "'message', jsonb_build_object('id', 'msg_0193c0de000070008000000000000001', "
             "'role', 'agent', 'turn_id', $1, 'content', jsonb_build_array("
             "jsonb_build_object('type', 'text', 'text', 'the answer'))), "
             "'usage', jsonb_build_object('input_tokens', 1, 'output_tokens', 2)), "
             "id, input_message_id) FROM turns WHERE id = $2::uuid", turn, turn[4:])
        self.extra()
        evs = wait_idle(self.key, sid, 1, timeout=20)
        types = [e["type"] for e in evs]
        self.assertEqual(types[-2:], ["turn.completed", "session.idled"], types)
        answers = [e["data"]["message"]["content"][0]["text"] for e in evs
                   if e["type"] == "output.message.completed"]
        self.assertEqual(answers, ["the answer"])
        self.assertEqual(len(self.fake.requests(name)), 1)

    def test_deltas_of_a_lost_lease_reach_no_client(self):
        self.extra()
        sid = self.session()
        m = send(self.key, sid, "#tokens 300\n#rate 20")
        turn = m.json["turn_id"]
        first = wait_until(lambda: events(self.key, sid, 1, types="output.message.started"),
                           timeout=10, what="streaming")[0]["sequence"]
        pid = wait_until(lambda: holder_pid(turn), timeout=5, what="the lease holder")
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_until(lambda: len(events(self.key, sid, 1, types="output.message.started")) == 2,
                       timeout=15, what="the takeover's message")

            def rows():
                return int(psql("SELECT count(*) FROM live_text WHERE session_id = $1::uuid "
                                "AND m = $2", sid[4:], first)[0][0])
            before = rows()
        finally:
            os.kill(pid, signal.SIGCONT)
        time.sleep(1.5)  # the old runner plays what it owes, then finds its fence
        self.assertEqual(rows(), before, "chunks of the lost attempt were written")
        self.assertEqual(self.status(sid), "active")
        api("POST", "/api/v1/sessions/%s/cancel" % sid, key=self.key)


class Limits(Base):
    def test_turn_deadline_counts_from_the_first_start(self):
        os.kill(self.runner, signal.SIGSTOP)
        a = self.extra(EVERRUNS_TURN_WALL_TIME_S=2)
        b = self.extra(EVERRUNS_TURN_WALL_TIME_S=2)
        sid = self.session()
        m = send(self.key, sid, "#tokens 60\n#rate 20")
        turn = m.json["turn_id"]
        wait_until(lambda: events(self.key, sid, 1, types="output.message.started"),
                   timeout=10, what="streaming")
        pid = wait_until(lambda: holder_pid(turn), timeout=5, what="the lease holder")
        self.assertIn(pid, (a.pid, b.pid))
        os.kill(pid, signal.SIGKILL)
        evs = wait_idle(self.key, sid, 1, timeout=20)
        failed = [e for e in evs if e["type"] == "turn.failed"]
        self.assertEqual([f["data"]["error_code"] for f in failed], ["timeout"],
                         [e["type"] for e in evs])
        self.assertEqual(turn_row(turn), ("failed", "2"))

    def test_a_tool_has_a_time_limit(self):
        self.only_extra(EVERRUNS_TOOL_TIMEOUT_S=1)
        sid = self.session(caps=("session_storage",))
        tx = HeldTx()
        try:
            tx.run("BEGIN; LOCK TABLE session_kv IN EXCLUSIVE MODE")
            t0 = time.monotonic()
            m = send(self.key, sid, '#tool kv_store {"operation":"set","key":"k","value":"v"}')
            self.assertEqual(m.status, 201)
            done = wait_until(lambda: events(self.key, sid, 1, types="tool.completed"),
                              timeout=5, what="the tool to end while its table is locked")
            print("a tool held by a lock ended after %.1f s" % (time.monotonic() - t0))
        finally:
            tx.close()
        self.assertFalse(done[0]["data"]["success"])
        self.assertIn("did not finish within 1 s", done[0]["data"]["error"])
        evs = wait_idle(self.key, sid, 1)
        self.assertEqual(evs[-2]["type"], "turn.completed")
        # nothing was stored
        self.assertEqual(psql("SELECT count(*) FROM session_kv WHERE session_id = $1::uuid",
                              sid[4:])[0][0], "0")

    def test_tool_of_a_lost_lease_changes_nothing(self):
        # runner A never renews: it loses the turn after the 2 s lease
        # while its provider call is still going; B takes the turn over and
        # answers; then A's call ends with a write_file
        a = self.only_extra(EVERRUNS_LEASE_RENEW_S=60, EVERRUNS_LLM_IDLE_TIMEOUT_S=30,
                            EVERRUNS_LLM_FIRST_BYTE_TIMEOUT_S=30)
        name, mid = self.model()
        call = {"id": "w1", "name": "write_file",
                "arguments": json.dumps({"path": "/f.txt", "content": "from the old runner"})}
        self.fake.script(name, {"tool_calls": [call], "delay_ms": 1500}, {"text": "done"},
                         {"text": "done"})
        sid = self.session(mid, caps=("session_file_system",))
        m = send(self.key, sid, "write it")
        turn = m.json["turn_id"]
        wait_until(lambda: self.fake.requests(name), timeout=10, what="A's provider call")
        self.assertEqual(holder_pid(turn), a.pid)
        self.extra(EVERRUNS_RUNNER_POLL_S=0.3)
        evs = wait_idle(self.key, sid, 1, timeout=15)
        self.assertEqual(evs[-2]["type"], "turn.completed")
        self.assertEqual(turn_row(turn), ("completed", "2"))
        wait_until(lambda: self.fake.requests(name)[0]["completed"], timeout=10,
                   what="A's call to end")
        time.sleep(1.0)
        r = api("GET", "/api/v1/sessions/%s/fs/f.txt" % sid, key=self.key)
        self.assertEqual(r.status, 404, r.text)
        self.assertEqual(events(self.key, sid, evs[-1]["sequence"]), [])


class NoRunner(Base):
    def test_turn_fails_when_no_runner_is_alive(self):
        with ExtraStack("norunner", EVERRUNS_NO_RUNNER_TIMEOUT_S=2,
                        EVERRUNS_RUNNER_ALIVE_S=2) as h:
            for pid in h.pids("runner"):
                os.kill(pid, signal.SIGTERM)
            os.kill(self.runner, signal.SIGSTOP)
            wait_until(lambda: psql("SELECT count(*) FROM runners WHERE seen_at > "
                                    "now() - interval '2 s'")[0][0] == "0",
                       timeout=15, what="no runner alive")
            sid = h.api("POST", "/api/v1/sessions", {"agent_id": self.agent}, key=self.key).json["id"]
            r = h.api("POST", "/api/v1/sessions/%s/messages" % sid,
                      {"message": {"content": "anyone there?"}}, key=self.key)
            self.assertEqual(r.status, 201, r.text)
            t0 = time.monotonic()
            wait_until(lambda: h.api("GET", "/api/v1/sessions/" + sid, key=self.key).json["status"]
                       == "idle", timeout=10, what="the session to be idle")
            print("no runner: the turn failed after %.1f s" % (time.monotonic() - t0))
            evs = h.api("GET", "/api/v1/sessions/%s/events?since_sequence=1" % sid,
                        key=self.key).json["data"]
            types = [e["type"] for e in evs]
            self.assertEqual(types[-2:], ["turn.failed", "session.idled"], types)
            self.assertEqual(evs[-2]["data"]["error_code"], "no_runner")
            self.assertEqual(turn_row(r.json["turn_id"])[0], "failed")
            health = h.api("GET", "/health", key=None).json
            self.assertEqual((health["runners"], health.get("runner_status")), (0, "none_alive"),
                             health)
            # a runner back: the session works again
            os.kill(self.runner, signal.SIGCONT)
            m = send(self.key, sid, "now?")
            self.assertEqual(m.status, 201, m.text)
            self.assertEqual(wait_idle(self.key, sid, m.json["sequence"])[-2]["type"],
                             "turn.completed")


if __name__ == "__main__":
    unittest.main()
