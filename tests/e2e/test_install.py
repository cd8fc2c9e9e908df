"""make install (README, "Deploy on a server"): the installation
directories (prefix, sysconfdir, localstatedir) end up in the installed
systemd units, configuration and nginx site; the units pass
`systemd-analyze verify`; the site passes `nginx -t`; the installed
everruns-admin works with the installed configuration and SQL files; a
second install keeps an edited everruns.conf; uninstall removes the
units."""

import os
import re
import shutil
import subprocess
import unittest

import evr
from stacks import main_server_key, state_dir

UNITS = ("everruns-api.socket", "everruns-api.service", "everruns-sse.service",
         "everruns-runner.service")


def make(*args):
    p = subprocess.run(["make", "-C", evr.BUILDDIR, "-s"] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=600)
    if p.returncode != 0:
        raise AssertionError("make %s: exit %d\n%s" % (" ".join(args), p.returncode, p.stdout))
    return p.stdout


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = state_dir("install")
        os.chmod(cls.root, 0o755)  # the stack's user runs the installed admin
        cls.dirs = {"prefix": cls.root + "/usr", "sysconfdir": cls.root + "/etc",
                    "localstatedir": cls.root + "/var"}
        cls.vars = ["%s=%s" % kv for kv in cls.dirs.items()]
        make("install", *cls.vars)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def path(self, *p):
        return os.path.join(self.root, *p)

    def read(self, *p):
        with open(self.path(*p)) as f:
            return f.read()

    def test_layout(self):
        for prog in ("everruns-api", "everruns-sse", "everruns-runner", "everruns-admin", "everruns"):
            self.assertTrue(os.access(self.path("usr/bin", prog), os.X_OK), prog)
        # the command-line client and its man page
        self.assertTrue(os.path.exists(self.path("usr/share/man/man1/everruns.1")))
        p = subprocess.run([self.path("usr/bin/everruns"), "--help"], stdout=subprocess.PIPE,
                           universal_newlines=True, timeout=30)
        self.assertEqual(p.returncode, 0)
        self.assertIn("sessions", p.stdout)
        sql = sorted(os.listdir(self.path("usr/share/everruns/sql")))
        self.assertEqual(sql, sorted(f for f in os.listdir(os.path.join(evr.SRCDIR, "sql"))
                                     if f.endswith(".sql")))
        self.assertTrue(os.path.exists(self.path("usr/share/everruns/www/index.html")))
        self.assertTrue(os.path.exists(self.path("usr/share/everruns/www/openapi.json")))
        for f in ("everruns.conf", "everruns.conf.example", "nginx-site.conf"):
            self.assertTrue(os.path.exists(self.path("etc/everruns", f)), f)
        self.assertEqual(os.stat(self.path("etc/everruns/everruns.conf")).st_mode & 0o777, 0o640)
        self.assertTrue(os.path.isdir(self.path("var/lib/everruns")))
        self.assertIn("d /run/everruns", self.read("usr/lib/tmpfiles.d/everruns.conf"))

    def test_units_name_the_installed_paths(self):
        for u in UNITS:
            text = self.read("usr/lib/systemd/system", u)
            self.assertNotRegex(text, r"@[a-z_A-Z]+@", u)
            if u.endswith(".socket"):
                self.assertIn("ListenStream=/run/everruns/api.sock", text)
                continue
            prog = u.split(".")[0]
            self.assertIn("ExecStart=%s/usr/bin/%s" % (self.root, prog), text)
            self.assertIn("EVERRUNS_CONF=%s/etc/everruns/everruns.conf" % self.root, text)
            self.assertIn("User=everruns", text)
            self.assertIn("Restart=on-failure", text)
            self.assertIn("NoNewPrivileges=yes", text)
            self.assertIn("ProtectSystem=strict", text)
            self.assertIn("%s/var/lib/everruns" % self.root, text)
            self.assertRegex(text, r"LimitNOFILE=\d+")
        runner = self.read("usr/lib/systemd/system/everruns-runner.service")
        stop = int(re.search(r"TimeoutStopSec=(\d+)", runner).group(1))
        self.assertGreater(stop, 20)  # the runner's default drain_s
        self.assertIn("StandardInput=socket", self.read("usr/lib/systemd/system/everruns-api.service"))

    @unittest.skipUnless(shutil.which("systemd-analyze"), "no systemd-analyze")
    def test_systemd_analyze_verify(self):
        units = [self.path("usr/lib/systemd/system", u) for u in UNITS]
        p = subprocess.run(["systemd-analyze", "verify"] + units, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertNotIn("Unknown", p.stdout)

    def test_nginx_site_is_valid(self):
        site = self.read("etc/everruns/nginx-site.conf")
        self.assertIn("root %s/usr/share/everruns/www;" % self.root, site)
        self.assertIn("worker_connections", site)  # the advice about Debian's 768
        # nginx's error pages (conf/nginx-errors.conf) in each of its servers
        self.assertNotIn("@ERROR_PAGES@", site)
        self.assertEqual(site.count("error_page 429 /_evr_error/429;"), 3)
        # the file routes' body limit follows the installed fs_max_file_mb
        # (25 MiB x 4/3 + 64 KiB), as everruns-api computes it
        self.assertIn("client_max_body_size %dk;" % (25 * 1024 * 4 // 3 + 64), site)
        tls = os.path.join(evr.HOME, "tls")
        site = site.replace("/etc/ssl/certs/everruns.crt", tls + "/server.crt")
        site = site.replace("/etc/ssl/private/everruns.key", tls + "/server.key")
        site = site.replace("/var/log/nginx/", self.root + "/")
        with open(self.path("nginx-test.conf"), "w") as f:
            f.write("pid %s/nginx.pid;\nerror_log %s/error.log;\nevents {}\nhttp {\n%s\n}\n"
                    % (self.root, self.root, site))
        p = subprocess.run(["nginx", "-t", "-q", "-p", self.root + "/", "-c",
                            self.path("nginx-test.conf"), "-e", self.path("error.log")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout)

    def test_installed_admin_with_installed_configuration(self):
        conf = self.read("etc/everruns/everruns.conf")
        self.assertIn("home = %s/var/lib/everruns" % self.root, conf)
        self.assertIn("server_key_file = %s/var/lib/everruns/server.key" % self.root, conf)
        # point the installed configuration at the test stack's database
        conf = re.sub(r"(?m)^database_url = .*$", "database_url = " +
                      evr.stack_env("EVR_DATABASE_URL"), conf)
        conf = re.sub(r"(?m)^server_key_file = .*$", "server_key_file = " + main_server_key(), conf)
        path = self.path("etc/everruns/everruns.conf")
        with open(path, "w") as f:
            f.write(conf)
        # README: the file is root's, readable by the group everruns
        u = evr.stack_env("EVR_RUN_USER")
        if os.geteuid() == 0 and u and u != "root":
            shutil.chown(path, group=u)
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVERRUNS_")}
        env["EVERRUNS_CONF"] = path
        admin = self.path("usr/bin/everruns-admin")
        for args, want in (([ "migrate", "--sql-dir", self.path("usr/share/everruns/sql")],
                            "0 applied"),
                           (["check-config"], "server key: ok")):
            p = subprocess.run(evr._as_run_user([admin] + args), env=env, cwd="/",
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout)
            self.assertIn(want, p.stdout)
        # a second install keeps the edited configuration
        make("install", *self.vars)
        self.assertEqual(self.read("etc/everruns/everruns.conf"), conf)

    def test_zz_uninstall(self):
        make("uninstall", *self.vars)
        for u in UNITS:
            self.assertFalse(os.path.exists(self.path("usr/lib/systemd/system", u)))
        self.assertFalse(os.path.exists(self.path("usr/bin/everruns-api")))
        self.assertFalse(os.path.exists(self.path("usr/bin/everruns")))
        self.assertFalse(os.path.exists(self.path("usr/share/man/man1/everruns.1")))


if __name__ == "__main__":
    unittest.main()
