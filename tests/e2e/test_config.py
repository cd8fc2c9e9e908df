"""everruns-admin check-config and list-config (ARCHITECTURE 7): the
configuration is checked against the table of keys (fcgi/lib/config_keys.c):
an unknown key in the file, a value of the wrong type and a value out of
bounds (in the file or the environment) each fail the check with a line
naming the key; the test stack's own configuration passes."""

import os
import subprocess
import unittest

import evr
from stacks import state_dir


def admin(args, conf=None, **env_over):
    env = evr._stack_environ()
    if conf:
        env["EVERRUNS_CONF"] = conf
    env.update(env_over)
    return subprocess.run(evr._as_run_user([evr._admin_bin()] + args), env=env, cwd="/",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60)


class CheckConfig(unittest.TestCase):
    def conf_with(self, extra):
        with open(os.path.join(evr.HOME, "everruns.conf")) as f:
            text = f.read()
        d = state_dir("config")
        os.chmod(d, 0o755)
        path = os.path.join(d, "everruns.conf")
        with open(path, "w") as f:
            f.write(text + extra)
        os.chmod(path, 0o644)
        return path

    def test_the_stack_configuration_passes(self):
        p = admin(["check-config"])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("config: ok", p.stdout)
        self.assertIn("server key: ok", p.stdout)

    def test_bad_values_and_unknown_keys_are_named(self):
        conf = self.conf_with("sse_heartbeat_secs = 5\nrunner_poll_s = soon\n"
                              "log_level = loud\nfs_max_file_mb = 4096\n")
        p = admin(["check-config"], conf, EVERRUNS_SSE_DB_CONNECTIONS="20")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        for want in ("sse_heartbeat_secs: unknown key",
                     "runner_poll_s: 'soon' is not a number",
                     "log_level: 'loud' is not one of debug|info|warn|error",
                     "fs_max_file_mb: 4096 is out of bounds (1..512)",
                     "sse_db_connections: 20 is out of bounds (1..16)"):
            self.assertIn(want, p.stdout)
        # the other checks still ran
        self.assertIn("server key: ok", p.stdout)

    def test_list_config_shows_every_key_with_its_value(self):
        p = admin(["list-config"], EVERRUNS_SSE_CYCLE_S="77")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("sse_cycle_s = 77\n", p.stdout)
        self.assertIn("history_cache_sessions = 1000\n", p.stdout)
        self.assertRegex(p.stdout, r"fs_max_file_mb = \d+\n .*integer 1\.\.512, default '25'")


if __name__ == "__main__":
    unittest.main()
