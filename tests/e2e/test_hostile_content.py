"""Any content, any reply: what the API accepts always ends its turn.

Regression tests for each way content used to wedge a session or sink a
batch (a multi-byte reply cut mid-character, \\u0000 from a tool call,
metadata nested past what the runner could read, \\u0000 in metadata,
one refused row sinking the other turns of its batch, a turn the runner
cannot read), then a seeded generator that drives a few hundred turns with
hostile content through llmsim and the fake provider (both wire formats)
while ordinary turns run in another organization. Replay a run with
EVR_HOSTILE_SEED=<the seed printed>; EVR_HOSTILE_TURNS sets how many
generated turns (default 220)."""

import json
import os
import random
import sys
import threading
import time
import unittest
import urllib.parse
import uuid

from evr import HOME, api, psql, new_org
from test_drivers import Fake, fake_providers
from test_turns import events

SEED = int(os.environ.get("EVR_HOSTILE_SEED") or random.SystemRandom().randrange(1 << 31))
TURNS = int(os.environ.get("EVR_HOSTILE_TURNS", "220"))
print("test_hostile_content: EVR_HOSTILE_SEED=%d" % SEED, file=sys.stderr, flush=True)

END = ("turn.completed", "turn.failed", "turn.cancelled")
MAX_TEXT = 512 * 1024
DEPTH = 31  # containers nested in a request body (JX_MAX_DEPTH counts the innermost value too)


# --- helpers -------------------------------------------------------------------------

def raw_json(obj, ascii_only=True):
    """A request body as bytes: escapes for everything non-ASCII (so lone
    surrogates and NUL go out as \\uXXXX), or raw UTF-8."""
    return json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8")


def post(key, path, obj, ascii_only=True):
    return api("POST", path, raw=raw_json(obj, ascii_only), key=key,
               content_type="application/json")


def last_seq(key, sid):
    r = api("GET", "/api/v1/sessions/%s/events?since_sequence=0&limit=1000" % sid, key=key)
    assert r.status == 200, r.text
    return max([e["sequence"] for e in r.json["data"]] or [0])


def wait_end(key, sid, since, timeout=5.0):
    """(events after `since` up to session.idled, seconds it took); fails
    when no terminal event and session.idled come within timeout."""
    t0 = time.monotonic()
    got, cur = [], since
    while True:
        left = timeout - (time.monotonic() - t0)
        if left <= 0:
            raise AssertionError("session %s: no terminal event within %.1f s; got %s"
                                 % (sid, timeout, [e["type"] for e in got]))
        r = api("GET", "/api/v1/sessions/%s/events?since_sequence=%d&wait=%d"
                % (sid, cur, max(1, int(left))), key=key)
        assert r.status == 200 and r.json is not None, r
        for e in r.json["data"]:
            got.append(e)
            cur = max(cur, e["sequence"])
        types = [e["type"] for e in got]
        if "session.idled" in types and any(t in types for t in END):
            return got, time.monotonic() - t0


def has_bad_text(v):
    """A NUL or a lone surrogate anywhere in a parsed JSON value."""
    if isinstance(v, str):
        return "\x00" in v or any(0xd800 <= ord(c) <= 0xdfff for c in v)
    if isinstance(v, list):
        return any(has_bad_text(x) for x in v)
    if isinstance(v, dict):
        return any(has_bad_text(k) or has_bad_text(x) for k, x in v.items())
    return False


def check_stored(tc, sid):
    """Every stored event of the session is JSON that round-trips and
    holds nothing PostgreSQL text could not."""
    rows = psql("SELECT type, data::text FROM events WHERE session_id = $1::uuid ORDER BY seq",
                sid[4:])
    for typ, text in rows:
        v = json.loads(text)
        tc.assertEqual(json.loads(json.dumps(v)), v, typ)
        tc.assertFalse(has_bad_text(v), (typ, text[:200]))
    return len(rows)


def instant_model(key):
    prv = [p for p in api("GET", "/api/v1/llm-providers", key=key).json["data"]
           if p["provider_type"] == "llmsim"][0]["id"]
    r = api("POST", "/api/v1/llm-providers/%s/models" % prv,
            {"model_id": "llmsim-instant", "capabilities": ["chat", "tools"]}, key=key)
    assert r.status == 201, r.text
    return r.json["id"]


