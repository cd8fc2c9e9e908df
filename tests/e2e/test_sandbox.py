"""The virtual_bash capability (a bash tool in a bubblewrap sandbox over the
session's files), driven by the scripted fake provider: the guide's
"Long-Running Analysis" end to end (python3 totals sales.csv, writes
report.md, the SSE stream shows the output while the command runs), escape
attempts each denied or contained with nothing left running, a cancel
during a long command, a runner killed during a command.

Every sandboxed command exports a marker variable (EVR_T=<random>) that
all its processes inherit; "nothing left running" is checked by looking
for that marker in /proc/*/environ of every process of the host."""

import json
import os
import signal
import subprocess
import threading
import time
import unittest
import uuid

import evr
from evr import api, new_org, tool_output, wait_until, psql, start_runner, stack_pid, ctl, HOME, at_once
from test_drivers import Fake, fake_providers
from test_sse import Stream
from test_turns import events, send, wait_idle

SALES = ("region,product,units,price\n"
         "north,widget,10,2.50\n"
         "south,widget,4,2.50\n"
         "north,gadget,3,10.00\n"
         "east,gadget,7,10.00\n"
         "south,gizmo,12,1.25\n")

ANALYSIS = r'''python3 - <<'EOF'
import csv, time, collections, sys
print("reading sales.csv", file=sys.stderr, flush=True)
time.sleep(0.2)
rows = list(csv.DictReader(open("sales.csv")))
by_region = collections.OrderedDict()
total = 0.0
for i, r in enumerate(rows):
    amount = int(r["units"]) * float(r["price"])
    by_region[r["region"]] = by_region.get(r["region"], 0.0) + amount
    total += amount
    print("row %d: %s %.2f" % (i + 1, r["region"], amount), flush=True)
    time.sleep(0.25)
with open("report.md", "w") as f:
    f.write("# Sales report\n\n")
    for k, v in sorted(by_region.items()):
        f.write("- %s: %.2f\n" % (k, v))
    f.write("\nTotal: %.2f\n" % total)
print("TOTAL %.2f" % total)
EOF'''


SPAWN40 = """
import subprocess
ps = []
try:
    for i in range(40):
        ps.append(subprocess.Popen(["sleep", "5"]))
except OSError:
    pass
for p in ps:
    p.kill()
print("started", len(ps))
"""


def marked(mark):
    """Pids of the host's processes that carry the marker."""
    found = []
    needle = ("EVR_T=%s" % mark).encode()
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % p, "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(int(p))
        except OSError:
            pass
    return found


def holder_pid(turn):
    rows = psql("SELECT r.pid FROM turns t JOIN runners r ON r.id = t.lease_owner "
                "WHERE t.id = replace(substr($1, 5), '-', '')::uuid", turn)
    return int(rows[0][0]) if rows and rows[0][0] else None


def host_namespaces():
    """Can the stack's user create bwrap's namespaces on this host at all?
    (None, or why not.) Not where the kernel forbids unprivileged user
    namespaces, nor in a chroot (unshare(CLONE_NEWUSER) is EPERM there)."""
    p = subprocess.run(evr._as_run_user(["bwrap", "--ro-bind", "/", "/", "--unshare-all",
                                         "--die-with-parent", "true"]),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                       cwd="/", timeout=30)
    return None if p.returncode == 0 else (p.stdout.strip() or "exit %d" % p.returncode)


# what still runs on a host without namespaces: the answers that say so
WITHOUT_NAMESPACES = ("test_health_says_the_sandbox_works",
                      "test_without_bwrap_the_tool_says_so_and_runs_nothing")


