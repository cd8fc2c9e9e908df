"""Connection pooling (ARCHITECTURE 1, 11): a host whose everruns-api reaches
PostgreSQL through Debian's PgBouncer in transaction mode
(api_database_url, db_pool = transaction), while everruns-sse (LISTEN),
the runner and migrations connect directly (database_url).

The pool has fewer server connections (2) than the host has API threads
(2 processes x 3): in session mode the extra threads would wait forever;
in transaction mode every request goes through.
"""

import concurrent.futures
import unittest

from evr import new_org, psql, wait_until
from stacks import ExtraStack, PgBouncer
from test_sse import Stream, durable, idled
from test_turns import TURN

PROCS, THREADS = 2, 3


def xacts(pgb, db):
    """Transactions PgBouncer has served for the database."""
    for row in pgb.show("STATS"):
        if row["database"] == db:
            return int(row["total_xact_count"])
    return 0


class PgBouncerHost(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # max_client_conn covers N x M of every host using it, with room
        # for the admin console
        cls.pgb = PgBouncer(max_client_conn=PROCS * THREADS + 10, default_pool_size=2)
        cls.host = None
        try:
            cls.pgb.start()
            cls.host = ExtraStack("pooled", EVERRUNS_API_PROCS=PROCS,
                                  EVERRUNS_API_THREADS=THREADS,
                                  EVERRUNS_API_DATABASE_URL=cls.pgb.conninfo(),
                                  EVERRUNS_DB_POOL="transaction")
            cls.host.start()
        except BaseException:
            cls.tearDownClass()
            raise
        org = new_org("pooled")
        cls.key = org["api_key"]
        cls.agent = cls.host.api("GET", "/api/v1/agents/assistant", key=cls.key).json["id"]

    @classmethod
    def tearDownClass(cls):
        if cls.host:
            cls.host.stop()
        cls.pgb.stop()

    def test_api_goes_through_pgbouncer_in_transaction_mode(self):
        self.assertGreaterEqual(self.pgb.max_client_conn, PROCS * THREADS)
        with open(self.host.home + "/log/api.log") as f:
            self.assertIn("db_pool=transaction", f.read())
        before = xacts(self.pgb, self.pgb.dbname)
        for _ in range(5):
            r = self.host.api("GET", "/api/v1/sessions", key=self.key)
            self.assertEqual(r.status, 200, r.text)
        self.assertGreaterEqual(xacts(self.pgb, self.pgb.dbname) - before, 5)
        # server connections never exceed the pool, whatever the threads
        pools = [p for p in self.pgb.show("POOLS") if p["database"] == self.pgb.dbname]
        self.assertTrue(pools)
        server_conns = sum(int(pools[0][c]) for c in ("sv_active", "sv_idle", "sv_used",
                                                       "sv_tested", "sv_login"))
        self.assertGreaterEqual(server_conns, 1, pools)
        self.assertLessEqual(server_conns, 2, pools)

    def test_more_api_threads_than_pooled_connections(self):
        def one(i):
            if i % 3 == 0:
                r = self.host.api("POST", "/api/v1/sessions",
                                  {"agent_id": self.agent, "title": "p%d" % i}, key=self.key)
                return r.status == 201, r
            r = self.host.api("GET", "/api/v1/agents/assistant", key=self.key, timeout=20)
            return r.status == 200, r
        with concurrent.futures.ThreadPoolExecutor(12) as ex:
            results = list(ex.map(one, range(60)))
        bad = [r for ok, r in results if not ok]
        self.assertEqual(bad, [])

    def test_turn_and_stream_with_direct_listen_and_runner(self):
        r = self.host.api("POST", "/api/v1/sessions", {"agent_id": self.agent}, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        sid = r.json["id"]
        s = Stream(sid, self.key, base=self.host.base)
        try:
            self.assertEqual(s.frame()["event"], "connected")
            m = self.host.api("POST", "/api/v1/sessions/%s/messages" % sid,
                              {"message": {"content": [{"type": "text", "text": "#text pooled"}]}},
                              key=self.key, headers={"Idempotency-Key": "pgb-1"})
            self.assertEqual(m.status, 201, m.text)
            frames = durable(s.until(idled))
        finally:
            s.close()
        self.assertEqual([f["event"] for f in frames], TURN)
        # the idempotent replay works without session state
        again = self.host.api("POST", "/api/v1/sessions/%s/messages" % sid,
                              {"message": {"content": [{"type": "text", "text": "#text pooled"}]}},
                              key=self.key, headers={"Idempotency-Key": "pgb-1"})
        self.assertEqual(again.status, 201, again.text)
        self.assertEqual(again.json["id"], m.json["id"])
        self.assertEqual(again.headers.get("idempotent-replayed"), "true")
        # the LISTEN connection of this host's everruns-sse is direct: it
        # is in pg_stat_activity with its own application_name and no
        # PgBouncer in between (which would not let it LISTEN at all)
        n = psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                 "'everruns-sse'")[0][0]
        self.assertGreaterEqual(int(n), 2)

    def test_revoked_key_is_refused_at_once(self):
        org = new_org("pooled-revoke")
        me = self.host.api("GET", "/api/v1/auth/me", key=org["api_key"])
        self.assertEqual(me.status, 200, me.text)
        keys = self.host.api("GET", "/api/v1/auth/api-keys", key=org["api_key"])
        self.assertEqual(keys.status, 200, keys.text)
        kid = keys.json["data"][0]["id"]
        r = self.host.api("DELETE", "/api/v1/auth/api-keys/" + kid, key=org["api_key"])
        self.assertIn(r.status, (200, 204), r.text)
        # no per-thread key cache with db_pool = transaction: every thread
        # refuses it on its next request
        for _ in range(PROCS * THREADS * 2):
            r = self.host.api("GET", "/api/v1/auth/me", key=org["api_key"])
            self.assertEqual(r.status, 401, r.text)


if __name__ == "__main__":
    unittest.main()
