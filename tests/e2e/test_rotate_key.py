"""everruns-admin rotate-server-key: a new server key, every provider's
API key re-encrypted with it in one transaction; the running programs
pick the new key up without a restart, so a provider keeps working, and a
provider created afterwards works too. A key that does not open aborts the
rotation with nothing changed."""

import glob
import os
import unittest
import uuid

from evr import api, psql, new_org, admin, admin_run
from stacks import main_server_key
from test_drivers import Fake
from test_turns import send, wait_idle


def read(path):
    with open(path) as f:
        return f.read()


class RotateServerKey(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = Fake()
        cls.key = new_org("rotate")["api_key"]
        cls.harness = api("GET", "/api/v1/harnesses/base", key=cls.key).json["id"]
        cls.keyfile = main_server_key()

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def provider(self, secret):
        r = api("POST", "/api/v1/llm-providers",
                {"name": "rot-" + uuid.uuid4().hex[:8], "provider_type": "openai_completions",
                 "base_url": self.fake.base + "/v1", "api_key": secret}, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        name = "m-" + uuid.uuid4().hex[:12]
        m = api("POST", "/api/v1/llm-providers/%s/models" % r.json["id"],
                {"model_id": name, "capabilities": ["chat"]}, key=self.key)
        self.assertEqual(m.status, 201, m.text)
        return r.json["id"], name, m.json["id"]

    def key_seen_by_provider(self, model_name, model_id):
        """Run a turn on the model; the Authorization the provider got."""
        self.fake.script(model_name, {"text": "ok"})
        r = api("POST", "/api/v1/sessions", {"harness_id": self.harness, "model_id": model_id},
                key=self.key)
        self.assertEqual(r.status, 201, r.text)
        sid = r.json["id"]
        self.assertEqual(send(self.key, sid, "hi").status, 201)
        evs = wait_idle(self.key, sid, 1)
        self.assertIn("turn.completed", [e["type"] for e in evs], evs)
        reqs = self.fake.requests(model_name)
        h = {k.lower(): v for k, v in reqs[-1]["headers"].items()}
        return h.get("authorization")

    def enc(self, prv):
        return psql("SELECT api_key_enc FROM llm_providers WHERE id = $1::uuid", prv[4:])[0][0]

    def test_1_a_key_that_does_not_open_aborts_with_nothing_changed(self):
        prv, _, _ = self.provider("sk-fine")
        bad, _, _ = self.provider("sk-doomed")
        # sealed with some other key
        psql("UPDATE llm_providers SET api_key_enc = $2 WHERE id = $1::uuid", bad[4:],
             "v1:" + "A" * 64)
        before_key, before_enc = read(self.keyfile), self.enc(prv)
        try:
            p = admin_run("rotate-server-key")
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            self.assertIn(bad, p.stderr)
            self.assertIn("nothing was changed", p.stderr)
            self.assertEqual(read(self.keyfile), before_key)
            self.assertEqual(self.enc(prv), before_enc)
            self.assertFalse(os.path.exists(self.keyfile + ".new"))
        finally:
            api("DELETE", "/api/v1/llm-providers/" + bad, key=self.key)

    def test_2_provider_keeps_working_after_rotation(self):
        prv, name, mid = self.provider("sk-rotate-1")
        self.assertEqual(self.key_seen_by_provider(name, mid), "Bearer sk-rotate-1")
        # an MCP server's key and headers are sealed with the same key
        mcp = api("POST", "/api/v1/mcp-servers", {"name": "rot", "url": "https://mcp.example.com/mcp",
                                                   "api_key": "sk-mcp", "headers": {"X-A": "b"}},
                  key=self.key).json["id"]
        mcp_enc = lambda: psql("SELECT api_key_enc, headers_enc FROM mcp_servers WHERE id = $1::uuid",
                               mcp[4:])[0]
        before_mcp = mcp_enc()
        before_key, before_enc = read(self.keyfile), self.enc(prv)
        n_sealed = int(psql("SELECT count(*) FROM llm_providers WHERE api_key_enc IS NOT NULL")[0][0])
        n_mcp = int(psql("SELECT count(api_key_enc) + count(headers_enc) FROM mcp_servers")[0][0])
        out = admin("rotate-server-key")
        self.assertIn("%d provider key(s) re-encrypted, %d MCP server secret(s)" % (n_sealed, n_mcp), out)
        self.assertTrue(all(a != b for a, b in zip(mcp_enc(), before_mcp)))
        after_key = read(self.keyfile)
        self.assertNotEqual(after_key, before_key)
        self.assertRegex(after_key, r"^[0-9a-f]{64}\n$")
        self.assertEqual(os.stat(self.keyfile).st_mode & 0o777, 0o600)
        self.assertNotEqual(self.enc(prv), before_enc)
        # the previous key is kept for older backups
        kept = [f for f in glob.glob(self.keyfile + ".*.old") if read(f) == before_key]
        self.assertEqual(len(kept), 1)
        # the running runner opens the re-encrypted key (no restart)
        self.assertEqual(self.key_seen_by_provider(name, mid), "Bearer sk-rotate-1")
        # the running API seals new keys with the new server key
        _, name2, mid2 = self.provider("sk-rotate-2")
        self.assertEqual(self.key_seen_by_provider(name2, mid2), "Bearer sk-rotate-2")
        self.assertIn("server key: ok", admin("check-config"))


if __name__ == "__main__":
    unittest.main()
