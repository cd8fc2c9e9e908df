"""everruns, the command-line client, end to end: the built binary is run
against the stack for every command. Sessions CRUD in the guide's form,
a chat turn with a tool call streamed as it is generated, Ctrl-C (SIGINT)
cancelling a long turn and a second one quitting, `events tail` resuming
across a SIGKILL and restart of everruns-sse, the filesystem and image
commands, the catalogue nouns and API keys, configuration (environment,
flags, a config file whose mode is checked), TLS options, --json output
parsed, and the exit codes: 1 with the server's message for a bad key, an
unknown id and a busy session, 2 for usage errors. A waiting turn:
`sessions approve` and `sessions tool-results` with the server's refusals
(unknown, answered twice, wrong kind, not waiting), and `chat` asking
"Allow <tool>(<args>)? [y/N]" and announcing a client-side tool's call."""

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import unittest

from evr import api, new_org, wait_until, ctl, stack_pid, BASE, HTTPS_BASE, HOME, BUILDDIR

CLI = os.environ.get("EVR_CLI_BIN") or os.path.join(BUILDDIR, "fcgi", "cli", "everruns")
OWN_ENV = ("EVERRUNS_API_URL", "EVERRUNS_API_KEY", "EVERRUNS_CACERT",
           "EVERRUNS_INSECURE", "EVERRUNS_CONFIG", "XDG_CONFIG_HOME")