CAPS = [{"ref": "session_file_system"}, {"ref": "session_storage"}, {"ref": "session"},
        {"ref": "current_time"}, {"ref": "test_math"}]


def new_session(key, agent, model, **body):
    body.setdefault("agent_id", agent)
    body.setdefault("model_id", model)
    body.setdefault("capabilities", CAPS)
    r = post(key, "/api/v1/sessions", body)
    assert r.status == 201, r.text
    return r.json["id"]


def nested(depth, leaf):
    """An object `depth` levels deep ({"a": {"a": ... leaf}})."""
    v = leaf
    for _ in range(depth):
        v = {"a": v}
    return v


# --- the generator --------------------------------------------------------------------

EMOJI = ["\U0001F469\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466", "\U0001F1EB\U0001F1F7",
         "\U0001F44D\U0001F3FD", "\u2764\uFE0F", "\U0001F600", "\U0001F3F3\uFE0F\u200D\U0001F308"]


def rand_char(rng):
    k = rng.randrange(9)
    if k == 0:
        return chr(rng.randrange(0x20, 0x7f))
    if k == 1:   # a letter with combining marks
        return rng.choice("aeiouxyz") + "".join(chr(rng.randrange(0x300, 0x370))
                                                for _ in range(rng.randrange(1, 4)))
    if k == 2:   # right to left (Hebrew, Arabic) and the marks that flip
        return rng.choice([chr(rng.randrange(0x5d0, 0x5eb)), chr(rng.randrange(0x627, 0x64b)),
                           "\u200F", "\u202E", "\u2067"])
    if k == 3:
        return chr(rng.randrange(0x4e00, 0xa000))
    if k == 4:
        return rng.choice(EMOJI)
    if k == 5:   # any plane, surrogates left out
        while True:
            cp = rng.randrange(0x80, 0x110000)
            if not 0xd800 <= cp <= 0xdfff:
                return chr(cp)
    if k == 6:   # the awkward ones: BOM, noncharacters, controls JSON escapes
        return rng.choice(["\uFEFF", "\uFFFE", "\uFFFF", "\U0010FFFF", "\u200B", "\t", "\n",
                           "\x1b", "\x7f", "\\", "\"", "\u2028", "\uFFFD"])
    if k == 7:
        return chr(rng.randrange(0x80, 0x800))
    if rng.random() < 0.5:
        return " "
    cp = rng.randrange(0x800, 0x10000 - 0x800)
    return chr(cp + 0x800 if cp >= 0xd800 else cp)   # surrogates left out


def rand_text(rng, n, max_bytes=None):
    s = "".join(rand_char(rng) for _ in range(n))
    while max_bytes is not None and len(s.encode("utf-8")) > max_bytes:
        s = s[:-1]
    return s


def jlevels(v):
    """Levels of a JSON value as json-c counts them against its bound (32
    for a body): a scalar or an empty container is 1."""
    kids = list(v.values()) if isinstance(v, dict) else v if isinstance(v, list) else []
    return 1 + max([jlevels(x) for x in kids] or [0])


def poison(rng, s):
    """s with a character PostgreSQL cannot store somewhere in it."""
    bad = rng.choice(["\x00", "\ud800", "\udbff", "\udc00", "\udfff", "\ud83d"])
    i = rng.randrange(len(s) + 1)
    return s[:i] + bad + s[i:]


def rand_value(rng, depth):
    k = rng.randrange(6)
    if depth <= 1 or k < 2:
        return rand_text(rng, rng.randrange(0, 12))
    if k == 2:
        return rng.choice([0, -1, 2 ** 53, 1.5, True, False, None])
    if k == 3:
        return [rand_value(rng, depth - 1) for _ in range(rng.randrange(0, 3))]
    return {rand_text(rng, rng.randrange(1, 6)): rand_value(rng, depth - 1)
            for _ in range(rng.randrange(0, 3))}


def escaped(s):
    """s as the inside of a JSON string literal, ASCII only."""
    return json.dumps(s)[1:-1]


