"""Backup and restore (README, "Backup and restore"): pg_dump of the
database (plus the server key file) is everything. The test stack's
database is dumped as README says, restored into a new PostgreSQL cluster
the way README says, and a second stack started on the restored cluster
with the same server key serves the same sessions, events and files, every table
holds the same rows, and a provider's sealed API key still works."""

import os
import shutil
import subprocess
import unittest
import uuid

import evr
from evr import api, psql, new_org
from stacks import ExtraStack, main_server_key, state_dir
from test_drivers import Fake
from test_turns import send, wait_idle


def run(argv, **kw):
    p = subprocess.run(evr._as_run_user(argv), cwd="/", stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True, timeout=120, **kw)
    if p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s" % (" ".join(argv), p.returncode, p.stdout))
    return p.stdout


def pgbin(name):
    d = evr.stack_env("EVR_PG_BINDIR")
    return os.path.join(d, name) if d else name


TABLE_DIGEST = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1"""


def digests(url, skip=("runners",)):
    """{table: (rows, md5 of all rows)} of a database."""
    tables = [r[0] for r in query(url, TABLE_DIGEST)]
    out = {}
    for t in tables:
        if t in skip:
            continue
        n, h = query(url, 'SELECT count(*), md5(coalesce(string_agg(x::text, \'|\' ORDER BY x::text), \'\')) '
                          'FROM "%s" x' % t)[0]
        out[t] = (int(n), h)
    return out


def query(url, sql):
    out = run([pgbin("psql"), "-X", "-A", "-t", "-F", "\x1f", "-v", "ON_ERROR_STOP=1",
               "-d", url, "-c", sql])
    return [tuple(line.split("\x1f")) for line in out.splitlines() if line]


class BackupRestore(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = state_dir("backup")
        u = evr.stack_env("EVR_RUN_USER")
        if os.geteuid() == 0 and u and u != "root":
            shutil.chown(cls.dir, u, u)
        cls.pgdata = os.path.join(cls.dir, "pg")
        cls.sock = os.path.join(cls.dir, "s")
        cls.cluster_up = False
        cls.host = None
        cls.fake = Fake()

    @classmethod
    def tearDownClass(cls):
        if cls.host:
            cls.host.stop()
        if cls.cluster_up:
            subprocess.run(evr._as_run_user([pgbin("pg_ctl"), "-D", cls.pgdata, "-m", "fast",
                                             "-w", "stop"]), cwd="/",
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        cls.fake.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_dump_restore_into_a_new_cluster(self):
        key = new_org("backup")["api_key"]
        agent = api("GET", "/api/v1/agents/assistant", key=key).json["id"]
        sid = api("POST", "/api/v1/sessions", {"agent_id": agent, "title": "kept",
                                               "tags": ["backup"]}, key=key).json["id"]
        self.assertEqual(send(key, sid, "#text remember this").status, 201)
        wait_idle(key, sid, 1)
        # a file in the session's filesystem, text and binary
        fs = "/api/v1/sessions/%s/fs/" % sid
        r = api("PUT", fs + "notes/kept.md", {"content": "# kept\n"}, key=key)
        self.assertIn(r.status, (200, 201), r.text)
        blob = bytes(range(256)) * 40
        r = api("PUT", fs + "data.bin", raw=blob, content_type="application/octet-stream", key=key)
        self.assertIn(r.status, (200, 201), r.text)
        # a provider whose API key is sealed with the server key
        prv = api("POST", "/api/v1/llm-providers",
                  {"name": "bk-" + uuid.uuid4().hex[:6], "provider_type": "openai_completions",
                   "base_url": self.fake.base + "/v1", "api_key": "sk-backup"}, key=key)
        self.assertEqual(prv.status, 201, prv.text)
        model = "m-" + uuid.uuid4().hex[:10]
        mid = api("POST", "/api/v1/llm-providers/%s/models" % prv.json["id"],
                  {"model_id": model, "capabilities": ["chat"]}, key=key).json["id"]
        before_session = api("GET", "/api/v1/sessions/" + sid, key=key).json
        before_events = api("GET", "/api/v1/sessions/%s/events?since_sequence=0" % sid, key=key).json

        # 1. the backup: pg_dump, custom format (README)
        dump = os.path.join(self.dir, "everruns.dump")
        live = evr.stack_env("EVR_DATABASE_URL")
        run([pgbin("pg_dump"), "-Fc", "-d", live, "-f", dump])
        digest_live = digests(live)
        self.assertGreater(os.path.getsize(dump), 10000)

        # 2. a new cluster, a database owned by the application role,
        #    pg_restore as that role
        run([pgbin("initdb"), "-D", self.pgdata, "-U", "postgres", "-E", "UTF8",
             "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=reject"])
        os.makedirs(self.sock, exist_ok=True)
        u = evr.stack_env("EVR_RUN_USER")
        if os.geteuid() == 0 and u and u != "root":
            shutil.chown(self.sock, u, u)
        run([pgbin("pg_ctl"), "-D", self.pgdata, "-l", os.path.join(self.dir, "pg.log"), "-w",
             "-o", "-k %s -c listen_addresses=''" % self.sock, "start"])
        type(self).cluster_up = True
        admin_url = "host=%s dbname=postgres user=postgres" % self.sock
        query(admin_url, "CREATE ROLE everruns LOGIN")
        query(admin_url, "CREATE DATABASE everruns OWNER everruns")
        restored = "host=%s dbname=everruns user=everruns" % self.sock
        run([pgbin("pg_restore"), "--no-owner", "--exit-on-error", "-d", restored, dump])

        # every table the same rows (runners are heartbeats, not data)
        self.assertEqual(digests(restored), digest_live)
        self.assertIn("events", digest_live)
        self.assertGreater(digest_live["events"][0], 0)

        # 3. a host on the restored database with the same server key
        type(self).host = ExtraStack("restored", EVERRUNS_DATABASE_URL=restored,
                                     EVERRUNS_SERVER_KEY_FILE=main_server_key())
        self.host.start()
        r = self.host.api("GET", "/api/v1/sessions/" + sid, key=key)
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.json, before_session)
        r = self.host.api("GET", "/api/v1/sessions/%s/events?since_sequence=0" % sid, key=key)
        self.assertEqual(r.json, before_events)
        r = self.host.api("GET", fs + "notes/kept.md", key=key)
        self.assertEqual((r.status, r.json["content"]), (200, "# kept\n"), r.text)
        r = self.host.api("GET", "/api/v1/sessions/%s/fs/_/download/data.bin" % sid, key=key)
        self.assertEqual((r.status, r.body), (200, blob))
        # the restored database works: a new turn, and the sealed key opens
        self.fake.script(model, {"text": "restored fine"})
        sid2 = self.host.api("POST", "/api/v1/sessions", {"model_id": mid, "agent_id": agent},
                             key=key).json["id"]
        r = self.host.api("POST", "/api/v1/sessions/%s/messages" % sid2,
                          {"message": {"content": [{"type": "text", "text": "hi"}]}}, key=key)
        self.assertEqual(r.status, 201, r.text)
        evr.wait_until(lambda: self.host.api("GET", "/api/v1/sessions/" + sid2, key=key)
                       .json["status"] == "idle", timeout=20, what="turn on the restored host")
        evs = self.host.api("GET", "/api/v1/sessions/%s/events?since_sequence=0" % sid2,
                            key=key).json["data"]
        done = [e for e in evs if e["type"] == "output.message.completed"]
        self.assertEqual(done[-1]["data"]["message"]["content"][0]["text"], "restored fine")
        h = {k.lower(): v for k, v in self.fake.requests(model)[-1]["headers"].items()}
        self.assertEqual(h.get("authorization"), "Bearer sk-backup")


if __name__ == "__main__":
    unittest.main()
