"""Durability of turns across runners (ARCHITECTURE 5): a runner killed with
SIGKILL mid-turn, one stopped past its lease (SIGSTOP) and resumed, and a
SIGTERM drain that releases the turn to another runner. The test stack
uses a 2 s lease renewed every 0.5 s."""

import os
import signal
import time
import unittest

from evr import api, psql, new_org, wait_until, start_runner, stack_pid, ctl, pg_restart, at_once
from test_turns import events, send, wait_idle


def holder_pid(turn):
    """The pid of the runner that holds the turn's lease, or None."""
    rows = psql("SELECT r.pid FROM turns t JOIN runners r ON r.id = t.lease_owner "
                "WHERE t.id = $1::uuid AND t.state = 'running'", turn[4:])
    return int(rows[0][0]) if rows else None


def turn_row(turn):
    return psql("SELECT state, attempt FROM turns WHERE id = $1::uuid", turn[4:])[0]


class Recovery(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.key = new_org("recovery")["api_key"]
        cls.agent = api("GET", "/api/v1/agents/assistant", key=cls.key).json["id"]

    def setUp(self):
        self.extra = start_runner()
        self.addCleanup(self.stop_extra)
        # both runners are up (heartbeats)
        wait_until(lambda: int(psql("SELECT count(*) FROM runners WHERE seen_at > now() - interval '3 s'")[0][0]) >= 2,
                   timeout=10, what="two runners")

    def stop_extra(self):
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(self.extra.pid, sig)
            except ProcessLookupError:
                pass
        self.extra.wait(timeout=10)
        # bring the stack's own runner back if a test killed it
        if not stack_pid("runner") or not os.path.exists("/proc/%d" % stack_pid("runner")):
            ctl("start")

    def long_turn(self, tokens=80, rate=20):
        r = api("POST", "/api/v1/sessions", {"agent_id": self.agent}, key=self.key)
        sid = r.json["id"]
        m = send(self.key, sid, "#tokens %d\n#rate %d" % (tokens, rate))
        self.assertEqual(m.status, 201)
        turn = m.json["turn_id"]
        wait_until(lambda: events(self.key, sid, 1, types="output.message.started"),
                   timeout=10, what="streaming")
        pid = wait_until(lambda: holder_pid(turn), timeout=5, what="lease holder")
        return sid, turn, pid

    def check_finished_once(self, sid, turn):
        evs = wait_idle(self.key, sid, 1, timeout=30)
        types = [e["type"] for e in evs]
        self.assertEqual(types.count("turn.completed"), 1, types)
        self.assertEqual(types[-2:], ["turn.completed", "session.idled"])
        self.assertEqual(types.count("turn.started"), 1)
        seqs = [e["sequence"] for e in evs]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))
        self.assertEqual(api("GET", "/api/v1/sessions/" + sid, key=self.key).json["status"], "idle")
        return evs

    def test_sigkill_mid_turn_is_taken_over(self):
        sid, turn, pid = self.long_turn()
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        self.check_finished_once(sid, turn)
        self.assertLess(time.monotonic() - t0, 15)
        self.assertEqual(turn_row(turn), ("completed", "2"))

    def test_sigstop_past_the_lease_then_sigcont_writes_nothing(self):
        sid, turn, pid = self.long_turn(tokens=60, rate=20)
        os.kill(pid, signal.SIGSTOP)
        try:
            evs = self.check_finished_once(sid, turn)
        finally:
            os.kill(pid, signal.SIGCONT)
        last = evs[-1]["sequence"]
        # the old attempt wakes up, finds its fence gone and writes nothing
        time.sleep(2.5)
        self.assertEqual(events(self.key, sid, last), [])
        self.assertEqual(turn_row(turn), ("completed", "2"))

    def test_sigterm_drains_then_releases_without_spending_an_attempt(self):
        # longer than the test stack's drain (5 s): the turn is released
        sid, turn, pid = self.long_turn(tokens=200, rate=20)
        os.kill(pid, signal.SIGTERM)
        self.check_finished_once(sid, turn)
        state, attempt = turn_row(turn)
        self.assertEqual((state, attempt), ("completed", "1"))

    def test_worker_lost_after_three_attempts(self):
        r = api("POST", "/api/v1/sessions", {"agent_id": self.agent}, key=self.key)
        sid = r.json["id"]
        m = send(self.key, sid, "#tokens 400\n#rate 20")
        turn = m.json["turn_id"]
        for _ in range(3):
            pid = wait_until(lambda: holder_pid(turn), timeout=15, what="lease holder")
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: holder_pid(turn) != pid, timeout=10, what="lease released")
            if pid == stack_pid("runner"):
                ctl("start")
            else:
                self.extra.wait(timeout=5)
                self.extra = start_runner()
        evs = wait_idle(self.key, sid, 1, timeout=30)
        failed = [e for e in evs if e["type"] == "turn.failed"]
        self.assertEqual(len(failed), 1)
        self.assertEqual(failed[0]["data"]["error_code"], "worker_lost")
        self.assertEqual(evs[-1]["type"], "session.idled")
        self.assertEqual(turn_row(turn)[0], "failed")


