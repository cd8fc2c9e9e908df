"""everrunsctl stop + start keeps all data. Named to run last: it stops
the whole stack (and starts it again, so the driver can stop it)."""

import os
import socket
import unittest

import evr


def port_open(port):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class RestartTest(unittest.TestCase):

    def test_stop_then_start_keeps_data(self):
        org = evr.new_org("restart-test")
        me = evr.api("GET", "/api/v1/auth/me", key=org["api_key"])
        self.assertEqual(me.status, 200, me)
        orgs_before = evr.psql("SELECT count(*) FROM organizations")[0][0]
        with open(os.path.join(evr.HOME, "admin-api-key")) as f:
            admin_key = f.read().strip()
        port = int(evr.stack_env("EVR_HTTP_PORT"))

        try:
            p = evr.ctl("stop")
            self.assertIn("stopped", p.stdout)
            self.assertFalse(port_open(port), "nginx still listens after stop")
            for name in ("api", "nginx"):
                self.assertFalse(os.path.exists(os.path.join(evr.HOME, "run", name + ".pid")))
            self.assertFalse(os.path.exists(os.path.join(evr.HOME, "pg", "postmaster.pid")))
            st = evr.ctl("status", check=False)
            self.assertEqual(st.returncode, 3, st.stdout)
            # stopping a stopped stack is fine
            evr.ctl("stop")
        finally:
            p = evr.ctl("start")
        self.assertIn("everruns is up", p.stdout)
        # the admin key is printed only on the first start
        self.assertNotIn("admin API key:", p.stdout)

        self.assertEqual(evr.api("GET", "/health", key=None).status, 200)
        me2 = evr.api("GET", "/api/v1/auth/me", key=org["api_key"])
        self.assertEqual(me2.status, 200, me2)
        for k in ("id", "organization_id"):
            self.assertEqual(me2.json[k], me.json[k])
        self.assertEqual(evr.api("GET", "/api/v1/auth/me", key=admin_key).status, 200)
        self.assertEqual(evr.psql("SELECT count(*) FROM organizations")[0][0], orgs_before)
        with open(os.path.join(evr.HOME, "admin-api-key")) as f:
            self.assertEqual(f.read().strip(), admin_key)


if __name__ == "__main__":
    unittest.main()