def raw_poison(rng, s):
    """A JSON-escaped string with an escape PostgreSQL refuses somewhere."""
    units = [escaped(c) for c in s]   # never inside an escape
    bad = rng.choice(["\\u0000", "\\ud800", "\\udfff", "\\ud83d x", "\\u0000\\u0000"])
    units.insert(rng.randrange(len(units) + 1), bad)
    return "".join(units)


class Hostile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.key = new_org("hostile")["api_key"]
        cls.agent = api("GET", "/api/v1/agents/assistant", key=cls.key).json["id"]
        cls.model = instant_model(cls.key)
        cls.fake = Fake()
        cls.providers = fake_providers(cls.fake, cls.key)

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def session(self, **body):
        return new_session(self.key, self.agent, self.model, **body)

    def send(self, sid, text, **extra):
        body = {"message": {"content": [{"type": "text", "text": text}]}}
        body.update(extra)
        return post(self.key, "/api/v1/sessions/%s/messages" % sid, body)

    def fake_model(self, kind, name=None):
        name = name or "h-" + uuid.uuid4().hex[:12]
        r = api("POST", "/api/v1/llm-providers/%s/models" % self.providers[kind],
                {"model_id": name, "capabilities": ["chat", "tools", "reasoning"]}, key=self.key)
        assert r.status == 201, r.text
        return name, r.json["id"]

    # --- the four rows of the issue, and the runner's own failures --------------

    def test_multibyte_reply_ends_at_once_with_a_whole_preview(self):
        sid = self.session()
        r = self.send(sid, "#text a" + "\u00e9" * 150)   # a 301-byte reply
        self.assertEqual(r.status, 201, r.text)
        evs, took = wait_end(self.key, sid, r.json["sequence"])
        types = [e["type"] for e in evs]
        self.assertIn("turn.completed", types)
        self.assertEqual(types.count("reason.started"), 1, types)
        pv = [e for e in evs if e["type"] == "reason.completed"][0]["data"]["text_preview"]
        self.assertEqual(pv, "a" + "\u00e9" * 99)   # 199 bytes: no half character
        check_stored(self, sid)

    def test_nul_in_tool_arguments_is_replaced_and_other_turns_go_on(self):
        # the model (llmsim) calls a tool with "\u0000" in its arguments,
        # while other turns share the runner's batches
        sids = [self.session() for _ in range(6)]
        bad = self.send(sids[0], '#tool get_current_time {"a":"\\u0000","timezone":"UTC"}')
        self.assertEqual(bad.status, 201, bad.text)
        others = [(s, self.send(s, "hello %d" % i)) for i, s in enumerate(sids[1:])]
        evs, _ = wait_end(self.key, sids[0], bad.json["sequence"])
        types = [e["type"] for e in evs]
        self.assertIn("turn.completed", types)
        self.assertEqual(types.count("turn.started"), 1, types)
        call = [e for e in evs if e["type"] == "tool.started"][0]["data"]["tool_call"]
        self.assertEqual(call["arguments"]["a"], "\ufffd")
        for s, r in others:
            self.assertEqual(r.status, 201, r.text)
            self.assertIn("turn.completed", [e["type"] for e in wait_end(self.key, s, r.json["sequence"])[0]])
        check_stored(self, sids[0])

    def test_metadata_nested_27_levels_runs(self):
        sid = self.session()
        for depth in (27, DEPTH - 1):   # the deepest a body allows under "metadata"
            r = self.send(sid, "deep", metadata=nested(depth, "x"))
            self.assertEqual(r.status, 201, r.text)
            evs, _ = wait_end(self.key, sid, r.json["sequence"])
            self.assertIn("turn.completed", [e["type"] for e in evs])
        self.assertEqual(api("GET", "/api/v1/sessions/" + sid, key=self.key).json["status"], "idle")
        # one more level is refused, naming where
        r = self.send(sid, "deeper", metadata=nested(DEPTH, "x"))
        self.assertEqual((r.status, r.json["code"]), (400, "invalid_json"), r.text)
        self.assertIn("metadata.a.a", r.json["error"])

    def test_nul_in_metadata_is_a_400_naming_the_field(self):
        sid = self.session()
        before = last_seq(self.key, sid)
        for meta, field in (({"x": "a\u0000b"}, "metadata.x"),
                            ({"x": ["ok", "\ud800"]}, "metadata.x[1]"),
                            ({"k\u0000": 1}, "metadata (a key)"),
                            ({"y": {"z": "\udc00"}}, "metadata.y.z")):
            r = self.send(sid, "hi", metadata=meta)
            self.assertEqual((r.status, r.json["code"]), (400, "validation_error"), r.text)
            self.assertIn(field, r.json["error"])
        r = self.send(sid, "lone \ud83d surrogate")
        self.assertEqual(r.status, 400, r.text)
        self.assertIn("message.content[0].text", r.json["error"])
        self.assertEqual(last_seq(self.key, sid), before)
        self.assertEqual(api("GET", "/api/v1/sessions/" + sid, key=self.key).json["status"], "idle")
        r = post(self.key, "/api/v1/sessions", {"agent_id": self.agent, "tags": ["a", "b\u0000"]})
        self.assertEqual(r.status, 400, r.text)
        self.assertIn("tags[1]", r.json["error"])
        r = post(self.key, "/api/v1/sessions", {"agent_id": self.agent, "title": "t\udfff"})
        self.assertEqual(r.status, 400, r.text)
        self.assertIn("title", r.json["error"])

    def test_a_refused_row_fails_its_turn_only(self):
        # PostgreSQL refuses one turn's reply (a trigger standing for any
        # row it cannot store); the other turns of the same batches are
        # written, the poisoned one fails at once
        psql("""CREATE OR REPLACE FUNCTION evr_test_poison() RETURNS trigger LANGUAGE plpgsql AS $f$
                BEGIN
                  IF NEW.type = 'output.message.completed'
                     AND strpos(NEW.data::text, 'POISON-ROW') > 0 THEN
                    RAISE EXCEPTION 'poisoned row' USING ERRCODE = '22P05';
                  END IF;
                  RETURN NEW;
                END $f$;
                DROP TRIGGER IF EXISTS evr_test_poison ON events;
                CREATE TRIGGER evr_test_poison BEFORE INSERT ON events
                  FOR EACH ROW EXECUTE FUNCTION evr_test_poison();""")
        log = os.path.join(HOME, "log", "runner.log")
        try:
            for _ in range(3):   # until a refused batch held other turns too
                at = os.path.getsize(log)
                self.poison_round()
                with open(log, encoding="utf-8", errors="replace") as f:
                    f.seek(at)
                    if "turn by turn" in f.read():
                        break
            else:
                self.fail("no refused batch held more than one turn")
        finally:
            psql("DROP TRIGGER IF EXISTS evr_test_poison ON events;"
                 "DROP FUNCTION IF EXISTS evr_test_poison()")

    def poison_round(self):
        sids = [self.session() for _ in range(12)]
        sent = [None] * len(sids)

        def go(i, s):
            text = "POISON-ROW" if i in (3, 8) else "fine %d" % i
            r = self.send(s, text)
            sent[i] = (s, r, i in (3, 8))
        threads = [threading.Thread(target=go, args=(i, s)) for i, s in enumerate(sids)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for s, r, bad in sent:
            self.assertEqual(r.status, 201, r.text)
            seq = r.json["sequence"]
            evs, took = wait_end(self.key, s, seq)
            types = [e["type"] for e in evs]
            self.assertEqual(types.count("turn.started"), 1, types)
            if bad:
                failed = [e for e in evs if e["type"] == "turn.failed"]
                self.assertEqual(failed[0]["data"]["error_code"], "event_unstorable", types)
            else:
                self.assertIn("turn.completed", types)
            self.assertEqual(api("GET", "/api/v1/sessions/" + s, key=self.key).json["status"],
                             "idle")

    def test_a_turn_the_runner_cannot_read_fails_at_once(self):
        # stored data nested past anything the runner reads (put there
        # behind the API's back): the turn fails, no lease cycle
        sid = self.session()
        r = self.send(sid, "first")
        wait_end(self.key, sid, r.json["sequence"])
        deep = json.dumps(nested(80, "x"))
        psql("UPDATE events SET data = jsonb_set(data, '{deep}', $1::jsonb) "
             "WHERE session_id = $2::uuid AND type = 'input.message'", deep, sid[4:])
        r = self.send(sid, "second")
        self.assertEqual(r.status, 201, r.text)
        evs, _ = wait_end(self.key, sid, r.json["sequence"])
        failed = [e for e in evs if e["type"] == "turn.failed"]
        self.assertTrue(failed, [e["type"] for e in evs])
        self.assertEqual(failed[0]["data"]["error_code"], "turn_unloadable")
        self.assertEqual(api("GET", "/api/v1/sessions/" + sid, key=self.key).json["status"], "idle")

    def test_provider_nul_and_lone_surrogates_are_replaced(self):
        for kind in ("openai_completions", "anthropic"):
            name, mid = self.fake_model(kind)
            self.fake.script(name, {"raw": 1, "thinking": "t\\u0000h\\ud800",
                                    "text": "a\\u0000b\\udfffc\\ud83d\\ude00",
                                    "tool_calls": [{"id": "c1", "name": "calculate",
                                                    "arguments": escaped('{"operation":"add","a":1,"b":2,"x":"') + "\\\\u0000" + escaped('"}')}]},
                             {"text": "done"})
            sid = self.session(model_id=mid)
            r = self.send(sid, "go")
            evs, _ = wait_end(self.key, sid, r.json["sequence"])
            types = [e["type"] for e in evs]
            self.assertIn("turn.completed", types, (kind, types))
            msg = [e for e in evs if e["type"] == "output.message.completed"][0]["data"]["message"]
            self.assertEqual(msg["content"][0]["text"], "a\ufffdb\ufffdc\U0001F600", kind)
            check_stored(self, sid)

    # --- the generator -----------------------------------------------------------------

    def test_generated_hostile_turns(self):
        rng0 = random.Random(SEED)
        stats = {"turns": 0, "refused": 0, "slowest": 0.0, "errors": [], "ordinary": 0,
                 "ordinary_slowest": 0.0, "outcomes": {}}
        lock = threading.Lock()
        stop = threading.Event()
        t_start = time.monotonic()

        # ordinary turns in another organization, alongside
        other = new_org("hostile-neighbour")["api_key"]
        oagent = api("GET", "/api/v1/agents/assistant", key=other).json["id"]
        omodel = instant_model(other)

        def ordinary(n):
            try:
                sid = new_session(other, oagent, omodel)
                i = 0
                while not stop.is_set():
                    i += 1
                    r = post(other, "/api/v1/sessions/%s/messages" % sid,
                             {"message": {"content": [{"type": "text", "text": "plain %d-%d" % (n, i)}]}})
                    assert r.status == 201, r.text
                    evs, took = wait_end(other, sid, r.json["sequence"])
                    done = [e for e in evs if e["type"] == "output.message.completed"]
                    assert [e["type"] for e in evs][-2] == "turn.completed", evs
                    assert done[-1]["data"]["message"]["content"][0]["text"] == \
                        "You said: plain %d-%d" % (n, i)
                    with lock:
                        stats["ordinary"] += 1
                        stats["ordinary_slowest"] = max(stats["ordinary_slowest"], took)
                    if i % 15 == 0:
                        sid = new_session(other, oagent, omodel)
            except Exception as ex:  # noqa: BLE001 - reported by the main thread
                with lock:
                    stats["errors"].append("ordinary %d: %r" % (n, ex))

        def worker(w, count):
            rng = random.Random(rng0.randrange(1 << 31) + w)
            sid, used = None, 0
            for k in range(3 * count):   # refused requests are not turns
                with lock:
                    if stats["turns"] >= TURNS or time.monotonic() - t_start > 150:
                        break
                if sid is None or used >= 12:
                    sid, used = self.gen_session(rng, stats, lock), 0
                used += 1
                try:
                    self.one_case(rng, sid, stats, lock, "%d.%d" % (w, k))
                except Exception as ex:  # noqa: BLE001
                    with lock:
                        stats["errors"].append("worker %d case %d (seed %d): %r" % (w, k, SEED, ex))
                    sid = None

        workers = 4
        threads = [threading.Thread(target=ordinary, args=(n,)) for n in range(2)]
        threads += [threading.Thread(target=worker, args=(w, (TURNS + workers - 1) // workers))
                    for w in range(workers)]
        for t in threads[2:]:
            t.start()
        for t in threads[:2]:
            t.start()
        for t in threads[2:]:
            t.join(timeout=240)
        stop.set()
        for t in threads[:2]:
            t.join(timeout=30)
        took = time.monotonic() - t_start
        print("test_hostile_content: seed %d: %d generated turns, %d refused requests, slowest "
              "turn %.2f s; %d ordinary turns alongside (slowest %.2f s); %.1f s; outcomes %s"
              % (SEED, stats["turns"], stats["refused"], stats["slowest"], stats["ordinary"],
                 stats["ordinary_slowest"], took, stats["outcomes"]), file=sys.stderr, flush=True)
        for o, why in sorted(stats.get("why", {}).items()):
            print("  %s: %s" % (o, " | ".join(why)), file=sys.stderr, flush=True)
        self.assertEqual(stats["errors"], [], "seed %d" % SEED)
        self.assertGreaterEqual(stats["turns"], min(200, TURNS))
        self.assertGreater(stats["ordinary"], 0)

    def gen_session(self, rng, stats, lock):
        """A session whose title and tags are generated; refused ones are
        checked and a plain session is used instead."""
        title = rand_text(rng, rng.randrange(0, 40), 500)
        tags = [rand_text(rng, rng.randrange(1, 8), 60) or "t" for _ in range(rng.randrange(0, 3))]
        bad = rng.random() < 0.3
        field = None
        if bad:
            if rng.random() < 0.5 or not tags:
                title, field = poison(rng, title), "title"
            else:
                i = rng.randrange(len(tags))
                tags[i], field = poison(rng, tags[i]), "tags[%d]" % i
        r = post(self.key, "/api/v1/sessions", {"agent_id": self.agent, "model_id": self.model,
                                                 "capabilities": CAPS, "title": title, "tags": tags})
        if bad:
            self.refused(r, field, stats, lock)
            return self.session()
        assert r.status == 201, r.text
        return r.json["id"]

    def refused(self, r, field, stats, lock):
        assert 400 <= r.status < 500 and r.json and "code" in r.json and "error" in r.json, r
        assert field in r.json["error"], (field, r.json)
        with lock:
            stats["refused"] += 1

    def turn(self, sid, r, stats, lock, kind, expect=None, key=None):
        key = key or self.key
        assert r.status == 201, (kind, r)
        evs, took = wait_end(key, sid, r.json["sequence"])
        types = [e["type"] for e in evs]
        end = [t for t in types if t in END][0]
        if expect:
            assert end in expect, (kind, types)
        assert types.count("turn.started") == 1, (kind, types)
        s = api("GET", "/api/v1/sessions/" + sid, key=key).json
        assert s["status"] == "idle", (kind, s["status"])
        for e in evs:
            assert not has_bad_text(e["data"]), (kind, e)
        check_stored(self, sid)
        with lock:
            stats["turns"] += 1
            stats["slowest"] = max(stats["slowest"], took)
            o = "%s:%s" % (kind, end)
            if end == "turn.failed":
                f = [e for e in evs if e["type"] == "turn.failed"][0]["data"]
                o += ":" + f["error_code"]
                if len(stats.setdefault("why", {}).setdefault(o, [])) < 2:
                    stats["why"][o].append(f["error"][:300])
            stats["outcomes"][o] = stats["outcomes"].get(o, 0) + 1
        return evs

    def one_case(self, rng, sid, stats, lock, tag):
        kind = rng.choice(["text", "text", "metadata", "tool_args", "tool_args", "files", "kv",
                           "title_tool", "fake", "fake", "size"])
        path = "/api/v1/sessions/%s/messages" % sid
        if kind == "text":
            text = rand_text(rng, rng.randrange(1, 300))
            if rng.random() < 0.25:
                r = post(self.key, path, {"message": {"content": [{"type": "text", "text": poison(rng, text)}]}})
                return self.refused(r, "message.content[0].text", stats, lock)
            body = {"message": {"content": [{"type": "text", "text": rng.choice(["", "#text ", "#think\n"]) + text}]}}
            return self.turn(sid, post(self.key, path, body, ascii_only=rng.random() < 0.5),
                             stats, lock, kind, expect=("turn.completed",))
        if kind == "metadata":
            depth = rng.choice([1, 3, 8, 20, DEPTH - 2, DEPTH - 1, DEPTH, DEPTH + 3])
            leaf = rand_value(rng, 3)
            meta = {rand_text(rng, 3): nested(depth - 1, leaf) if depth > 1 else leaf}
            bad = rng.random() < 0.25
            if bad:
                meta[poison(rng, "k") if rng.random() < 0.3 else "p"] = poison(rng, rand_text(rng, 5))
            body = {"message": {"content": [{"type": "text", "text": "meta"}]}, "metadata": meta}
            r = post(self.key, path, body)
            if bad or 1 + jlevels(meta) > DEPTH + 1:
                return self.refused(r, "metadata", stats, lock)
            return self.turn(sid, r, stats, lock, kind, expect=("turn.completed",))
        if kind == "tool_args":
            depth = rng.choice([1, 2, 5, DEPTH - 1, DEPTH, DEPTH + 1, DEPTH + 5])
            args = nested(depth - 1, rand_value(rng, 2)) if depth > 1 else {}
            args["timezone"] = rng.choice(["UTC", "Europe/Paris", rand_text(rng, 4)])
            args[rand_text(rng, 3)] = rand_text(rng, 10)
            text = json.dumps(args, ensure_ascii=rng.random() < 0.5)
            if rng.random() < 0.5:   # escapes PostgreSQL refuses, from the model
                text = text.replace('"timezone"', '"x":"' + rng.choice(["\\u0000", "\\ud800", "\\udfff"]) + '","timezone"', 1)
            tool = rng.choice(["get_current_time", "calculate", "no_such_tool"])
            r = post(self.key, path, {"message": {"content": [{"type": "text", "text": "#tool %s %s" % (tool, text)}]}})
            return self.turn(sid, r, stats, lock, kind)
        if kind == "files":
            name = rand_text(rng, rng.randrange(1, 20)).replace("/", "_").strip() or "f"
            if name in (".", "..", "_"):
                name = "f" + name
            content = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300))) \
                if rng.random() < 0.5 else rand_text(rng, 100).encode("utf-8", "surrogatepass")
            fpath = "/api/v1/sessions/%s/fs/%s" % (sid, urllib.parse.quote(name.encode("utf-8", "surrogatepass")))
            r = api("PUT", fpath, raw=content, key=self.key, content_type="application/octet-stream")
            if r.status == 400:   # a name the file system refuses (controls)
                assert r.json and "path" in r.json["error"], r
                with lock:
                    stats["refused"] += 1
            else:
                assert r.status in (200, 201), r
                if rng.random() < 0.3:   # JSON content: stored as bytes, \u0000 allowed
                    r = post(self.key, fpath + "?overwrite=true",
                             {"content": rand_text(rng, 20) + "\x00" + "\ud800", "encoding": "text"})
                    assert r.status in (200, 201), r
            bad_name = poison(rng, "x")
            r = post(self.key, "/api/v1/sessions/%s/fs/_/move" % sid, {"src_path": "/" + name, "dst_path": "/" + bad_name})
            self.refused(r, "dst_path", stats, lock)
            args = json.dumps({"path": "/" + name}, ensure_ascii=False)
            r = post(self.key, path, {"message": {"content": [{"type": "text", "text":
                     "#tool read_file %s\n#tool list_directory {\"path\":\"/\"}\n#tool grep_files {\"pattern\":\".\"}" % args}]}})
            return self.turn(sid, r, stats, lock, kind)
        if kind == "kv":
            val = rand_text(rng, rng.randrange(0, 200))
            args = json.dumps({"operation": "set", "key": rand_text(rng, 5), "value": val},
                              ensure_ascii=rng.random() < 0.5)
            if rng.random() < 0.3:
                args = args.replace('"value": "', '"value": "\\u0000', 1)
            r = post(self.key, path, {"message": {"content": [{"type": "text", "text":
                     "#tool kv_store %s\n#tool kv_store {\"operation\":\"list\"}" % args}]}})
            return self.turn(sid, r, stats, lock, kind)
        if kind == "title_tool":
            args = json.dumps({"title": rand_text(rng, rng.randrange(1, 60))}, ensure_ascii=False)
            if rng.random() < 0.3:
                args = args.replace('"title": "', '"title": "\\ud800', 1)
            r = post(self.key, path, {"message": {"content": [{"type": "text", "text":
                     "#tool write_session_title %s\n#tool get_session_info {}" % args}]}})
            return self.turn(sid, r, stats, lock, kind)
        if kind == "size":
            which = rng.choice(["text_at", "text_past", "meta_at", "meta_past", "tool_result"])
            if which == "tool_result":
                # a file read back past tool_result_max_bytes (64 KiB): cut
                # on a character boundary, whatever the offset
                body = ("x" * rng.randrange(4) + "\u00e9\U0001F600\u4e2d" * 6000).encode()
                r = api("PUT", "/api/v1/sessions/%s/fs/big.txt" % sid, raw=body, key=self.key,
                        content_type="text/plain")
                assert r.status in (200, 201), r
                r = post(self.key, path, {"message": {"content": [{"type": "text", "text":
                         '#tool read_file {"path":"/big.txt"}'}]}})
                return self.turn(sid, r, stats, lock, kind)
            if which.startswith("text"):
                n = MAX_TEXT + (1 if which == "text_past" else 0)
                text = "\u00e9" * (n // 2) + ("x" if n % 2 else "")
                body = {"message": {"content": [{"type": "text", "text": text}]}}
                s2 = self.session()
                r = post(self.key, "/api/v1/sessions/%s/messages" % s2, body, ascii_only=False)
                if which == "text_past":
                    return self.refused(r, "message.content[0].text", stats, lock)
                # llmsim's context window may be too small for it: any end
                return self.turn(s2, r, stats, lock, kind)
            meta = {"m": rand_text(rng, 10)}
            while len(json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode()) < 16384 - 120:
                meta["k%d" % len(meta)] = "\u4e2d" * 30
            if which == "meta_past":
                meta["z"] = "x" * 200
            r = post(self.key, path, {"message": {"content": [{"type": "text", "text": "big"}]},
                                      "metadata": meta}, ascii_only=False)
            if which == "meta_past":
                return self.refused(r, "metadata", stats, lock)
            return self.turn(sid, r, stats, lock, kind, expect=("turn.completed",))
        # the fake provider, either wire format: text, thinking and tool
        # arguments with escapes PostgreSQL refuses
        wire = rng.choice(["openai_completions", "anthropic"])
        name, mid = self.fake_model(wire)

        def rtext(n):
            s = rand_text(rng, n)
            return raw_poison(rng, s) if rng.random() < 0.5 else escaped(s)
        first = {"raw": 1, "text": rtext(rng.randrange(0, 200))}
        if rng.random() < 0.5:
            first["thinking"] = rtext(rng.randrange(1, 100))
        script = [first]
        if rng.random() < 0.5:
            depth = rng.choice([1, 4, DEPTH - 2, DEPTH + 2])
            args = {"operation": "add", "a": 1, "b": 2, "note": nested(depth - 1, rand_value(rng, 2))}
            a = escaped(json.dumps(args))
            if rng.random() < 0.5:
                a = a.replace(escaped('"operation"'), escaped('"z": "') + "\\\\u0000" + escaped('", "operation"'), 1)
            first["tool_calls"] = [{"id": "call_" + rand_text(rng, 3).encode("ascii", "ignore").decode() + "x",
                                    "name": rng.choice(["calculate", "nope"]), "arguments": a}]
            script.append({"raw": 1, "text": rtext(rng.randrange(0, 50))})
        self.fake.script(name, *script)
        r = post(self.key, path, {"message": {"content": [{"type": "text", "text": "fake " + tag}],
                                              "controls": {"model_id": mid}}})
        return self.turn(sid, r, stats, lock, "fake-" + wire)


if __name__ == "__main__":
    unittest.main()