if __name__ == "__main__":
    unittest.main()


class CancelStates(unittest.TestCase):
    """Cancel of a queued turn and of a running turn whose runner is gone
    (expired lease): the API finishes both itself, at once (ARCHITECTURE 3.6).
    The running-with-a-live-lease case is in test_turns and test_drivers."""

    @classmethod
    def setUpClass(cls):
        cls.key = new_org("cancel-states")["api_key"]
        cls.agent = api("GET", "/api/v1/agents/assistant", key=cls.key).json["id"]

    def setUp(self):
        self.runner = stack_pid("runner")
        self.assertTrue(self.runner)
        self.addCleanup(self.resume)

    def resume(self):
        try:
            os.kill(self.runner, signal.SIGCONT)
        except ProcessLookupError:
            ctl("start")

    def cancel_and_check(self, sid, turn):
        t0 = time.monotonic()
        c = api("POST", "/api/v1/sessions/%s/cancel" % sid, key=self.key)
        self.assertEqual((c.status, c.json["status"]), (200, "cancelled"))
        s = api("GET", "/api/v1/sessions/" + sid, key=self.key).json
        self.assertEqual(s["status"], "idle")
        # the runner is stopped: only the API can have done it (the
        # status above); the bound tells it from waiting for a lease (2 s)
        self.assertLess(time.monotonic() - t0, at_once(1.0))
        evs = events(self.key, sid, 1)
        self.assertEqual([e["type"] for e in evs][-4:],
                         ["turn.cancelled", "input.message", "output.message.completed", "session.idled"])
        self.assertEqual(turn_row(turn)[0], "cancelled")
        # the runner, back, writes nothing for it
        os.kill(self.runner, signal.SIGCONT)
        time.sleep(2.5)
        self.assertEqual(events(self.key, sid, evs[-1]["sequence"]), [])
        self.assertEqual(turn_row(turn)[0], "cancelled")
        # and the session takes the next message
        self.assertEqual(send(self.key, sid, "next").status, 201)
        self.assertEqual(wait_idle(self.key, sid, evs[-1]["sequence"])[-2]["type"], "turn.completed")

    def test_cancel_queued(self):
        os.kill(self.runner, signal.SIGSTOP)
        sid = api("POST", "/api/v1/sessions", {"agent_id": self.agent}, key=self.key).json["id"]
        m = send(self.key, sid, "never started")
        time.sleep(0.3)
        self.assertEqual(turn_row(m.json["turn_id"])[0], "queued")
        self.cancel_and_check(sid, m.json["turn_id"])

    def test_cancel_running_with_an_expired_lease(self):
        sid = api("POST", "/api/v1/sessions", {"agent_id": self.agent}, key=self.key).json["id"]
        m = send(self.key, sid, "#tokens 200\n#rate 20")
        turn = m.json["turn_id"]
        wait_until(lambda: events(self.key, sid, 1, types="output.message.started"), timeout=10,
                   what="streaming")
        os.kill(self.runner, signal.SIGSTOP)
        wait_until(lambda: psql("SELECT lease_until < now() FROM turns WHERE id = $1::uuid",
                                turn[4:])[0][0] == "t", timeout=10, what="the lease to expire")
        self.assertEqual(turn_row(turn)[0], "running")
        self.cancel_and_check(sid, turn)


class DatabaseRestart(unittest.TestCase):
    """PostgreSQL restarted under an idle stack: every connection of every
    program is cut while unused. The first requests after it succeed (a
    connection found closed is reset before use, not failed with 503),
    and a turn is claimed at once (the runner LISTENs again on whichever
    connection replaced its old one; not the 2 s polling) and runs in its
    first attempt (its event writes reset their connection too)."""

    @classmethod
    def setUpClass(cls):
        cls.key = new_org("pg-restart")["api_key"]
        cls.agent = api("GET", "/api/v1/agents/assistant", key=cls.key).json["id"]

    def test_first_requests_and_turns_after_a_restart(self):
        sid = api("POST", "/api/v1/sessions", {"agent_id": self.agent}, key=self.key).json["id"]
        for round_ in range(3):
            # every connection has been used, then sits idle
            for _ in range(20):
                self.assertEqual(api("GET", "/api/v1/sessions/" + sid, key=self.key).status, 200)
            time.sleep(0.5)
            pg_restart()
            t0 = time.monotonic()
            m = send(self.key, sid, "#tokens 3")  # a transaction first
            self.assertEqual(m.status, 201, m.text)
            codes = [api("GET", "/api/v1/sessions/" + sid, key=self.key).status for _ in range(20)]
            self.assertEqual(codes, [200] * 20, "round %d" % round_)
            since = m.json["sequence"]
            wait_until(lambda: events(self.key, sid, since, types="turn.started"),
                       timeout=10, interval=0.02, what="turn.started")
            started = time.monotonic() - t0
            evs = wait_idle(self.key, sid, since, timeout=30)
            types = [e["type"] for e in evs]
            self.assertIn("turn.completed", types, types)
            self.assertLess(started, at_once(1.0), "round %d: claimed after %.2f s" % (round_, started))
            self.assertEqual(turn_row(m.json["turn_id"]), ("completed", "1"))
