"""everrunsctl run by root never follows a link inside the state directory,
which belongs to the stack's user: anything running as that user could
plant one there (README, "Stack control").

Each round plants symbolic links (owned by the stack's user) at the paths
root used to create, chown, chmod or append to, all pointing at files and
directories of a root-owned "victim" tree outside the state directory;
runs start, status and stop; and checks that nothing in the victim tree
changed owner, mode or content. Root only (skipped otherwise)."""

import hashlib
import os
import shutil
import tempfile
import unittest

import evr
from stacks import ExtraStack, free_ports, state_dir

RUN_USER = evr.stack_env("EVR_RUN_USER")


def snapshot(root):
    """path -> (uid, gid, mode, sha256 of a file / sorted names of a dir)"""
    out = {}
    for d, dirs, files in os.walk(root):
        for p in [d] + [os.path.join(d, f) for f in files]:
            st = os.lstat(p)
            if os.path.isdir(p):
                what = tuple(sorted(os.listdir(p)))
            else:
                with open(p, "rb") as f:
                    what = hashlib.sha256(f.read()).hexdigest()
            out[p] = (st.st_uid, st.st_gid, oct(st.st_mode), what)
    return out


@unittest.skipUnless(os.geteuid() == 0 and RUN_USER and RUN_USER != "root",
                     "needs root and a stack user")
class CtlLinks(unittest.TestCase):
    def setUp(self):
        # the victims: root's, readable by all, like /etc
        self.victims = tempfile.mkdtemp(prefix="evr-victims.", dir="/var/tmp")
        self.addCleanup(shutil.rmtree, self.victims, True)
        os.chmod(self.victims, 0o755)
        self.uid = shutil._get_uid(RUN_USER)
        self.gid = shutil._get_gid(RUN_USER)
        self.outputs = []

    def victim_file(self, name):
        p = os.path.join(self.victims, "f_" + name)
        with open(p, "w") as f:
            f.write("root's %s\n" % name)
        os.chmod(p, 0o644)
        return p

    def victim_dir(self, name):
        p = os.path.join(self.victims, "d_" + name)
        os.mkdir(p, 0o755)
        os.chmod(p, 0o755)
        with open(os.path.join(p, "inside"), "w") as f:
            f.write("root's file in %s\n" % name)
        return p

    def plant(self, link, target):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(target, link)
        os.lchown(link, self.uid, self.gid)

    def own_dirs(self, home, *dirs):
        for d in ("",) + dirs:
            p = os.path.join(home, d)
            os.makedirs(p, exist_ok=True)
            os.chown(p, self.uid, self.gid)
            os.chmod(p, 0o750)

    def host(self, name):
        h = ExtraStack(name)
        h.home = state_dir(name)
        h.http_port, h.https_port = free_ports(2)
        h.env.update({"EVERRUNS_HOME": h.home, "EVERRUNS_HTTP_PORT": str(h.http_port),
                      "EVERRUNS_HTTPS_PORT": str(h.https_port)})
        h.started = True  # stop() runs `everrunsctl stop`, then removes the home
        self.addCleanup(h.stop)
        return h

    def run_ctl(self, h):
        """start, status, stop; their exit codes and output"""
        res = {}
        for cmd in ("start", "status", "stop"):
            p = h.ctl(cmd, check=False)
            res[cmd] = p.returncode
            self.outputs.append("--- everrunsctl %s: exit %d\n%s" % (cmd, p.returncode, p.stdout))
        return res

    def assert_victims_unchanged(self, before):
        after = snapshot(self.victims)
        changed = ["%s: %s -> %s" % (p, before[p], after.get(p))
                   for p in sorted(before) if after.get(p) != before[p]]
        changed += ["%s: new" % p for p in sorted(set(after) - set(before))]
        self.assertEqual(changed, [], "\n".join(self.outputs))

    def test_directory_links(self):
        """run/, log/, nginx/, nginx/tmp and tls/ as links to root's
        directories: start refuses, nothing outside changes."""
        h = self.host("links-dirs")
        self.own_dirs(h.home, "nginx")
        for d in ("run", "log", "nginx/tmp", "tls"):
            self.plant(os.path.join(h.home, d), self.victim_dir(d.replace("/", "_")))
        before = snapshot(self.victims)
        res = self.run_ctl(h)
        self.assert_victims_unchanged(before)
        self.assertNotEqual(res["start"], 0)
        self.assertIn("symbolic link", self.outputs[0])

    def test_file_links(self):
        """The control lock, every log file, the TLS key and the files
        written through temporary names as links to root's files: start
        replaces them and comes up; nothing outside changes."""
        h = self.host("links-files")
        self.own_dirs(h.home, "run", "log", "nginx", "nginx/tmp", "tls")
        links = {"run/ctl.lock": "lock", "run/stack.env": "env",
                 "tls/server.key": "key", "nginx/nginx.conf.new": "conf"}
        for f in ("api", "sse", "runner", "admin", "openssl", "nginx-error",
                  "nginx-access", "postgresql", "initdb"):
            links["log/%s.log" % f] = f
        for path, name in links.items():
            self.plant(os.path.join(h.home, path), self.victim_file(name))
        before = snapshot(self.victims)
        res = self.run_ctl(h)
        self.assert_victims_unchanged(before)
        self.assertEqual(res["start"], 0, "\n".join(self.outputs))
        # and the stack's own files are regular files of its user now
        for path in ("log/api.log", "log/admin.log", "tls/server.key"):
            p = os.path.join(h.home, path)
            self.assertFalse(os.path.islink(p), path)
            self.assertEqual(os.lstat(p).st_uid, self.uid, path)

    def test_state_directory_is_a_link(self):
        """EVERRUNS_HOME itself a link to an empty directory of root's:
        refused; the directory keeps its owner and stays empty."""
        h = self.host("links-home")
        target = os.path.join(self.victims, "d_home")
        os.mkdir(target, 0o755)
        link = os.path.join(h.home, "home")
        self.own_dirs(h.home)
        self.plant(link, target)
        h.env["EVERRUNS_HOME"] = link
        before = snapshot(self.victims)
        res = self.run_ctl(h)
        self.assert_victims_unchanged(before)
        self.assertNotEqual(res["start"], 0)
        self.assertIn("symbolic link", self.outputs[0])


if __name__ == "__main__":
    unittest.main()