class Sandbox(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.no_ns = host_namespaces()
        cls.fake = Fake()
        cls.key = new_org("sandbox")["api_key"]
        cls.providers = fake_providers(cls.fake, cls.key)
        cls.harness = api("GET", "/api/v1/harnesses/base", key=cls.key).json["id"]

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def setUp(self):
        self.mark = uuid.uuid4().hex[:12]
        if self.no_ns and self._testMethodName not in WITHOUT_NAMESPACES:
            self.skipTest("this host cannot create the sandbox's namespaces (%s)" % self.no_ns)

    def tearDown(self):
        # whatever a test did: nothing of its sandboxes runs afterwards
        wait_until(lambda: not marked(self.mark), timeout=2, what="no process left")

    def model(self):
        name = "m-" + uuid.uuid4().hex[:12]
        r = api("POST", "/api/v1/llm-providers/%s/models" % self.providers["openai_completions"],
                {"model_id": name, "capabilities": ["chat", "tools"]}, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return name, r.json["id"]

    def session(self, model_id):
        r = api("POST", "/api/v1/sessions",
                {"harness_id": self.harness, "model_id": model_id,
                 "capabilities": [{"ref": "virtual_bash"}, {"ref": "session_file_system"}]},
                key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return r.json["id"]

    def put(self, sid, path, data):
        r = api("PUT", "/api/v1/sessions/%s/fs/%s" % (sid, path), raw=data, key=self.key,
                content_type="text/csv")
        self.assertIn(r.status, (200, 201), r.text)

    def get(self, sid, path):
        return api("GET", "/api/v1/sessions/%s/fs/_/download/%s" % (sid, path), key=self.key)

    def calls(self, *cmds):
        """A model reply calling bash with each (command[, timeout])."""
        out = []
        for i, c in enumerate(cmds):
            cmd, timeout = (c, None) if isinstance(c, str) else c
            args = {"command": "export EVR_T=%s\n%s" % (self.mark, cmd)}
            if timeout:
                args["timeout"] = timeout
            out.append({"id": "call_%d" % i, "name": "bash", "arguments": json.dumps(args)})
        return {"tool_calls": out}

    def run_turn(self, sid, name, *cmds, timeout=30):
        self.fake.script(name, self.calls(*cmds), {"text": "done", "chunks": 1})
        self.assertEqual(send(self.key, sid, "go").status, 201)
        evs = wait_idle(self.key, sid, 1, timeout=timeout)
        done = [e["data"] for e in evs if e["type"] == "tool.completed"]
        self.assertEqual(len(done), len(cmds), evs)
        return done

    # --- the guide's analysis -------------------------------------------------

    def test_guide_analysis_end_to_end(self):
        name, mid = self.model()
        sid = self.session(mid)
        self.put(sid, "sales.csv", SALES.encode())
        self.assertIn("virtual_bash", [c["id"] for c in api("GET", "/api/v1/capabilities",
                                                            key=self.key).json["data"]])
        self.fake.script(name, self.calls(ANALYSIS),
                         {"text": "The report is in report.md.", "chunks": 2})
        frames, arrived = [], []
        st = Stream(sid, self.key, timeout=30)
        self.assertEqual(st.status, 200)

        def read():
            while True:
                f = st.frame()
                if f is None:
                    return
                frames.append(f)
                arrived.append(time.monotonic())
                if f.get("event") == "turn.completed":
                    return
        th = threading.Thread(target=read, daemon=True)
        th.start()
        self.assertEqual(send(self.key, sid, "Analyze sales.csv and create a report in report.md").status, 201)
        # a stream that joins during the command gets the output so far
        # as its first delta
        wait_until(lambda: sum(f.get("event") == "tool.output.delta" for f in frames) >= 3,
                   timeout=20, what="some output")
        late = Stream(sid, self.key, query="types=tool.output.delta", timeout=30)
        got = late.until(lambda f: f.get("event") == "tool.output.delta")
        self.assertEqual([f.get("event") for f in got], ["connected", "tool.output.delta"])
        first = got[-1]["data"]["data"]
        late.conn.close()
        th.join(30)
        st.conn.close()
        evs = wait_idle(self.key, sid, 1)
        done = [e["data"] for e in evs if e["type"] == "tool.completed"][0]
        self.assertTrue(done["success"], done)
        res = tool_output(done)
        self.assertEqual(res["exit_code"], 0, res)
        self.assertIn("TOTAL 150.00", res["stdout"])
        self.assertEqual(res["files"]["written"], ["/report.md"])
        # the report, over REST
        rep = self.get(sid, "report.md")
        self.assertEqual(rep.status, 200)
        self.assertEqual(rep.body.decode(),
                         "# Sales report\n\n- east: 70.00\n- north: 55.00\n- south: 25.00\n"
                         "\nTotal: 150.00\n")
        written = [e["data"] for e in evs if e["type"] == "file.written" and e["data"]["source"] == "tool"]
        self.assertEqual([(w["path"], w["operation"]) for w in written], [("/report.md", "created")])
        # the output streamed while the command ran: deltas of the call,
        # the first well before the tool's completion
        kinds = [f.get("event") for f in frames]
        self.assertIn("tool.completed", kinds, kinds)
        deltas = [(f, t) for f, t in zip(frames, arrived) if f.get("event") == "tool.output.delta"]
        self.assertTrue(deltas, kinds)
        for f, _ in deltas:
            d = f["data"]["data"]
            self.assertEqual((d["tool_call_id"], d["tool_name"]), ("call_0", "bash"))
            self.assertEqual(d["message_sequence"],
                             [e["sequence"] for e in evs if e["type"] == "tool.started"][0])
        # each delta says its stream (within one read of the loop the
        # order of two pipes is not known: compare each stream's text)
        by = {"stdout": "", "stderr": ""}
        for f, _ in deltas:
            by[f["data"]["data"]["stream"]] += f["data"]["data"]["delta"]
        self.assertEqual(by, {"stdout": res["stdout"], "stderr": "reading sales.csv\n"})
        self.assertEqual(res["stderr"], "reading sales.csv\n")
        self.assertIn("reading sales.csv\n", first["delta"])
        self.assertIn("row 1: north 25.00\n", first["delta"])
        t_done = arrived[kinds.index("tool.completed")]
        self.assertLess(deltas[0][1], t_done - 0.7, "the first output came only at the end")
        self.assertLess(kinds.index("tool.output.delta"), kinds.index("tool.completed"))

    # --- availability ------------------------------------------------------------

    def test_health_says_the_sandbox_works(self):
        said = api("GET", "/health", key=None).json["sandbox"]
        if self.no_ns:  # ... or that it cannot, and why
            self.assertIn("bubblewrap cannot create its namespaces on this host", said)
        else:
            self.assertEqual(said, "ok")

    def test_without_bwrap_the_tool_says_so_and_runs_nothing(self):
        broken = start_runner(log_name="runner-nobwrap", EVERRUNS_SANDBOX_BWRAP="/nonexistent/bwrap")
        main = stack_pid("runner")
        try:
            # its heartbeat says why it cannot sandbox (what /health shows)
            wait_until(lambda: "not installed" in "".join(
                r[0] or "" for r in psql("SELECT sandbox_error FROM runners WHERE pid = $1::int",
                                         str(broken.pid))),
                       timeout=10, what="the broken runner's heartbeat to tell")
            os.kill(main, signal.SIGSTOP)  # the broken runner claims the turn
            name, mid = self.model()
            sid = self.session(mid)
            out = self.run_turn(sid, name, "echo ran > ran.txt")
            self.assertFalse(out[0]["success"])
            self.assertIn("The sandbox is unavailable: /nonexistent/bwrap is not installed", out[0]["error"])
            self.assertEqual(self.get(sid, "ran.txt").status, 404)
        finally:
            os.kill(main, signal.SIGCONT)
            broken.kill()
            broken.wait(timeout=10)
            psql("DELETE FROM runners WHERE pid = $1::int", str(broken.pid))
        with open(os.path.join(HOME, "log", "runner-nobwrap.log")) as f:
            self.assertIn("virtual_bash: The sandbox is unavailable", f.read())

    def test_process_limit_is_the_sandbox_s_own(self):
        # RLIMIT_NPROC counts all the user's tasks (the stack's too): a
        # limit of 16 must still start the sandbox and then stop the 17th
        # or so process of the command, not fail bwrap itself
        small = start_runner(log_name="runner-nproc", EVERRUNS_SANDBOX_MAX_PROCESSES="16",
                             EVERRUNS_SANDBOX_DISK_MB="8")
        main = stack_pid("runner")
        try:
            wait_until(lambda: int(psql("SELECT count(*) FROM runners WHERE seen_at > now() - "
                                        "interval '3 s'")[0][0]) >= 2, timeout=10, what="two runners")
            os.kill(main, signal.SIGSTOP)  # the small runner claims the turn
            name, mid = self.model()
            sid = self.session(mid)
            out = self.run_turn(sid, name, "python3 -c '%s'" % SPAWN40,
                                "for i in 1 2 3 4 5 6 7 8; do head -c 2M /dev/zero > f$i; sleep 0.2; done")
            self.assertTrue(out[0]["success"], out[0])
            r = tool_output(out[0])
            self.assertNotIn("Creating new namespace failed", r["stderr"])
            self.assertEqual(r["exit_code"], 0, r)
            got = int(r["stdout"].split()[-1])
            self.assertTrue(5 <= got < 40, r)
            # past sandbox_disk_mb (8): killed, nothing written back
            r = tool_output(out[1])
            self.assertIsNone(r["exit_code"], r)
            self.assertIn("more than the sandbox's disk limit", r["notes"][0])
            self.assertEqual(api("GET", "/api/v1/sessions/%s/fs?recursive=true" % sid,
                                 key=self.key).json["data"], [])
        finally:
            os.kill(main, signal.SIGCONT)
            small.kill()
            small.wait(timeout=10)
            psql("DELETE FROM runners WHERE pid = $1::int", str(small.pid))

    # --- escapes ----------------------------------------------------------------

    def test_reads_outside_are_denied(self):
        name, mid = self.model()
        other = self.session(mid)
        self.put(other, "secret.txt", b"OTHER-SESSION-SECRET")
        sid = self.session(mid)
        out = self.run_turn(
            sid, name,
            "cat /etc/shadow",
            "ls %s; ls /home /root /var 2>&1; echo $HOME" % HOME,
            "grep -rls OTHER-SESSION-SECRET / --exclude-dir=proc --exclude-dir=sys --exclude-dir=usr; echo end",
            "python3 -c 'import socket; s=socket.create_connection((\"127.0.0.1\", %d), 2)'" % self.api_port(),
            "python3 -c 'import socket; s=socket.create_connection((\"1.1.1.1\", 53), 2)'",
            "getent hosts example.com || echo no-dns; ls /sys/class/net 2>&1",
            "ls /proc/self/fd; ls /proc | grep -c '^[0-9]'")
        r = [tool_output(d) for d in out]
        self.assertNotEqual(r[0]["exit_code"], 0)
        self.assertIn("No such file", r[0]["stderr"])
        self.assertIn("No such file", r[1]["stderr"])
        self.assertNotIn("everruns.conf", r[1]["stdout"])
        self.assertEqual(r[2]["stdout"], "end\n")
        for i in (3, 4):
            self.assertNotEqual(r[i]["exit_code"], 0, r[i])
            self.assertTrue("refused" in r[i]["stderr"] or "unreachable" in r[i]["stderr"], r[i])
        self.assertIn("no-dns", r[5]["stdout"])
        # nothing of the runner's (its database sockets) was inherited,
        # and the command sees only its own processes
        words = r[6]["stdout"].split()
        fds, nproc = words[:-1], words[-1]
        self.assertEqual(fds, ["0", "1", "2", "3"], r[6])
        self.assertLessEqual(int(nproc), 5, r[6])

    def api_port(self):
        from evr import BASE
        import urllib.parse
        return urllib.parse.urlsplit(BASE).port

    def test_runaway_commands_are_contained(self):
        name, mid = self.model()
        sid = self.session(mid)
        t0 = time.monotonic()
        out = self.run_turn(
            sid, name,
            ("f() { f | f & }; f; sleep 100", 3),
            ("while :; do :; done", 2),
            ("trap '' TERM INT HUP; sleep 100", 2),
            "(setsid sleep 300 &); nohup sleep 301 >/dev/null 2>&1 & disown; echo started",
            timeout=40)
        r = [tool_output(d) for d in out]
        for i in (0, 1, 2):
            self.assertTrue(r[i]["timed_out"], r[i])
            self.assertIsNone(r[i]["exit_code"])
        # the daemons did not hold the call: it ended as its shell did
        self.assertEqual(r[3]["exit_code"], 0, r[3])
        self.assertEqual(r[3]["stdout"], "started\n")
        self.assertLess(r[3]["duration_ms"], 2000)
        self.assertLess(time.monotonic() - t0, 30)
        self.assertEqual(marked(self.mark), [])

    def test_limits_links_and_names_on_the_way_back(self):
        name, mid = self.model()
        sid = self.session(mid)
        self.put(sid, "keep.txt", b"kept")
        out = self.run_turn(
            sid, name,
            "head -c 12M /dev/zero > big.bin; ls -l big.bin | cut -d' ' -f5",
            "head -c 40M /dev/zero > huge.bin; echo rc=$?",
            "ln -s /etc/passwd link; ln -s ../../.. up; ln -s keep.txt near; echo ok",
            "ln /usr/bin/bash hard 2>&1; echo x > a.txt; ln a.txt b.txt; echo ok",
            "touch $'bad\\xff.txt' 'ok.txt'; mkfifo pipe; echo ok",
            "yes | head -c 200000")
        r = [tool_output(d) for d in out]
        notes = " ".join(" ".join(x.get("notes", [])) for x in r)
        # 12 MiB: past the session's 10 MiB file limit (never stored)
        self.assertIn("/big.bin: not written back", notes)
        # 40 MiB: past the sandbox's file size (SIGXFSZ), and not stored
        self.assertIn("rc=153", r[1]["stdout"])
        self.assertIn("/link: skipped (a symbolic link", notes)
        self.assertIn("/up: skipped (a symbolic link", notes)
        self.assertIn("/near: skipped (a symbolic link", notes)
        self.assertIn("Invalid cross-device link", r[3]["stdout"])
        self.assertIn("/a.txt: skipped (a hard link)", notes)
        self.assertIn("bad\\xff.txt: skipped (a name", notes)
        self.assertIn("/pipe: skipped (not a regular file", notes)
        self.assertEqual(r[4]["files"]["written"], ["/ok.txt"])
        # output cut at the limit, and said so
        self.assertTrue(r[5]["truncated"])
        self.assertEqual(r[5]["stdout_bytes"], 200000)
        self.assertLess(len(r[5]["stdout"]), 200000)
        listing = api("GET", "/api/v1/sessions/%s/fs?recursive=true" % sid, key=self.key).json["data"]
        paths = sorted(f["path"] for f in listing)
        self.assertEqual(paths, ["/keep.txt", "/ok.txt"])

    def test_conflict_with_a_rest_write_keeps_the_rest_version(self):
        name, mid = self.model()
        sid = self.session(mid)
        self.put(sid, "shared.txt", b"v1")
        self.fake.script(name, self.calls("sleep 1.5; echo sandbox > shared.txt; echo new > new.txt"),
                         {"text": "done", "chunks": 1})
        send(self.key, sid, "go")
        wait_until(lambda: marked(self.mark), timeout=10, what="the command")
        self.put(sid, "shared.txt", b"rest")
        evs = wait_idle(self.key, sid, 1)
        res = tool_output([e["data"] for e in evs if e["type"] == "tool.completed"][0])
        self.assertEqual(self.get(sid, "shared.txt").body, b"rest")
        self.assertEqual(self.get(sid, "new.txt").body, b"new\n")
        self.assertIn("/shared.txt: not written back (conflict", " ".join(res["notes"]))

    # --- cancel and restart ---------------------------------------------------

    def test_cancel_kills_the_tree_at_once(self):
        name, mid = self.model()
        sid = self.session(mid)
        self.fake.script(name, self.calls("sleep 60 & sleep 61 & (trap '' TERM; sleep 62) ; wait"),
                         {"text": "never", "chunks": 1})
        send(self.key, sid, "go")
        wait_until(lambda: len(marked(self.mark)) >= 3, timeout=10, what="the command's processes")
        t0 = time.monotonic()
        c = api("POST", "/api/v1/sessions/%s/cancel" % sid, key=self.key)
        self.assertEqual(c.json["status"], "cancelled")
        wait_until(lambda: api("GET", "/api/v1/sessions/" + sid, key=self.key).json["status"] == "idle",
                   timeout=5, interval=0.005, what="idle")
        ended = time.monotonic() - t0
        wait_until(lambda: not marked(self.mark), timeout=1, interval=0.005, what="no process")
        gone = time.monotonic() - t0
        print("cancel: turn ended in %.0f ms, processes gone in %.0f ms" % (ended * 1000, gone * 1000))
        self.assertLess(ended, at_once(0.2))
        self.assertLess(gone, at_once(0.2))
        types = [e["type"] for e in events(self.key, sid, 1)]
        self.assertIn("turn.cancelled", types)
        self.assertNotIn("tool.completed", types)

    def test_a_runner_that_lost_the_turn_writes_no_file_back(self):
        extra = start_runner(log_name="runner-fence")
        stopped = None
        try:
            wait_until(lambda: int(psql("SELECT count(*) FROM runners WHERE seen_at > now() - "
                                        "interval '3 s'")[0][0]) >= 2, timeout=10, what="two runners")
            name, mid = self.model()
            sid = self.session(mid)
            # each run leaves a file of its own name
            self.fake.script(name, self.calls("sleep 2; touch run-$(cat /proc/sys/kernel/random/uuid)"),
                             {"text": "done", "chunks": 1})
            turn = send(self.key, sid, "go").json["turn_id"]
            wait_until(lambda: marked(self.mark), timeout=10, what="the command")
            stopped = holder_pid(turn)
            os.kill(stopped, signal.SIGSTOP)  # past its lease: taken over
            wait_until(lambda: psql("SELECT attempt FROM turns WHERE id = replace(substr($1, 5), '-', '')::uuid",
                                    turn)[0][0] == "2", timeout=10, what="the takeover")
            evs = wait_idle(self.key, sid, 1, timeout=30)
            self.assertEqual([e["type"] for e in evs][-2:], ["turn.completed", "session.idled"])
            # the first runner, back, finds its command ended and the turn gone
            os.kill(stopped, signal.SIGCONT)
            stopped = None
            time.sleep(1.5)
            files = [f["path"] for f in api("GET", "/api/v1/sessions/%s/fs" % sid, key=self.key).json["data"]]
            self.assertEqual(len(files), 1, files)
            self.assertEqual(len([e for e in events(self.key, sid, 1) if e["type"] == "file.written"]), 1)
        finally:
            if stopped:
                os.kill(stopped, signal.SIGCONT)
            extra.kill()
            extra.wait(timeout=10)
            if not stack_pid("runner") or not os.path.exists("/proc/%d" % stack_pid("runner")):
                ctl("start")

    def test_runner_killed_during_a_command_leaves_nothing(self):
        extra = start_runner()
        try:
            wait_until(lambda: int(psql("SELECT count(*) FROM runners WHERE seen_at > now() - "
                                        "interval '3 s'")[0][0]) >= 2, timeout=10, what="two runners")
            name, mid = self.model()
            sid = self.session(mid)
            # the takeover runs the call again: a short limit ends it
            self.fake.script(name, self.calls(("sleep 60 & sleep 61; wait", 3)),
                             {"text": "after the takeover", "chunks": 1})
            m = send(self.key, sid, "go")
            turn = m.json["turn_id"]
            wait_until(lambda: len(marked(self.mark)) >= 2, timeout=10, what="the command's processes")
            first = set(marked(self.mark))
            pid = holder_pid(turn)
            os.kill(pid, signal.SIGKILL)
            t0 = time.monotonic()
            wait_until(lambda: not (first & set(marked(self.mark))), timeout=2, interval=0.01,
                       what="the old sandbox's processes to die")
            print("runner killed: its sandbox gone in %.0f ms" % ((time.monotonic() - t0) * 1000))
            evs = wait_idle(self.key, sid, 1, timeout=30)
            types = [e["type"] for e in evs]
            self.assertEqual(types[-2:], ["turn.completed", "session.idled"], types)
            done = [e["data"] for e in evs if e["type"] == "tool.completed"]
            self.assertEqual(len(done), 1)
            self.assertTrue(tool_output(done[0])["timed_out"])
        finally:
            try:
                extra.kill()
            except ProcessLookupError:
                pass
            extra.wait(timeout=10)
            if not stack_pid("runner") or not os.path.exists("/proc/%d" % stack_pid("runner")):
                ctl("start")


if __name__ == "__main__":
    unittest.main()