class Proc:
    """A running everruns whose stdout and stderr are collected by threads."""

    def __init__(self, args, env):
        self.p = subprocess.Popen([CLI] + [str(a) for a in args], env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out, self.err = [], []
        for src, dst in ((self.p.stdout, self.out), (self.p.stderr, self.err)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        for chunk in iter(lambda: src.read1(65536), b""):
            dst.append(chunk)

    def stdout(self):
        return b"".join(self.out).decode("utf-8", "replace")

    def stderr(self):
        return b"".join(self.err).decode("utf-8", "replace")

    def write(self, text):
        self.p.stdin.write(text.encode("utf-8"))
        self.p.stdin.flush()

    def wait_out(self, needle, timeout=20, count=1, err=False):
        text = self.stderr if err else self.stdout
        try:
            return wait_until(lambda: text().count(needle) >= count, timeout=timeout,
                              what="%r in the %s" % (needle, "stderr" if err else "output"))
        except AssertionError as e:
            # what the program said and whether it is still running, so
            # a failure can be told from a hang
            raise AssertionError("%s; stdout %r; stderr %r; exit status %r"
                                 % (e, self.stdout()[-300:], self.stderr()[-600:],
                                    self.p.poll())) from None

    def finish(self, timeout=30):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        rc = self.p.wait(timeout=timeout)
        time.sleep(0.1)  # the pumps drain
        return rc

    def interrupt(self, timeout=10):
        """Ctrl-C, then the exit status."""
        self.p.send_signal(signal.SIGINT)
        return self.p.wait(timeout=timeout)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            try:
                f.close()
            except OSError:
                pass


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.org = new_org("cli")
        cls.key = cls.org["api_key"]
        cls.home = tempfile.mkdtemp(prefix="everruns-cli-home.")
        cls.agent = api("GET", "/api/v1/agents/assistant", key=cls.key).json["id"]
        prv = [p for p in api("GET", "/api/v1/llm-providers", key=cls.key).json["data"]
               if p["provider_type"] == "llmsim"][0]["id"]
        cls.instant = api("POST", "/api/v1/llm-providers/%s/models" % prv,
                          {"model_id": "llmsim-instant", "capabilities": ["chat", "tools"]},
                          key=cls.key).json["id"]

    def env(self, key=None, url=None, **extra):
        e = {k: v for k, v in os.environ.items() if k not in OWN_ENV}
        e["HOME"] = self.home
        e["EVERRUNS_API_URL"] = url or BASE
        e["EVERRUNS_API_KEY"] = self.key if key is None else key
        e.update(extra)
        return {k: v for k, v in e.items() if v is not None}

    def run_cli(self, *args, input=None, key=None, env=None, timeout=60):
        return subprocess.run([CLI] + [str(a) for a in args], input=input,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env or self.env(key), timeout=timeout,
                              universal_newlines=True)

    def ok(self, *args, **kw):
        p = self.run_cli(*args, **kw)
        self.assertEqual(p.returncode, 0, "everruns %s: %s" % (" ".join(map(str, args)), p.stderr))
        return p

    def js(self, *args, **kw):
        return json.loads(self.ok(*(("--json",) + args), **kw).stdout)

    def session(self, *extra):
        return self.js("sessions", "create", "--agent", "assistant", *extra)["id"]

    def status(self, sid):
        return api("GET", "/api/v1/sessions/" + sid, key=self.key).json["status"]

    def events(self, sid, since=0):
        return api("GET", "/api/v1/sessions/%s/events?since_sequence=%d" % (sid, since),
                   key=self.key).json["data"]

    def last_seq(self, sid):
        return self.events(sid)[-1]["sequence"]

    # ---- usage, help, configuration -------------------------------------

    def test_help_for_every_command(self):
        top = self.ok("--help").stdout
        nouns = ["sessions", "chat", "messages", "events", "fs", "agents", "harnesses",
                 "models", "providers", "capabilities", "images", "api-keys", "me"]
        for n in nouns:
            self.assertIn(n, top)
        verbs = {"sessions": ["create", "list", "get", "update", "delete", "cancel",
                              "tool-results", "approve"],
                 "messages": ["send", "list"], "events": ["list", "tail"],
                 "fs": ["ls", "cat", "put", "get", "mkdir", "rm", "mv", "cp", "grep", "stat"],
                 "agents": ["list", "get", "create", "delete"], "harnesses": ["list", "get"],
                 "models": ["list", "get"], "providers": ["list", "get"],
                 "capabilities": ["list", "get"], "images": ["upload", "list", "get", "download", "delete"],
                 "api-keys": ["list", "create", "delete"]}
        for n in nouns:
            p = self.run_cli(n, "--help", key="")
            self.assertEqual(p.returncode, 0, n + ": " + p.stderr)
            self.assertIn("everruns " + n, p.stdout)
            for v in verbs.get(n, []):
                p = self.run_cli(n, v, "--help", key="")
                self.assertEqual(p.returncode, 0, "%s %s: %s" % (n, v, p.stderr))
                self.assertIn("usage: everruns %s %s" % (n, v), p.stdout)
        self.assertIn("usage: everruns chat", self.run_cli("chat", "-h").stdout)

    def test_usage_errors_exit_2(self):
        for args in (["frobnicate"], ["sessions", "bogus"], ["sessions", "get"],
                     ["sessions", "get", "a", "b"], ["sessions", "create", "--bogus"],
                     ["sessions", "create", "--title"], ["--bogus", "sessions"],
                     ["sessions", "create", "--agent", "assistant", "--max-iterations", "x"],
                     ["sessions", "create", "--agent", "assistant", "--capability", "web_fetch:{bad"],
                     ["sessions", "update", "ses_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b"],
                     ["events", "tail", "ses_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b", "--since", "-3"],
                     ["messages", "send", "ses_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b"],
                     ["fs", "put", "ses_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b", "/a", "/nonexistent/file"],
                     ["sessions", "tool-results", "ses_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b"],
                     ["sessions", "tool-results", "ses_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b", "--call", "c"],
                     ["sessions", "tool-results", "ses_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b", "--result", "1"],
                     ["sessions", "tool-results", "ses_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b", "--call", "c",
                      "--result", "{bad"],
                     ["sessions", "tool-results", "ses_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b", "--call", "c",
                      "--result", "1,2"],
                     ["sessions", "tool-results", "ses_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b", "--call", "c",
                      "--result", "1", "--error", "x"],
                     ["sessions", "approve", "ses_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b"],
                     ["sessions", "approve", "ses_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b", "--call", "c",
                      "--reason", "why"],
                     ["--api-url", "ftp://x", "me"], []):
            p = self.run_cli(*args)
            self.assertEqual(p.returncode, 2, "%r: %s %s" % (args, p.stdout, p.stderr))
            self.assertTrue(p.stderr.strip(), args)
        p = self.run_cli("me", key="")
        self.assertEqual(p.returncode, 2)
        self.assertIn("no API key", p.stderr)

    def test_api_url_root_and_api_forms(self):
        # the server's root, and the form the SDKs and upstream's CLI use
        # (ending in /api); by the environment and by --api-url
        sid = self.session()
        root = BASE.rstrip("/")
        for url in (root, root + "/", root + "/api", root + "/api/", root + "/api/v1"):
            got = self.js("sessions", "list", env=self.env(url=url))
            self.assertIn(sid, [s["id"] for s in got["data"]], url)
            got = self.js("--api-url", url, "sessions", "get", sid,
                          env=self.env(EVERRUNS_API_URL=None))
            self.assertEqual(got["id"], sid, url)
            page = self.js("events", "list", sid, env=self.env(url=url))
            self.assertEqual(page["data"][0]["type"], "session.started", url)

    def test_api_errors_exit_1_with_the_servers_message(self):
        p = self.run_cli("me", key="evr_" + "0" * 64)
        self.assertEqual(p.returncode, 1)
        self.assertIn("Unauthorized", p.stderr)
        self.assertIn("401", p.stderr)
        p = self.run_cli("sessions", "get", "ses_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b")
        self.assertEqual(p.returncode, 1)
        self.assertIn("Session not found", p.stderr)
        self.assertIn("404", p.stderr)
        p = self.run_cli("sessions", "get", "not-an-id")
        self.assertEqual((p.returncode, "session_id" in p.stderr), (1, True), p.stderr)
        p = self.run_cli("me", env=self.env(url="http://127.0.0.1:1"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("127.0.0.1", p.stderr)
        # busy: a second message while a turn runs
        sid = self.session()
        self.ok("messages", "send", sid, "#tokens 400\n#rate 20")
        p = self.run_cli("messages", "send", sid, "again")
        self.assertEqual(p.returncode, 1)
        self.assertIn("session_busy", p.stderr)
        self.assertIn("working on a turn", p.stderr)
        self.assertEqual(self.ok("sessions", "cancel", sid).stdout.split(":")[0], "cancelled")
        wait_until(lambda: self.status(sid) == "idle", what="idle after cancel")
        self.assertEqual(self.js("sessions", "cancel", sid)["status"], "no_op")

    def test_config_file_env_and_flags(self):
        cfgdir = os.path.join(self.home, "cfg")
        os.makedirs(cfgdir, exist_ok=True)
        cfg = os.path.join(cfgdir, "config")
        with open(cfg, "w") as f:
            f.write("# everruns\napi_url = %s/api/v1/\napi_key = %s\n" % (BASE, self.key))
        os.chmod(cfg, 0o600)
        env = self.env(EVERRUNS_API_URL=None, EVERRUNS_API_KEY=None, EVERRUNS_CONFIG=cfg)
        me = json.loads(self.ok("--json", "me", env=env).stdout)
        self.assertEqual(me["organization_id"], self.org["organization_id"])
        # the default place: $XDG_CONFIG_HOME/everruns/config
        xdg = os.path.join(self.home, "xdg")
        os.makedirs(os.path.join(xdg, "everruns"), exist_ok=True)
        os.replace(cfg, os.path.join(xdg, "everruns", "config"))
        env = self.env(EVERRUNS_API_URL=None, EVERRUNS_API_KEY=None, XDG_CONFIG_HOME=xdg)
        self.ok("me", env=env)
        # flags beat the environment, which beats the file
        self.ok("me", "--api-key", self.key, env=self.env(key="evr_bad"))
        self.assertEqual(self.run_cli("me", env=dict(env, EVERRUNS_API_KEY="evr_bad")).returncode, 1)
        # readable by others: refused
        os.chmod(os.path.join(xdg, "everruns", "config"), 0o644)
        p = self.run_cli("me", env=env)
        self.assertEqual(p.returncode, 2)
        self.assertIn("chmod 600", p.stderr)

    def test_tls_options(self):
        p = self.run_cli("me", env=self.env(url=HTTPS_BASE))
        self.assertEqual(p.returncode, 1)
        self.assertIn("certificate", p.stderr)
        self.ok("me", "--insecure", env=self.env(url=HTTPS_BASE))
        self.ok("me", env=self.env(url=HTTPS_BASE, EVERRUNS_INSECURE="1"))
        self.ok("me", "--cacert", os.path.join(HOME, "tls", "server.crt"), env=self.env(url=HTTPS_BASE))

    # ---- sessions ---------------------------------------------------------

    def test_sessions_crud(self):
        s = self.js("sessions", "create", "--agent", self.agent, "--title", "Q1 Sales Analysis",
                    "--tag", "sales", "--tag", "analytics", "--model", self.instant,
                    "--capability", "test_weather",
                    "--capability", 'session_file_system:{"max_file_size_mb":5}')
        sid = s["id"]
        self.assertTrue(sid.startswith("ses_"))
        got = api("GET", "/api/v1/sessions/" + sid, key=self.key).json
        self.assertEqual((got["title"], got["tags"], got["model_id"], got["agent_id"]),
                         ("Q1 Sales Analysis", ["sales", "analytics"], self.instant, self.agent))
        self.assertEqual([c["ref"] for c in got["capabilities"]], ["test_weather", "session_file_system"])
        self.assertEqual(got["capabilities"][1]["config"], {"max_file_size_mb": 5})
        # by name, text output
        p = self.ok("sessions", "create", "--agent", "assistant", "--title", "By name",
                    "--model", "llmsim-instant")
        self.assertRegex(p.stdout, r"(?m)^id\s+ses_[0-9a-f]{32}$")
        self.assertRegex(p.stdout, r"(?m)^title\s+By name$")
        by_name = p.stdout.split()[1]
        self.assertEqual(api("GET", "/api/v1/sessions/" + by_name, key=self.key).json["model_id"],
                         self.instant)
        # list: text and JSON, filters
        lst = self.js("sessions", "list", "--tag", "sales")
        self.assertEqual([x["id"] for x in lst["data"]], [sid])
        text = self.ok("sessions", "list").stdout.splitlines()
        self.assertEqual(text[0].split()[:3], ["ID", "STATUS", "TITLE"])
        self.assertEqual([ln.split()[0] for ln in text[1:3]], [by_name, sid])
        self.assertIn("Q1 Sales Analysis", text[2])
        text = self.ok("sessions", "list", "--search", "q1 sales").stdout.splitlines()
        self.assertEqual([ln.split()[0] for ln in text[1:]], [sid])
        self.assertEqual(len(self.js("sessions", "list", "--limit", "1")["data"]), 1)
        self.assertIn("more with --offset 1", self.ok("sessions", "list", "--limit", "1").stdout)
        # get, update
        self.assertEqual(self.js("sessions", "get", sid)["title"], "Q1 Sales Analysis")
        self.assertIn("Q1 Sales Analysis", self.ok("sessions", "get", sid).stdout)
        upd = self.js("sessions", "update", sid, "--title", "Q2", "--tag", "x")
        self.assertEqual((upd["title"], upd["tags"]), ("Q2", ["x"]))
        self.assertEqual(api("GET", "/api/v1/sessions/" + sid, key=self.key).json["title"], "Q2")
        # the server's validation comes back as exit 1
        p = self.run_cli("sessions", "update", sid, "--title", "t" * 600)
        self.assertEqual(p.returncode, 1)
        self.assertIn("title", p.stderr)
        # neither agent nor harness: the server's 400
        p = self.run_cli("sessions", "create", "--title", "x")
        self.assertEqual(p.returncode, 1)
        self.assertIn("400", p.stderr)
        # an unknown agent name
        p = self.run_cli("sessions", "create", "--agent", "no-such-agent")
        self.assertEqual(p.returncode, 1)
        self.assertIn("404", p.stderr)
        # delete
        self.assertEqual(self.js("sessions", "delete", by_name), {"id": by_name, "deleted": True})
        self.assertEqual(self.ok("sessions", "delete", sid).stdout.strip(), "deleted " + sid)
        self.assertEqual(api("GET", "/api/v1/sessions/" + sid, key=self.key).status, 404)
        p = self.run_cli("sessions", "delete", sid)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not found", p.stderr)

    # ---- chat, messages, cancel ------------------------------------------

    def test_chat_turn_with_a_tool_call(self):
        sid = self.session("--capability", "test_weather")
        c = Proc(["chat", sid], self.env())
        try:
            c.write('#tool get_weather {"city":"Paris"}\\\nWhat is the weather in Paris?\n')
            c.wait_out("Tool results")
            wait_until(lambda: self.status(sid) == "idle", what="idle")
            # then a reply that streams: text shows while the turn still runs
            seq = self.last_seq(sid)
            before = len(c.stdout())
            c.write("#tokens 60\\\n#rate 20\n")
            wait_until(lambda: len(c.stdout()) > before + 10, timeout=10, what="streamed words")
            self.assertEqual(self.status(sid), "active")
            rc = c.finish()
        finally:
            c.kill()
        self.assertEqual(rc, 0, c.stderr())
        out = c.stdout()
        self.assertIn('-> get_weather {"city":"Paris"}', out)
        self.assertRegex(out, r"<- get_weather: .*Paris: 24 C, sunny")
        self.assertLess(out.index("-> get_weather"), out.index("<- get_weather"))
        self.assertLess(out.index("<- get_weather"), out.index("Tool results"))
        self.assertIn(sid, c.stderr())
        evs = self.events(sid)
        self.assertEqual([e["type"] for e in evs].count("turn.completed"), 2)
        # the streamed words are exactly the agent's final message
        final = [e for e in evs if e["type"] == "output.message.completed"][-1]
        text = final["data"]["message"]["content"][0]["text"]
        self.assertTrue(out.rstrip("\n").endswith(text.rstrip("\n")), (out[-200:], text[-200:]))
        self.assertGreater(len(text.split()), 50)
        self.assertGreater(evs[-1]["sequence"], seq)

    def test_chat_sigint_cancels_the_turn_then_goes_on(self):
        sid = self.session()
        c = Proc(["chat", sid], self.env())
        try:
            c.write("#tokens 400\\\n#rate 20\n")
            wait_until(lambda: len(c.stdout().split()) >= 3, timeout=15, what="words")
            self.assertEqual(self.status(sid), "active")
            t0 = time.monotonic()
            c.p.send_signal(signal.SIGINT)
            wait_until(lambda: self.status(sid) == "idle", timeout=10, what="idle after Ctrl-C")
            self.assertLess(time.monotonic() - t0, 5)
            wait_until(lambda: "[turn cancelled]" in c.stderr(), what="cancel shown")
            self.assertIsNone(c.p.poll())
            c.write("hello again\n")
            c.wait_out("You said: hello again")
            rc = c.finish()
        finally:
            c.kill()
        self.assertEqual(rc, 0, c.stderr())
        self.assertIn("Work was cancelled by user.", c.stdout())
        types = [e["type"] for e in self.events(sid)]
        self.assertIn("turn.cancelled", types)
        self.assertEqual(types[-2:], ["turn.completed", "session.idled"])

    def test_chat_second_sigint_quits(self):
        sid = self.session()
        c = Proc(["chat", sid], self.env())
        try:
            c.write("#tokens 400\\\n#rate 20\n")
            wait_until(lambda: len(c.stdout().split()) >= 3, timeout=15, what="words")
            c.p.send_signal(signal.SIGINT)
            wait_until(lambda: "cancelling" in c.stderr(), what="first Ctrl-C seen")
            rc = c.interrupt(10)
        finally:
            c.kill()
        self.assertEqual(rc, 130)
        wait_until(lambda: self.status(sid) == "idle", timeout=10, what="idle")
        # Ctrl-C at the prompt quits too
        c = Proc(["chat", sid], self.env())
        try:
            wait_until(lambda: sid in c.stderr(), what="chat ready")
            time.sleep(0.3)
            rc = c.interrupt(10)
        finally:
            c.kill()
        self.assertEqual(rc, 130)

    def test_chat_own_session_and_new_session_with_agent(self):
        p = self.ok("chat", input="hi\n")
        mine = api("POST", "/api/v1/sessions/chat", key=self.key).json["id"]
        self.assertIn(mine, p.stderr)
        self.assertIn("You said: hi", p.stdout)
        p = self.ok("chat", "--agent", "assistant", "--title", "new chat", input="yo\n/quit\nnot sent\n")
        self.assertIn("You said: yo", p.stdout)
        self.assertNotIn("not sent", p.stdout)
        sid = [s for s in self.js("sessions", "list", "--search", "new chat")["data"]]
        self.assertEqual(len(sid), 1)
        self.assertEqual(sid[0]["agent_id"], self.agent)

    # ---- a turn that waits: approvals and client-side tools ---------------

    LOOKUP = {"type": "client_side", "name": "lookup_stock", "description": "The price of a stock",
              "parameters": {"type": "object", "properties": {"sym": {"type": "string"}},
                             "required": ["sym"]}}
    ASK_CALC = {"type": "builtin", "name": "calculate", "policy": "requires_approval"}

    def tool_session(self, tools):
        r = api("POST", "/api/v1/sessions", {"agent_id": self.agent, "title": "waiting turn",
                                             "capabilities": [{"ref": "test_math"}], "tools": tools},
                key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return r.json["id"]

    def waiting(self, sid, kind, n=1):
        """Wait for the n-th request event of kind ("tool.approval_requested"
        or "tool.call_requested") and the waiting status; its call ids."""
        wait_until(lambda: len([e for e in self.events(sid) if e["type"] == kind]) >= n
                   and self.status(sid) == "waitingfortoolresults", timeout=20,
                   what="%s and the waiting status" % kind)
        ev = [e for e in self.events(sid) if e["type"] == kind][n - 1]
        return [c["id"] for c in ev["data"]["tool_calls"]]

    def completed(self, sid):
        return {e["data"]["tool_call_id"]: e["data"] for e in self.events(sid)
                if e["type"] == "tool.completed"}

    def test_approve_and_deny(self):
        sid = self.tool_session([self.ASK_CALC])
        api("POST", "/api/v1/sessions/%s/messages" % sid, {"message": {"role": "user", "content": [
            {"type": "text", "text": '#tool calculate {"operation":"add","a":2,"b":3}\n'
                                     '#tool calculate {"operation":"multiply","a":6,"b":7}'}]}},
            key=self.key)
        first, second = self.waiting(sid, "tool.approval_requested")
        # events list names the calls to answer
        p = self.ok("events", "list", sid, "--type", "tool.approval_requested")
        self.assertIn("%s calculate" % first, p.stdout)
        # refusals come back with the server's reason, exit 1
        p = self.run_cli("sessions", "approve", sid, "--call", "call_nosuchcall")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("unknown_tool_call", p.stderr)
        p = self.run_cli("sessions", "tool-results", sid, "--call", first, "--result", "5")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("wrong_kind", p.stderr)
        # one approved: the turn still waits for the other
        p = self.ok("sessions", "approve", sid, "--call", first)
        self.assertIn("approved: 1", p.stdout)
        self.assertIn("still waiting", p.stdout)
        self.assertEqual(self.status(sid), "waitingfortoolresults")
        p = self.run_cli("sessions", "approve", sid, "--call", first)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("already_answered", p.stderr)
        # the other denied with a reason: the turn goes on
        got = self.js("sessions", "approve", sid, "--call", second, "--deny", "--reason", "not today")
        self.assertEqual(got["accepted"], 1)
        self.assertNotEqual(got["status"], "waitingfortoolresults")
        wait_until(lambda: self.status(sid) == "idle", timeout=20, what="idle after the answers")
        res = [e["data"] for e in self.events(sid) if e["type"] == "tool.approval_resolved"]
        self.assertEqual([(r["tool_call_id"], r["approved"]) for r in res], [(first, True), (second, False)])
        self.assertEqual(res[1].get("reason"), "not today")
        p = self.ok("events", "list", sid, "--type", "tool.approval_resolved")
        self.assertIn("%s approved" % first, p.stdout)
        self.assertIn("%s denied: not today" % second, p.stdout)
        done = self.completed(sid)
        self.assertTrue(done[first]["success"], done[first])
        self.assertIn("5", json.dumps(done[first]["result"]))
        self.assertFalse(done[second]["success"])
        self.assertIn("not today", done[second]["error"])
        # nothing waits any more
        p = self.run_cli("sessions", "approve", sid, "--call", second)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("not_waiting", p.stderr)

    def test_tool_results(self):
        sid = self.tool_session([self.LOOKUP])
        api("POST", "/api/v1/sessions/%s/messages" % sid, {"message": {"role": "user", "content": [
            {"type": "text", "text": '#tool lookup_stock {"sym":"ACME"}\n#tool lookup_stock {"sym":"XYZ"}\n'
                                     '#tool calculate {"operation":"add","a":1,"b":1}'}]}},
            key=self.key)
        ids = self.waiting(sid, "tool.call_requested")
        self.assertEqual(len(ids), 2, "the client's calls only; calculate runs on the server")
        p = self.run_cli("sessions", "approve", sid, "--call", ids[0])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("wrong_kind", p.stderr)
        p = self.run_cli("sessions", "tool-results", sid, "--call", ids[0], "--result", "1",
                         "--call", ids[0], "--result", "2")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("duplicate_tool_call", p.stderr)
        # both in one request: a JSON result and an error
        p = self.ok("sessions", "tool-results", sid, "--call", ids[0], "--result", '{"price": 12.5}',
                    "--call", ids[1], "--error", "market closed")
        self.assertIn("results accepted: 2", p.stdout)
        wait_until(lambda: self.status(sid) == "idle", timeout=20, what="idle after the results")
        done = self.completed(sid)
        self.assertTrue(done[ids[0]]["success"], done[ids[0]])
        self.assertEqual(done[ids[0]].get("source"), "client")
        self.assertIn("12.5", json.dumps(done[ids[0]]["result"]))
        self.assertFalse(done[ids[1]]["success"])
        self.assertIn("market closed", done[ids[1]]["error"])
        calc = [d for d in done.values() if d["tool_name"] == "calculate"]
        self.assertEqual(len(calc), 1)
        self.assertTrue(calc[0]["success"])
        p = self.run_cli("sessions", "tool-results", sid, "--call", ids[0], "--result", "1")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("not_waiting", p.stderr)

    def test_chat_asks_for_approval_and_announces_client_calls(self):
        sid = self.tool_session([self.ASK_CALC, self.LOOKUP])
        c = Proc(["chat", sid], self.env())
        try:
            c.write('#tool calculate {"operation":"add","a":2,"b":3}\\\n'
                    '#tool calculate {"operation":"multiply","a":6,"b":7}\n')
            # one question per call, the arguments as the server keeps them
            # (its JSON orders the keys its own way)
            c.wait_out("? [y/N] ", err=True)
            self.assertRegex(c.stderr(), r'Allow calculate\(\{[^)]*"operation":"add"[^)]*\}\)\? \[y/N\] $')
            self.assertEqual(self.status(sid), "waitingfortoolresults")
            c.write("y\n")
            c.wait_out("? [y/N] ", err=True, count=2)
            self.assertRegex(c.stderr(), r'Allow calculate\(\{[^)]*"operation":"multiply"[^)]*\}\)\? \[y/N\] $')
            c.write("n too risky\n")
            c.wait_out("[denied calculate: too risky]")
            wait_until(lambda: self.status(sid) == "idle", timeout=20, what="idle")
            c.wait_out("Tool results")
            # a client-side tool: announced with the command that answers it
            c.write('#tool lookup_stock {"sym":"ACME"}\n')
            c.wait_out("client-side tool lookup_stock", err=True)
            cid = self.waiting(sid, "tool.call_requested")[0]
            self.assertIn("everruns sessions tool-results %s --call %s" % (sid, cid), c.stderr())
            self.ok("sessions", "tool-results", sid, "--call", cid, "--result", '"12.50 USD"')
            c.wait_out("<- lookup_stock")
            wait_until(lambda: self.status(sid) == "idle", timeout=20, what="idle")
            rc = c.finish()
        finally:
            c.kill()
        self.assertEqual(rc, 0, c.stderr())
        out = c.stdout()
        self.assertIn("[approved calculate]", out)
        self.assertIn("<- calculate: ", out)
        self.assertIn("12.50 USD", out)
        res = [e["data"] for e in self.events(sid) if e["type"] == "tool.approval_resolved"]
        self.assertEqual([(r["approved"], r.get("reason")) for r in res], [(True, None), (False, "too risky")])

    def test_chat_in_a_session_that_already_waits(self):
        # a turn that waits for two approvals and a client's result, one
        # approval already given: chat asks about the other one only,
        # announces the client's call, and follows the turn to its end
        sid = self.tool_session([self.ASK_CALC, self.LOOKUP])
        api("POST", "/api/v1/sessions/%s/messages" % sid, {"message": {"role": "user", "content": [
            {"type": "text", "text": '#tool calculate {"operation":"add","a":2,"b":3}\n'
                                     '#tool calculate {"operation":"multiply","a":6,"b":7}\n'
                                     '#tool lookup_stock {"sym":"ACME"}'}]}},
            key=self.key)
        first, second = self.waiting(sid, "tool.approval_requested")
        self.assertEqual(self.status(sid), "waitingfortoolresults")
        self.ok("sessions", "approve", sid, "--call", first)
        c = Proc(["chat", sid], self.env())
        try:
            c.wait_out("? [y/N] ", err=True)
            self.assertIn("[the session waits for answers]", c.stderr())
            self.assertRegex(c.stderr(), r'Allow calculate\(\{[^)]*"operation":"multiply"[^)]*\}\)\? \[y/N\] $')
            self.assertIn("client-side tool lookup_stock", c.stderr())
            c.write("y\n")
            c.wait_out("[approved calculate]")
            cid = self.waiting(sid, "tool.call_requested")[0]
            self.assertIn("--call %s" % cid, c.stderr())
            self.ok("sessions", "tool-results", sid, "--call", cid, "--result", '"7 USD"')
            c.wait_out("<- lookup_stock")
            wait_until(lambda: self.status(sid) == "idle", timeout=20, what="idle")
            rc = c.finish()
        finally:
            c.kill()
        self.assertEqual(rc, 0, c.stderr())
        self.assertEqual(c.stderr().count("Allow "), 1, c.stderr())
        res = [e["data"] for e in self.events(sid) if e["type"] == "tool.approval_resolved"]
        self.assertEqual([(r["tool_call_id"], r["approved"]) for r in res], [(first, True), (second, True)])

    def test_messages_send_wait_announces_and_waits(self):
        # not interactive: the request is printed with the command that
        # answers it, and the command waits for the answer from elsewhere
        sid = self.tool_session([self.ASK_CALC])
        c = Proc(["--json", "messages", "send", sid, '#tool calculate {"operation":"add","a":2,"b":3}',
                  "--wait"], self.env())
        try:
            c.wait_out("waits for approval", err=True)
            call = self.waiting(sid, "tool.approval_requested")[0]
            self.assertIn("everruns sessions approve %s --call %s" % (sid, call), c.stderr())
            self.assertNotIn("Allow", c.stderr())
            self.assertIsNone(c.p.poll())
            self.ok("sessions", "approve", sid, "--call", call)
            rc = c.p.wait(timeout=20)
        finally:
            c.kill()
        self.assertEqual(rc, 0, c.stderr())
        types = [json.loads(l)["type"] for l in c.stdout().splitlines()]
        for t in ("tool.approval_requested", "tool.approval_resolved", "turn.resumed", "tool.completed"):
            self.assertIn(t, types)
        self.assertEqual(types[-1], "session.idled")

    def test_messages_send_wait_blanks_control_characters_of_tool_names(self):
        # the model names the tool it calls (here llmsim, told by the
        # message): an escape sequence in it must not reach the terminal
        sid = self.session("--capability", "test_math")
        evil = "calc\x1b]0;owned\x07\x1b[2J"
        p = self.ok("messages", "send", sid, "#tool %s {}" % evil, "--wait")
        self.assertIn("-> calc ]0;owned  [2J {}", p.stdout)
        self.assertIn("<- calc ]0;owned  [2J failed", p.stdout)
        self.assertNotIn("\x1b", p.stdout + p.stderr)
        self.assertNotIn("\x07", p.stdout + p.stderr)

    def test_chat_asks_about_a_call_with_deeply_nested_arguments(self):
        # the model's arguments may nest as deep as the server stores them;
        # the events that carry them are still read (json-c's default
        # depth of 32 dropped the request's frame: the chat never asked)
        sid = self.tool_session([self.ASK_CALC])
        deep = {"operation": "add", "a": 2, "b": 3}
        for _ in range(29):
            deep = {"x": deep}
        p = self.run_cli("chat", sid, input="#tool calculate %s\nn too deep\n" % json.dumps(deep),
                         timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("Allow calculate(", p.stderr)
        res = [e["data"] for e in self.events(sid) if e["type"] == "tool.approval_resolved"]
        self.assertEqual([(r["approved"], r.get("reason")) for r in res], [(False, "too deep")])
        self.assertEqual(self.status(sid), "idle")
        ev = self.js("events", "list", sid)
        self.assertIn("tool.approval_requested", [e["type"] for e in ev["data"]])

    def test_chat_end_of_input_at_the_question_denies(self):
        sid = self.tool_session([self.ASK_CALC])
        p = self.run_cli("chat", sid, input='#tool calculate {"operation":"add","a":2,"b":3}\n',
                         timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("Allow calculate(", p.stderr)
        self.assertIn("no answer: denied", p.stderr)
        res = [e["data"] for e in self.events(sid) if e["type"] == "tool.approval_resolved"]
        self.assertEqual([r["approved"] for r in res], [False])
        self.assertEqual(self.status(sid), "idle")

    def test_messages_send_wait_and_list(self):
        sid = self.session("--capability", "test_math")
        p = self.ok("--json", "messages", "send", sid,
                    '#tool calculate {"operation":"add","a":2,"b":3}\nadd them', "--wait")
        evs = [json.loads(l) for l in p.stdout.splitlines()]
        types = [e["type"] for e in evs]
        self.assertEqual(types[:2], ["session.activated", "turn.started"])
        self.assertEqual(types[-2:], ["turn.completed", "session.idled"])
        self.assertIn("tool.completed", types)
        seqs = [e["sequence"] for e in evs]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))
        self.assertEqual(seqs, [e["sequence"] for e in self.events(sid, seqs[0] - 1)])
        # text, from standard input
        p = self.ok("messages", "send", sid, "-", "--wait", input="from stdin")
        self.assertEqual(p.stdout, "You said: from stdin\n")
        # without --wait: the message; --model by name becomes its controls
        m = self.js("messages", "send", sid, "later", "--model", "llmsim-instant")
        self.assertTrue(m["id"].startswith("msg_"))
        self.assertEqual(m["controls"]["model_id"], self.instant)
        wait_until(lambda: self.status(sid) == "idle", what="idle")
        lst = self.js("messages", "list", sid)["data"]
        self.assertEqual([x["role"] for x in lst],
                         ["user", "agent", "tool_result", "agent", "user", "agent", "user", "agent"])
        text = self.ok("messages", "list", sid).stdout
        self.assertIn("[tool_call calculate]", text)
        self.assertIn("You said: later", text)
        self.assertEqual(len(self.js("messages", "list", sid, "--limit", "2")["data"]), 2)
        # a failing turn (a provider nobody listens on) exits 1 with its error
        prv = api("POST", "/api/v1/llm-providers", {"name": "cli-dead", "provider_type": "openai_completions",
                                                    "base_url": "http://127.0.0.1:1/v1", "api_key": "x"},
                  key=self.key).json["id"]
        dead = api("POST", "/api/v1/llm-providers/%s/models" % prv, {"model_id": "dead"}, key=self.key).json["id"]
        p = self.run_cli("messages", "send", self.session("--model", dead), "hi", "--wait")
        self.assertEqual(p.returncode, 1)
        self.assertIn("the turn failed: could not reach the model provider", p.stderr)
        self.assertIn("Sorry", p.stdout)

    def test_messages_send_wait_sigint_cancels(self):
        sid = self.session()
        c = Proc(["messages", "send", sid, "#tokens 400\n#rate 20", "--wait"], self.env())
        try:
            wait_until(lambda: len(c.stdout().split()) >= 3, timeout=15, what="words")
            rc = c.interrupt(15)
        finally:
            c.kill()
        self.assertEqual(rc, 1)  # the turn was cancelled
        self.assertEqual(self.status(sid), "idle")
        self.assertIn("turn.cancelled", [e["type"] for e in self.events(sid)])

    # ---- events -----------------------------------------------------------

    def test_events_list(self):
        sid = self.session()
        self.ok("messages", "send", sid, "hi", "--wait")
        evs = self.js("events", "list", sid)["data"]
        self.assertEqual([e["type"] for e in evs][:3], ["session.started", "input.message", "session.activated"])
        only = self.js("events", "list", sid, "--type", "turn.completed")["data"]
        self.assertEqual([e["type"] for e in only], ["turn.completed"])
        page = self.js("events", "list", sid, "--since", "2", "--limit", "2")
        self.assertEqual([e["sequence"] for e in page["data"]], [3, 4])
        self.assertTrue(page["has_more"])
        text = self.ok("events", "list", sid).stdout
        self.assertRegex(text, r"(?m)^2\s+input\.message\s+\S+\s+hi$")
        p = self.run_cli("events", "list", sid, "--type", "no.such")
        self.assertEqual(p.returncode, 1)
        self.assertIn("400", p.stderr)

    def test_events_tail_resumes_across_an_sse_restart(self):
        sid = self.session()
        self.ok("messages", "send", sid, "warm up", "--wait")
        start = self.last_seq(sid)
        t = Proc(["--json", "events", "tail", sid, "--until-idle", "--since", start], self.env())
        typed = Proc(["events", "tail", sid, "--until-idle", "--type", "turn.completed",
                      "--since", start], self.env())
        # without --since: from the last event when it starts
        text = Proc(["events", "tail", sid, "--until-idle"], self.env())
        try:
            time.sleep(2)
            self.ok("messages", "send", sid, "#tokens 60\n#rate 20")
            wait_until(lambda: "reason.started" in t.stdout(), timeout=15, what="tail going")
            os.kill(stack_pid("sse"), signal.SIGKILL)
            ctl("start")
            wait_until(lambda: stack_pid("sse"), what="sse back")
            self.assertEqual(t.p.wait(timeout=60), 0, t.stderr())
            self.assertEqual(text.p.wait(timeout=60), 0, text.stderr())
            self.assertEqual(typed.p.wait(timeout=60), 0, typed.stderr())
            time.sleep(0.1)
        finally:
            t.kill()
            text.kill()
            typed.kill()
        got = [json.loads(l) for l in t.stdout().splitlines()]
        want = self.events(sid, start)
        self.assertEqual([e["sequence"] for e in got], [e["sequence"] for e in want])
        self.assertEqual([e["id"] for e in got], [e["id"] for e in want])
        self.assertEqual(got[-1]["type"], "session.idled")
        lines = text.stdout().splitlines()
        self.assertEqual([int(l.split()[0]) for l in lines], [e["sequence"] for e in want])
        self.assertIn("output.message.completed", text.stdout())
        self.assertEqual([l.split()[1] for l in typed.stdout().splitlines()],
                         ["turn.completed", "session.idled"])

    def test_events_tail_deltas_and_deleted_session(self):
        sid = self.session()
        t = Proc(["events", "tail", sid, "--deltas", "--since", "1"], self.env())
        try:
            self.ok("messages", "send", sid, "#tokens 10\n#rate 50", "--wait")
            wait_until(lambda: "session.idled" in t.stdout(), what="tail to idle")
            self.assertIn("output.message.delta", t.stdout())
            self.assertIsNone(t.p.poll())  # without --until-idle it goes on
            self.ok("sessions", "delete", sid)
            rc = t.p.wait(timeout=15)
        finally:
            t.kill()
        self.assertEqual(rc, 1)
        self.assertIn("deleted", t.stderr())

    def test_events_tail_ctrl_c(self):
        sid = self.session()
        t = Proc(["events", "tail", sid, "--since", "0"], self.env())
        try:
            self.ok("messages", "send", sid, "hi", "--wait")
            wait_until(lambda: "session.idled" in t.stdout(), what="tail output")
            rc = t.interrupt(10)
        finally:
            t.kill()
        self.assertEqual(rc, 130)

    # ---- catalogue nouns, keys ----------------------------------------------

    def test_catalogue_nouns(self):
        agents = self.js("agents")["data"]
        self.assertIn("assistant", [a["name"] for a in agents])
        self.assertEqual(self.js("agents", "get", "assistant")["id"], self.agent)
        self.assertIn("assistant", self.ok("agents", "list").stdout)
        self.assertEqual(sorted(h["name"] for h in self.js("harnesses", "list")["data"]),
                         ["base", "generic", "platform-chat"])
        self.assertEqual(self.js("harnesses", "get", "generic")["name"], "generic")
        models = self.js("models")["data"]
        self.assertIn(self.instant, [m["id"] for m in models])
        self.assertEqual(self.js("models", "get", self.instant)["model_id"], "llmsim-instant")
        self.assertIn("llmsim-instant", self.ok("models").stdout)
        prv = self.js("providers")["data"]
        self.assertIn("llmsim", [p["provider_type"] for p in prv])
        self.assertEqual(self.js("providers", "get", prv[0]["id"])["id"], prv[0]["id"])
        caps = [c["id"] for c in self.js("capabilities")["data"]]
        self.assertIn("test_weather", caps)
        cap = self.js("capabilities", "get", "test_weather")
        self.assertEqual(cap["tool_definitions"][0]["name"], "get_weather")
        self.assertRegex(self.ok("capabilities").stdout, r"(?m)^web_fetch\s")
        p = self.run_cli("capabilities", "get", "no_such_cap")
        self.assertEqual(p.returncode, 1)
        # agents create / delete
        a = self.js("agents", "create", "--name", "cli-agent", "--system-prompt", "Be brief.",
                    "--capability", "current_time", "--tag", "t1", "--model", "llmsim-instant")
        self.assertEqual((a["name"], a["default_model_id"], a["tags"]), ("cli-agent", self.instant, ["t1"]))
        self.assertEqual([c["ref"] for c in a["capabilities"]], ["current_time"])
        p = self.run_cli("agents", "create", "--name", "cli-agent")
        self.assertEqual(p.returncode, 1)
        self.assertIn("409", p.stderr)
        self.ok("agents", "delete", a["id"])
        self.assertEqual(api("GET", "/api/v1/agents/" + a["id"], key=self.key).status, 404)

    def test_api_keys_and_me(self):
        me = self.js("me")
        self.assertEqual(me["organization_id"], self.org["organization_id"])
        p = self.ok("api-keys", "create", "--name", "cli-made")
        key = p.stdout.split()[0]
        self.assertTrue(key.startswith("evr_"))
        self.assertIn("shown only this once", p.stdout)
        self.assertEqual(self.js("me", key=key)["organization_id"], self.org["organization_id"])
        keys = self.js("api-keys")["data"]
        kid = [k["id"] for k in keys if k["name"] == "cli-made"][0]
        self.assertIn("cli-made", self.ok("api-keys", "list").stdout)
        made = self.js("api-keys", "create", "--name", "j", "--expires-in-days", "3")
        self.assertTrue(made["key"].startswith("evr_") and made["expires_at"])
        self.ok("api-keys", "delete", kid)
        p = self.run_cli("me", key=key)
        self.assertEqual(p.returncode, 1)
        self.assertIn("Unauthorized", p.stderr)

    # ---- filesystem and images ----------------------------------------------

    def test_fs_commands(self):
        sid = self.session()
        local = os.path.join(self.home, "data.bin")
        blob = bytes(range(256)) * 4
        with open(local, "wb") as f:
            f.write(blob)
        self.ok("fs", "put", sid, "/docs/data.bin", local)
        self.ok("fs", "put", sid, "notes.txt", input="alpha\nbeta sales\ngamma\n")
        ls = self.js("fs", "ls", sid)["data"]
        self.assertEqual(sorted(f["path"] for f in ls), ["/docs", "/notes.txt"])
        text = self.ok("fs", "ls", sid, "/docs").stdout
        self.assertRegex(text, r"(?m)^file\s+1024\s+\S+\s+/docs/data.bin$")
        rec = self.js("fs", "ls", sid, "--recursive")["data"]
        self.assertIn("/docs/data.bin", [f["path"] for f in rec])
        cat = subprocess.run([CLI, "fs", "cat", sid, "/docs/data.bin"], env=self.env(),
                             stdout=subprocess.PIPE, timeout=30)
        self.assertEqual(cat.stdout, blob)
        out = os.path.join(self.home, "copy.bin")
        self.ok("fs", "get", sid, "/docs/data.bin", out)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), blob)
        st = self.js("fs", "stat", sid, "/notes.txt")
        self.assertEqual((st["size_bytes"], st["is_directory"]), (23, False))
        p = self.run_cli("fs", "put", sid, "/notes.txt", "--no-overwrite", input="x")
        self.assertEqual(p.returncode, 1)
        self.assertIn("409", p.stderr)
        self.ok("fs", "cp", sid, "/notes.txt", "/copy.txt")
        self.ok("fs", "mv", sid, "/copy.txt", "/moved.txt")
        self.assertEqual(self.ok("fs", "cat", sid, "moved.txt").stdout, "alpha\nbeta sales\ngamma\n")
        g = self.ok("fs", "grep", sid, "sal+es").stdout.splitlines()
        self.assertEqual(sorted(g), ["/moved.txt:2: beta sales", "/notes.txt:2: beta sales"])
        self.ok("fs", "mkdir", sid, "/empty")
        self.ok("fs", "rm", sid, "/moved.txt")
        p = self.run_cli("fs", "rm", sid, "/docs")
        self.assertEqual(p.returncode, 1)
        self.ok("fs", "rm", sid, "/docs", "--recursive")
        self.assertEqual(sorted(f["path"] for f in self.js("fs", "ls", sid)["data"]),
                         ["/empty", "/notes.txt"])
        p = self.run_cli("fs", "cat", sid, "/nope.txt")
        self.assertEqual(p.returncode, 1)
        self.assertIn("404", p.stderr)
        p = self.run_cli("fs", "cat", sid, "/a/../b")
        self.assertEqual(p.returncode, 1)
        self.assertIn("400", p.stderr)
        # over the session's file size limit: the server's 413, nothing stored
        small = self.session("--capability", 'session_file_system:{"max_file_size_mb":1}')
        big = os.path.join(self.home, "big.bin")
        with open(big, "wb") as f:
            f.write(b"x" * (1024 * 1024 + 1))
        p = self.run_cli("fs", "put", small, "/big.bin", big)
        self.assertEqual(p.returncode, 1)
        self.assertIn("413", p.stderr)
        self.assertEqual(self.js("fs", "ls", small)["data"], [])

    def test_images_commands(self):
        import base64
        png = base64.b64decode(
            "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
        local = os.path.join(self.home, "dot.png")
        with open(local, "wb") as f:
            f.write(png)
        sid = self.session()
        img = self.js("images", "upload", local, "--session", sid)
        self.assertTrue(img["id"].startswith("img_"))
        self.assertEqual(img["content_type"], "image/png")
        self.assertIn(img["id"], [i["id"] for i in self.js("images")])
        self.assertEqual(self.js("images", "get", img["id"])["id"], img["id"])
        got = subprocess.run([CLI, "images", "download", img["id"]], env=self.env(),
                             stdout=subprocess.PIPE, timeout=30)
        self.assertEqual(got.stdout, png)
        m = self.js("messages", "send", sid, "what is this?", "--image", img["id"])
        self.assertEqual(m["content"][1]["type"], "image_file")
        wait_until(lambda: self.status(sid) == "idle", what="idle")
        notpng = os.path.join(self.home, "not.png")
        with open(notpng, "wb") as f:
            f.write(b"not an image")
        self.assertEqual(self.run_cli("images", "upload", notpng).returncode, 1)
        self.ok("images", "delete", img["id"])
        self.assertEqual(self.run_cli("images", "get", img["id"]).returncode, 1)


if __name__ == "__main__":
    unittest.main()
