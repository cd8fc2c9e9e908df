"""The session file system (ARCHITECTURE 6.1, 6.2): the Sessions guide's curl
examples, every route and status, the traversal battery, size limits at
and just over the edge, concurrent writes to one path, deletion with the
session, tenant scoping, file.written events, and a turn in which the
model (the fake provider) writes and edits a file through the tools."""

import base64
import json
import random
import os
import shlex
import subprocess
import tempfile
import threading
import time
import unittest

from evr import tool_output, api, new_org, psql, BASE
from test_drivers import Fake
from test_turns import events, send, wait_idle

MIB = 1024 * 1024
FS_CAP = 5  # fs_max_file_mb of the test stack is the default, 25


def fs(sid, path=""):
    return "/api/v1/sessions/%s/fs%s" % (sid, ("/" + path) if path else "")


def rows(sid):
    """The session's stored paths, straight from the database."""
    return [r[0] for r in psql(
        "SELECT path FROM session_files WHERE session_id = "
        "replace(substr($1, 5), '-', '')::uuid ORDER BY path", sid)]


class SessionFs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.org = new_org("fs")
        cls.key = cls.org["api_key"]
        cls.harness = api("GET", "/api/v1/harnesses/base", key=cls.key).json["id"]

    def session(self, caps=None, key=None):
        body = {"harness_id": self.harness}
        if caps is not None:
            body["capabilities"] = caps
        r = api("POST", "/api/v1/sessions", body, key=key or self.key)
        self.assertEqual(r.status, 201, r.text)
        return r.json["id"]

    def call(self, method, path, body=None, **kw):
        return api(method, path, body, key=kw.pop("key", self.key), **kw)

    # --- the guide, verbatim but for the host and the ids ---------------------

    def test_guide_curl_examples(self):
        sid = self.session()
        guide = [
            'curl https://app.everruns.com/api/v1/sessions/ses_01933b5a/fs \\\n'
            '-H "Authorization: Bearer YOUR_API_KEY"',
            'curl -X POST https://app.everruns.com/api/v1/sessions/ses_01933b5a/fs/data.csv \\\n'
            '-H "Authorization: Bearer YOUR_API_KEY" \\\n'
            '-H "Content-Type: text/csv" \\\n'
            '--data-binary @data.csv',
            'curl https://app.everruns.com/api/v1/sessions/ses_01933b5a/fs/data.csv \\\n'
            '-H "Authorization: Bearer YOUR_API_KEY"',
            'curl -X DELETE https://app.everruns.com/api/v1/sessions/ses_01933b5a/fs/data.csv \\\n'
            '-H "Authorization: Bearer YOUR_API_KEY"',
            'curl https://app.everruns.com/api/v1/sessions/ses_01933b5a/fs \\\n'
            '-H "Authorization: Bearer YOUR_API_KEY"',
        ]
        csv = b"region,q1\nnorth,10\nsouth,\xe2\x82\xac20\n"
        outs = []
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "data.csv"), "wb") as f:
                f.write(csv)
            for cmd in guide:
                cmd = (cmd.replace("https://app.everruns.com", BASE)
                       .replace("ses_01933b5a", sid)
                       .replace("YOUR_API_KEY", self.key))
                p = subprocess.run(["sh", "-c", cmd], cwd=d, capture_output=True,
                                   timeout=30)
                self.assertEqual(p.returncode, 0, p.stderr)
                outs.append(json.loads(p.stdout))
        self.assertEqual(outs[0], {"data": []})
        self.assertEqual(outs[1]["path"], "/data.csv")
        self.assertEqual(outs[1]["size_bytes"], len(csv))
        self.assertEqual(outs[2]["content"], csv.decode())
        self.assertEqual(outs[2]["encoding"], "text")
        self.assertEqual(outs[3], {"deleted": True})
        self.assertEqual(outs[4], {"data": []})
        self.assertEqual(rows(sid), [])

    # --- every route ---------------------------------------------------------------

    def test_create_read_replace(self):
        sid = self.session()
        r = self.call("POST", fs(sid, "notes/todo.md"), {"content": "# todo\n"})
        self.assertEqual(r.status, 201, r.text)
        self.assertEqual((r.json["path"], r.json["name"], r.json["is_directory"],
                          r.json["size_bytes"]), ("/notes/todo.md", "todo.md", False, 7))
        self.assertRegex(r.json["created_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        # parents were created
        r = self.call("GET", fs(sid))
        self.assertEqual([(e["path"], e["is_directory"]) for e in r.json["data"]],
                         [("/notes", True)])
        # 409 unless overwrite
        r = self.call("POST", fs(sid, "notes/todo.md"), {"content": "x"})
        self.assertEqual((r.status, r.json["code"]), (409, "conflict"))
        self.assertEqual(self.call("GET", fs(sid, "notes/todo.md")).json["content"], "# todo\n")
        r = self.call("POST", fs(sid, "notes/todo.md") + "?overwrite=true", {"content": "y"})
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(self.call("GET", fs(sid, "notes/todo.md")).json["content"], "y")
        # PUT: 201 then 200
        r = self.call("PUT", fs(sid, "b.txt"), raw=b"one", content_type="text/plain")
        self.assertEqual(r.status, 201, r.text)
        r = self.call("PUT", fs(sid, "b.txt"), raw=b"two", content_type="text/plain")
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(self.call("GET", fs(sid, "b.txt")).json["content"], "two")
        # binary content comes back base64; JSON base64 input works too
        blob = bytes(range(256))
        r = self.call("POST", fs(sid, "bin/all.dat"), raw=blob,
                      content_type="application/octet-stream")
        self.assertEqual(r.status, 201, r.text)
        r = self.call("GET", fs(sid, "bin/all.dat"))
        self.assertEqual(r.json["encoding"], "base64")
        self.assertEqual(base64.b64decode(r.json["content"]), blob)
        r = self.call("POST", fs(sid, "bin/b64.dat"),
                      {"content": base64.b64encode(b"\x00\x01zz").decode(), "encoding": "base64"})
        self.assertEqual((r.status, r.json["size_bytes"]), (201, 4))
        self.assertEqual(self.call("GET", fs(sid, "_/download/bin/b64.dat")).body, b"\x00\x01zz")
        # a text body whose JSON says NUL is stored as such and read back base64
        r = self.call("POST", fs(sid, "nul.txt"), {"content": "a\u0000b"})
        self.assertEqual(r.json["size_bytes"], 3)
        self.assertEqual(self.call("GET", fs(sid, "nul.txt")).json["encoding"], "base64")
        # names that start with "_" are ordinary below or beside the reserved "_"
        for name in ("__init__.py", "_config.yml", "pkg/_/x.txt", "%2e%2e"):
            r = self.call("PUT", fs(sid, name.replace("%", "%25")), {"content": name})
            self.assertEqual(r.status, 201, (name, r.text))
            r = self.call("GET", fs(sid, name.replace("%", "%25")))
            self.assertEqual(r.json["content"], name)
        # an empty file
        r = self.call("POST", fs(sid, "empty"), raw=b"", content_type="text/plain")
        self.assertEqual((r.status, r.json["size_bytes"]), (201, 0))
        self.assertEqual(self.call("GET", fs(sid, "empty")).json["content"], "")

    def test_bad_bodies_and_conflicts(self):
        sid = self.session()
        self.assertEqual(self.call("POST", fs(sid, "f.txt"), {"content": "f"}).status, 201)
        cases = [
            ({"content": 5}, "content"),
            ({}, "content"),
            ({"content": "x", "encoding": "rot13"}, "encoding"),
            ({"content": "***", "encoding": "base64"}, "content"),
            ({"content": "x", "is_directory": "yes"}, "is_directory"),
        ]
        for body, field in cases:
            r = self.call("POST", fs(sid, "g.txt"), body)
            self.assertEqual(r.status, 400, (body, r.text))
            self.assertIn(field, r.json["error"])
        r = self.call("POST", fs(sid, "g.txt"), raw=b"{nope", content_type="application/json")
        self.assertEqual(r.status, 400, r.text)
        # a parent that is a file; a file over a directory; a directory over a file
        r = self.call("POST", fs(sid, "f.txt/inner.txt"), {"content": "x"})
        self.assertEqual(r.status, 409, r.text)
        self.assertEqual(self.call("POST", fs(sid, "d"), {"is_directory": True}).status, 201)
        self.assertEqual(self.call("POST", fs(sid, "d"), {"is_directory": True}).status, 409)
        self.assertEqual(self.call("PUT", fs(sid, "d"), {"is_directory": True}).status, 200)
        self.assertEqual(self.call("PUT", fs(sid, "d"), {"content": "x"}).status, 409)
        self.assertEqual(self.call("POST", fs(sid, "f.txt") + "?overwrite=true",
                                   {"is_directory": True}).status, 409)
        self.assertEqual(self.call("POST", fs(sid, "x") + "?overwrite=maybe",
                                   {"content": "x"}).status, 400)
        # the root cannot be written or deleted
        self.assertEqual(self.call("PUT", fs(sid) + "/", {"content": "x"}).status, 400)
        self.assertEqual(self.call("DELETE", fs(sid) + "/").status, 400)
        self.assertEqual(self.call("PUT", fs(sid), {"content": "x"}).status, 405)
        self.assertEqual(sorted(rows(sid)), ["/d", "/f.txt"])
        # unknown and malformed sessions
        other = "ses_" + "0" * 32
        self.assertEqual(self.call("GET", fs(other)).status, 404)
        self.assertEqual(self.call("PUT", fs(other, "a"), {"content": "x"}).status, 404)
        self.assertEqual(self.call("GET", fs("ses_xyz")).status, 400)
        self.assertEqual(self.call("PATCH", fs(sid, "f.txt"), {}).status, 405)

    def test_list_delete_stat(self):
        sid = self.session()
        for p in ("a/1.txt", "a/2.txt", "a/b/3.txt", "top.txt"):
            self.assertEqual(self.call("PUT", fs(sid, p), {"content": p}).status, 201)
        r = self.call("GET", fs(sid, "a"))
        self.assertEqual([e["path"] for e in r.json["data"]], ["/a/1.txt", "/a/2.txt", "/a/b"])
        r = self.call("GET", fs(sid, "a/") + "?recursive=true")
        self.assertEqual([e["path"] for e in r.json["data"]],
                         ["/a/1.txt", "/a/2.txt", "/a/b", "/a/b/3.txt"])
        r = self.call("GET", fs(sid) + "?recursive=true")
        self.assertEqual(len(r.json["data"]), 6)
        self.assertEqual(self.call("GET", fs(sid, "nope")).status, 404)
        # stat
        r = self.call("POST", fs(sid, "_/stat"), {"path": "/a/b/3.txt"})
        self.assertEqual((r.status, r.json["size_bytes"], r.json["name"]), (200, 9, "3.txt"))
        r = self.call("POST", fs(sid, "_/stat"), {"path": "/"})
        self.assertEqual((r.status, r.json["is_directory"]), (200, True))
        self.assertEqual(self.call("POST", fs(sid, "_/stat"), {"path": "/zz"}).status, 404)
        self.assertEqual(self.call("POST", fs(sid, "_/stat"), {}).status, 400)
        self.assertEqual(self.call("POST", fs(sid, "_/stat"), {"path": "a/../.."}).status, 400)
        self.assertEqual(self.call("POST", fs(sid, "_/nope"), {"path": "/a"}).status, 400)
        # delete: non-empty directory needs recursive
        r = self.call("DELETE", fs(sid, "a"))
        self.assertEqual((r.status, r.json["code"]), (409, "conflict"))
        r = self.call("DELETE", fs(sid, "a/1.txt"))
        self.assertEqual((r.status, r.json), (200, {"deleted": True}))
        self.assertEqual(self.call("DELETE", fs(sid, "a/1.txt")).status, 404)
        r = self.call("DELETE", fs(sid, "a") + "?recursive=true")
        self.assertEqual((r.status, r.json), (200, {"deleted": True}))
        self.assertEqual(rows(sid), ["/top.txt"])

    def test_move_copy_grep_download(self):
        sid = self.session()
        files = {"src/main.py": "import os\n# TODO: tidy\nprint('hi')\n",
                 "src/util.py": "def f():\n    return 1  # TODO\n",
                 "README.md": "TODO list\nnothing\n",
                 "data.csv": "a,b\n1,2\n"}
        for p, c in files.items():
            self.assertEqual(self.call("PUT", fs(sid, p), {"content": c}).status, 201)
        # grep
        r = self.call("POST", fs(sid, "_/grep"), {"pattern": "TODO|FIXME"})
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual([f["path"] for f in r.json["data"]],
                         ["/README.md", "/src/main.py", "/src/util.py"])
        self.assertEqual([(m["path"], m["line_number"]) for f in r.json["data"]
                          for m in f["matches"]],
                         [("/README.md", 1), ("/src/main.py", 2), ("/src/util.py", 2)])
        self.assertEqual((r.json["count"], r.json["truncated"]), (3, False))
        r = self.call("POST", fs(sid, "_/grep"), {"pattern": "^[a-z]+ ", "path_pattern": "*.py"})
        self.assertEqual([m["line"] for f in r.json["data"] for m in f["matches"]],
                         ["import os", "def f():"])
        r = self.call("POST", fs(sid, "_/grep"), {"pattern": "TODO", "path_pattern": "/src/**"})
        self.assertEqual(r.json["count"], 2)
        r = self.call("POST", fs(sid, "_/grep"), {"pattern": "a(b"})
        self.assertEqual((r.status, r.json["code"]), (400, "validation_error"))
        self.assertEqual(self.call("POST", fs(sid, "_/grep"), {}).status, 400)
        self.assertEqual(self.call("POST", fs(sid, "_/grep"), {"pattern": "x" * 1025}).status, 400)
        # limits: 1000 matches; the first 64 KiB of a line; lines shown up to 500 bytes
        self.call("PUT", fs(sid, "g/many.txt"), {"content": "hit\n" * 1500})
        self.call("PUT", fs(sid, "g/long.txt"),
                  {"content": "NEAR" + "a" * 70000 + "FAR\n"})
        r = self.call("POST", fs(sid, "_/grep"), {"pattern": "^hit$", "path_pattern": "/g/*"})
        self.assertEqual((r.json["count"], r.json["truncated"]), (1000, True))
        r = self.call("POST", fs(sid, "_/grep"), {"pattern": "NEAR", "path_pattern": "long.txt"})
        self.assertEqual(r.json["count"], 1)
        self.assertEqual(len(r.json["data"][0]["matches"][0]["line"]), 500)
        r = self.call("POST", fs(sid, "_/grep"), {"pattern": "FAR", "path_pattern": "long.txt"})
        self.assertEqual(r.json["count"], 0)
        self.call("DELETE", fs(sid, "g") + "?recursive=true")
        # move
        r = self.call("POST", fs(sid, "_/move"), {"src_path": "/src", "dst_path": "/lib/src"})
        self.assertEqual((r.status, r.json["path"]), (200, "/lib/src"))
        self.assertEqual(self.call("GET", fs(sid, "lib/src/util.py")).json["content"],
                         files["src/util.py"])
        self.assertEqual(self.call("GET", fs(sid, "src")).status, 404)
        r = self.call("POST", fs(sid, "_/move"), {"src_path": "/README.md", "dst_path": "/data.csv"})
        self.assertEqual(r.status, 409, r.text)
        r = self.call("POST", fs(sid, "_/move"), {"src_path": "/lib", "dst_path": "/lib/x"})
        self.assertEqual(r.status, 400, r.text)
        r = self.call("POST", fs(sid, "_/move"), {"src_path": "/missing", "dst_path": "/m"})
        self.assertEqual(r.status, 404, r.text)
        # copy (a directory with its contents)
        r = self.call("POST", fs(sid, "_/copy"), {"src_path": "/lib", "dst_path": "/lib2"})
        self.assertEqual((r.status, r.json["is_directory"]), (201, True))
        self.assertEqual(self.call("GET", fs(sid, "lib2/src/main.py")).json["content"],
                         files["src/main.py"])
        self.assertEqual(self.call("GET", fs(sid, "lib/src/main.py")).status, 200)
        r = self.call("POST", fs(sid, "_/copy"), {"src_path": "/README.md", "dst_path": "/data.csv/x"})
        self.assertEqual(r.status, 409, r.text)
        r = self.call("POST", fs(sid, "_/copy"), {"src_path": "/data.csv", "dst_path": "/data.csv/x"})
        self.assertEqual(r.status, 400, r.text)
        self.assertEqual(self.call("POST", fs(sid, "_/copy"), {"src_path": "/a"}).status, 400)
        # download: the bytes, a type from the extension, an attachment
        r = self.call("GET", fs(sid, "_/download/data.csv"))
        self.assertEqual((r.status, r.body), (200, files["data.csv"].encode()))
        self.assertTrue(r.headers["content-type"].startswith("text/csv"), r.headers)
        self.assertIn("attachment", r.headers["content-disposition"])
        self.call("PUT", fs(sid, "blob.unknownext"), raw=b"\x01\x02", content_type="x/y")
        r = self.call("GET", fs(sid, "_/download/blob.unknownext"))
        self.assertEqual(r.headers["content-type"], "application/octet-stream")
        self.assertEqual(self.call("GET", fs(sid, "_/download/lib")).status, 409)
        self.assertEqual(self.call("GET", fs(sid, "_/download/none.txt")).status, 404)

    # --- the traversal battery ------------------------------------------------------

    def test_traversal_battery(self):
        sid = self.session()
        total_before = psql("SELECT count(*) FROM session_files")[0][0]
        long_seg = "x" * 300
        long_path = "/".join(["y" * 100] * 12)  # 1211 bytes
        very_long = "/".join(["z" * 200] * 20)  # 4019 bytes
        bad = ["../x", "a/../../x", "..", "a/..", "%2e%2e/x", "%2e%2e%2fx", "..%2fx",
               "a/%2e%2e/%2e%2e/x", "%2E%2E/x", "a%00b", "%00", "_/x", "_", "/x", "a//b",
               "a//", "./x", "a/./b", "a%0ab", "a%09b", "a%7fb", "%ff", "%c0%ae%c0%ae/x",
               long_seg, long_path, very_long, "a%2f%2fb", "%2fetc/passwd"]
        for p in bad:
            for method in ("PUT", "POST", "GET", "DELETE"):
                kw = {"raw": b"evil", "content_type": "text/plain"} \
                    if method in ("PUT", "POST") else {}
                r = self.call(method, fs(sid, p), **kw)
                self.assertEqual(r.status, 400, (method, p, r.status, r.text[:200]))
            r = self.call("GET", fs(sid, "_/download/" + p))
            self.assertEqual(r.status, 400, ("download", p, r.text[:200]))
        for p in ["../x", "/a/../x", "//x", "/_/x", "/_", "a\u0000b", "a\nb", "x" * 2000]:
            for act, body in (("stat", {"path": p}),
                              ("move", {"src_path": "/ok", "dst_path": p}),
                              ("copy", {"src_path": p, "dst_path": "/ok2"})):
                r = self.call("POST", fs(sid, "_/" + act), body)
                self.assertEqual(r.status, 400, (act, p, r.text[:200]))
        self.assertEqual(rows(sid), [])
        self.assertEqual(psql("SELECT count(*) FROM session_files")[0][0], total_before)

    def test_large_directory_listing(self):
        sid = self.session()
        self.assertEqual(self.call("PUT", fs(sid, "big"), {"is_directory": True}).status, 201)
        psql("INSERT INTO session_files (session_id, path, is_directory, content, size_bytes) "
             "SELECT replace(substr($1, 5), '-', '')::uuid, '/big/f' || lpad(i::text, 5, '0'), "
             "false, '\\x41'::bytea, 1 FROM generate_series(1, 10000) i", sid)
        t0 = time.time()
        r = self.call("GET", fs(sid, "big"))
        took = time.time() - t0
        print("    listing 10,000 entries: %.2f s" % took)
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.json["data"]), 10000)
        self.assertEqual(r.json["data"][0]["path"], "/big/f00001")
        self.assertLess(took, 10, "listing 10,000 entries took %.1f s" % took)
        r = self.call("DELETE", fs(sid, "big") + "?recursive=true")
        self.assertEqual(r.status, 200)
        self.assertEqual(rows(sid), [])

    # --- limits ---------------------------------------------------------------------

    def test_file_size_limit_from_config(self):
        sid = self.session([{"ref": "session_file_system", "config": {"max_file_size_mb": 1}}])
        r = self.call("PUT", fs(sid, "edge.bin"), raw=b"\xab" * MIB, content_type="x/y")
        self.assertEqual(r.status, 201, r.text)
        r = self.call("PUT", fs(sid, "over.bin"), raw=b"\xab" * (MIB + 1), content_type="x/y")
        self.assertEqual((r.status, r.json["code"]), (413, "payload_too_large"))
        self.assertIn(str(MIB), r.json["error"])
        r = self.call("POST", fs(sid, "over64.bin"),
                      {"content": base64.b64encode(b"\0" * (MIB + 1)).decode(), "encoding": "base64"})
        self.assertEqual(r.status, 413, r.text)
        # replacing a file with a too large one keeps the old one whole
        r = self.call("PUT", fs(sid, "edge.bin"), raw=b"\xcd" * (MIB + 1), content_type="x/y")
        self.assertEqual(r.status, 413)
        self.assertEqual(self.call("GET", fs(sid, "_/download/edge.bin")).body, b"\xab" * MIB)
        self.assertEqual(rows(sid), ["/edge.bin"])

    def test_default_and_server_caps(self):
        # default 10 MiB
        sid = self.session()
        r = self.call("PUT", fs(sid, "ten.bin"), raw=b"t" * (10 * MIB), content_type="x/y")
        self.assertEqual(r.status, 201, r.text)
        r = self.call("PUT", fs(sid, "eleven.bin"), raw=b"t" * (10 * MIB + 1), content_type="x/y")
        self.assertEqual(r.status, 413, r.text)
        # a config above the server's fs_max_file_mb (25) is capped by it
        sid2 = self.session([{"ref": "session_file_system", "config": {"max_file_size_mb": 1024}}])
        r = self.call("PUT", fs(sid2, "big.bin"), raw=b"b" * (25 * MIB + 1), content_type="x/y")
        self.assertEqual(r.status, 413, r.text)
        self.assertEqual(rows(sid2), [])
        # the body limit of the file routes: 25 MiB x 4/3 + 64 KiB, refused
        # on the Content-Length alone, in the API's JSON shape
        limit = 25 * MIB * 4 // 3 + 64 * 1024
        for n in (limit + 1, 100 * MIB):
            r = self.call("PUT", fs(sid2, "huge.bin"), raw=b"x", content_type="x/y",
                          headers={"Content-Length": str(n)})
            self.assertEqual((r.status, r.json["code"]), (413, "payload_too_large"), n)
        self.assertEqual(rows(sid2), [])

    def test_session_total(self):
        sid = self.session([{"ref": "session_file_system",
                             "config": {"max_file_size_mb": 1, "max_total_mb": 2}}])
        for name in ("a", "b"):
            r = self.call("PUT", fs(sid, name), raw=b"x" * MIB, content_type="x/y")
            self.assertEqual(r.status, 201, r.text)
        r = self.call("PUT", fs(sid, "c"), raw=b"y", content_type="x/y")
        self.assertEqual((r.status, r.json["code"]), (413, "payload_too_large"))
        self.assertIn(str(2 * MIB), r.json["error"])
        r = self.call("POST", fs(sid, "_/copy"), {"src_path": "/a", "dst_path": "/a2"})
        self.assertEqual(r.status, 413, r.text)
        self.assertEqual(rows(sid), ["/a", "/b"])
        # replacing counts the difference: a smaller a frees room for c
        # (which, at 10 bytes, is charged the minimum, fs_entry_min_kb = 4)
        self.assertEqual(self.call("PUT", fs(sid, "a"), raw=b"x" * (MIB - 4096),
                                   content_type="x/y").status, 200)
        self.assertEqual(self.call("PUT", fs(sid, "c"), raw=b"y" * 10, content_type="x/y").status, 201)
        self.assertEqual(self.call("PUT", fs(sid, "d"), raw=b"z", content_type="x/y").status, 413)
        # deleting frees it again
        self.assertEqual(self.call("DELETE", fs(sid, "b")).status, 200)
        self.assertEqual(self.call("PUT", fs(sid, "d"), raw=b"z", content_type="x/y").status, 201)
        used = psql("SELECT bytes FROM session_fs_usage WHERE session_id = "
                    "replace(substr($1, 5), '-', '')::uuid", sid)[0][0]
        self.assertEqual(int(used), MIB - 4096 + 10 + 1)

    def test_large_raw_body_streams_whole(self):
        # raw bodies of 256 KiB and more go to the database as they arrive
        # (COPY, fs_stream.c): every byte lands, and the outcomes are
        # those of the buffered path
        seed = 1806
        print("seed", seed)
        rnd = random.Random(seed)
        sid = self.session()
        for size in (256 * 1024, 256 * 1024 + 1, 3 * MIB + 7):
            data = bytes(rnd.getrandbits(8) for _ in range(size))
            r = self.call("PUT", fs(sid, "big.bin"), raw=data, content_type="x/y")
            self.assertIn(r.status, (200, 201), r.text)
            self.assertEqual(r.json["size_bytes"], size)
            self.assertEqual(r.json["path"], "/big.bin")
            got = self.call("GET", fs(sid, "_/download/big.bin"))
            self.assertEqual((got.status, got.body == data), (200, True))
        r = self.call("POST", fs(sid, "big.bin"), raw=data, content_type="x/y")
        self.assertEqual((r.status, r.json["code"]), (409, "conflict"), r.text)
        r = self.call("POST", fs(sid, "new.bin"), raw=data, content_type="x/y")
        self.assertEqual(r.status, 201, r.text)
        r = self.call("PUT", fs(sid, "big.bin/x"), raw=data, content_type="x/y")
        self.assertEqual(r.status, 409, r.text)
        # the request after a streamed one on the same worker is whole too
        r = self.call("GET", fs(sid, "new.bin"))
        self.assertEqual(r.status, 200, r.text)

    def test_usage_counters_follow_every_change(self):
        # session_fs_usage (kept by triggers on session_files) equals what
        # the rows add up to after seeded creates, replaces (growing and
        # shrinking), moves, copies of directories and deletes
        seed = 1805
        print("seed", seed)
        rnd = random.Random(seed)
        sid = self.session()
        names = ["/a", "/d/x", "/d/y", "/d/e/z", "/f"]
        for step in range(40):
            op = rnd.choice(["put", "put", "put", "move", "copy", "delete"])
            p = rnd.choice(names)
            if op == "put":
                self.call("PUT", fs(sid, p[1:]), raw=b"q" * rnd.choice([0, 1, 5000, 70000]),
                          content_type="x/y")
            elif op in ("move", "copy"):
                q = rnd.choice(["/m%d" % step, "/d2", "/d/e2"])
                self.call("POST", fs(sid, "_/" + op), {"src_path": p, "dst_path": q})
                names.append(q)
            else:
                self.call("DELETE", fs(sid, p[1:]) + "?recursive=true")
            got = psql("SELECT u.bytes, u.entries, u.charged FROM session_fs_usage u "
                       "WHERE u.session_id = replace(substr($1, 5), '-', '')::uuid", sid)
            want = psql("SELECT coalesce(sum(f.size_bytes), 0), count(f.*), "
                        "coalesce(sum(greatest(f.size_bytes, u.min_charge)), 0) "
                        "FROM session_fs_usage u LEFT JOIN session_files f USING (session_id) "
                        "WHERE u.session_id = replace(substr($1, 5), '-', '')::uuid", sid)
            self.assertEqual(got, want, "step %d: %s %s" % (step, op, p))

    # --- concurrency, deletion, tenants, events ------------------------------------

    def test_concurrent_writes_one_wins_whole(self):
        sid = self.session()
        payloads = [bytes([65 + i]) * (512 * 1024) for i in range(8)]
        for round_ in range(3):
            statuses = []

            def put(data):
                r = self.call("PUT", fs(sid, "race.bin"), raw=data, content_type="x/y")
                statuses.append(r.status)
            threads = [threading.Thread(target=put, args=(p,)) for p in payloads]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertTrue(all(s in (200, 201) for s in statuses), statuses)
            self.assertEqual(statuses.count(201), 1 if round_ == 0 else 0, statuses)
            body = self.call("GET", fs(sid, "_/download/race.bin")).body
            self.assertIn(body, payloads)
        # creates without overwrite: exactly one 201, the rest 409
        statuses = []

        def post(data):
            statuses.append(self.call("POST", fs(sid, "once.bin"), raw=data,
                                      content_type="x/y").status)
        threads = [threading.Thread(target=post, args=(p,)) for p in payloads]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(statuses), [201] + [409] * 7)
        self.assertIn(self.call("GET", fs(sid, "_/download/once.bin")).body, payloads)

    def test_session_delete_removes_files(self):
        sid = self.session()
        for p in ("a.txt", "d/b.txt"):
            self.assertEqual(self.call("PUT", fs(sid, p), {"content": p}).status, 201)
        self.assertEqual(len(rows(sid)), 3)
        self.assertEqual(self.call("DELETE", "/api/v1/sessions/" + sid).status, 204)
        self.assertEqual(rows(sid), [])
        self.assertEqual(psql("SELECT count(*) FROM session_fs_usage WHERE session_id = "
                              "replace(substr($1, 5), '-', '')::uuid", sid)[0][0], "0")
        self.assertEqual(self.call("GET", fs(sid, "a.txt")).status, 404)

    def test_tenant_scoping(self):
        sid = self.session()
        self.assertEqual(self.call("PUT", fs(sid, "secret.txt"), {"content": "s3"}).status, 201)
        other = new_org("fs-other")["api_key"]
        for method, path, body in (
                ("GET", fs(sid), None), ("GET", fs(sid, "secret.txt"), None),
                ("GET", fs(sid, "_/download/secret.txt"), None),
                ("PUT", fs(sid, "secret.txt"), {"content": "pwned"}),
                ("POST", fs(sid, "new.txt"), {"content": "x"}),
                ("DELETE", fs(sid, "secret.txt"), None),
                ("POST", fs(sid, "_/stat"), {"path": "/secret.txt"}),
                ("POST", fs(sid, "_/move"), {"src_path": "/secret.txt", "dst_path": "/m"}),
                ("POST", fs(sid, "_/copy"), {"src_path": "/secret.txt", "dst_path": "/c"}),
                ("POST", fs(sid, "_/grep"), {"pattern": "s3"})):
            r = self.call(method, path, body, key=other)
            self.assertEqual(r.status, 404, (method, path, r.text))
        self.assertEqual(rows(sid), ["/secret.txt"])
        self.assertEqual(self.call("GET", fs(sid, "secret.txt")).json["content"], "s3")

    def test_file_written_events(self):
        sid = self.session()
        start = len(events(self.key, sid))
        self.call("PUT", fs(sid, "e/one.txt"), {"content": "1"})
        self.call("PUT", fs(sid, "e/one.txt"), {"content": "22"})
        self.call("POST", fs(sid, "_/move"), {"src_path": "/e/one.txt", "dst_path": "/e/two.txt"})
        self.call("DELETE", fs(sid, "e") + "?recursive=true")
        self.call("PUT", fs(sid, "_x"), {"content": "1"})  # fine name
        self.call("PUT", fs(sid, "_/x"), {"content": "1"})  # refused: no event
        evs = [e for e in events(self.key, sid)[start:] if e["type"] == "file.written"]
        self.assertEqual([(e["data"]["operation"], e["data"]["path"]) for e in evs],
                         [("created", "/e/one.txt"), ("updated", "/e/one.txt"),
                          ("moved", "/e/two.txt"), ("deleted", "/e"), ("created", "/_x")])
        self.assertEqual(evs[1]["data"]["size_bytes"], 2)
        self.assertEqual(evs[2]["data"]["from_path"], "/e/one.txt")
        self.assertTrue(all(e["data"]["source"] == "api" for e in evs))

    def test_initial_files_and_read_only(self):
        # the upstream document's create fields: written with the session,
        # in its transaction, each with its file.written event
        body = {"agent_name": "assistant", "initial_files": [
            {"path": "/workspace/docs/spec.md", "content": "# Spec", "is_readonly": True},
            {"path": "notes.txt", "content": "bm90ZXM=", "encoding": "base64"}]}
        r = self.call("POST", "/api/v1/sessions", body)
        self.assertEqual(r.status, 201, r.text)
        sid = r.json["id"]
        self.assertEqual(rows(sid), ["/docs", "/docs/spec.md", "/notes.txt"])
        self.assertEqual(self.call("GET", fs(sid, "notes.txt")).json["content"], "notes")
        info = self.call("POST", fs(sid, "_/stat"), {"path": "/docs/spec.md"}).json
        self.assertTrue(info["is_readonly"])
        self.assertEqual(info["session_id"], sid)
        self.assertRegex(info["id"], r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
        root = self.call("POST", fs(sid, "_/stat"), {"path": "/"}).json
        self.assertEqual((root["path"], root["is_directory"], root["is_readonly"]), ("/", True, False))
        self.assertIsInstance(root["created_at"], str)
        evs = [e["data"] for e in events(self.key, sid) if e["type"] == "file.written"]
        self.assertEqual([(e["operation"], e["path"]) for e in evs],
                         [("created", "/docs/spec.md"), ("created", "/notes.txt")])
        # a read-only file cannot be replaced, moved or deleted (nor its
        # directory); it can be read and copied, and the copy is writable
        # (the document's statuses: 400 to change, 403 to delete)
        for method, path, b, st in (("PUT", fs(sid, "docs/spec.md"), {"content": "x"}, 400),
                                    ("DELETE", fs(sid, "docs/spec.md"), None, 403),
                                    ("DELETE", fs(sid, "docs") + "?recursive=true", None, 403),
                                    ("POST", fs(sid, "_/move"), {"src_path": "/docs",
                                                                 "dst_path": "/d2"}, 400)):
            r = self.call(method, path, b)
            self.assertEqual((r.status, r.json["code"]), (st, "readonly"), (method, path, r.text))
        r = self.call("POST", fs(sid, "_/copy"), {"src_path": "/docs/spec.md", "dst_path": "/copy.md"})
        self.assertEqual(r.status, 201, r.text)
        self.assertFalse(r.json["is_readonly"])
        self.assertNotEqual(r.json["id"], info["id"])
        self.assertEqual(self.call("PUT", fs(sid, "copy.md"), {"content": "y"}).status, 200)
        moved = self.call("POST", fs(sid, "_/move"), {"src_path": "/copy.md", "dst_path": "/c2.md"}).json
        self.assertEqual(moved["id"], r.json["id"])  # a move keeps the id
        # refused bodies: nothing is created
        n = self.call("GET", "/api/v1/sessions").json["total"]
        for bad, code in (({"agent_name": "assistant", "initial_files": [{"path": "/a/../b", "content": ""}]}, 400),
                          ({"agent_name": "assistant", "initial_files": [{"path": "/a"}]}, 400),
                          ({"agent_name": "assistant", "initial_files": [{"path": "/a", "content": "%",
                                                                          "encoding": "base64"}]}, 400),
                          ({"agent_name": "assistant", "initial_files": [{"path": "/a", "content": "1"},
                                                                         {"path": "/a/b", "content": "2"}]}, 409),
                          ({"agent_name": "nobody"}, 404),
                          ({"harness_name": "base", "harness_id": self.harness}, 400),
                          ({"agent_name": "assistant", "locale": "uk UA"}, 400)):
            r = self.call("POST", "/api/v1/sessions", bad)
            self.assertEqual(r.status, code, (bad, r.text))
        self.assertEqual(self.call("GET", "/api/v1/sessions").json["total"], n)


class FsTools(unittest.TestCase):
    """The model writes a report with write_file, edits it with edit_file,
    and a failing tool goes back to it as a result."""

    @classmethod
    def setUpClass(cls):
        cls.fake = Fake()
        cls.key = new_org("fs-tools")["api_key"]
        r = api("POST", "/api/v1/llm-providers",
                {"name": "fake", "provider_type": "openai_completions",
                 "base_url": cls.fake.base + "/v1", "api_key": "sk-test"}, key=cls.key)
        assert r.status == 201, r.text
        cls.provider = r.json["id"]
        cls.harness = api("GET", "/api/v1/harnesses/base", key=cls.key).json["id"]

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def test_write_then_edit_report(self):
        name = "fs-model"
        # room in the context for the 1 MiB arguments of c6
        r = api("POST", "/api/v1/llm-providers/%s/models" % self.provider,
                {"model_id": name, "capabilities": ["chat", "tools"],
                 "context_tokens": 2000000}, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        report = "# Q1 report\n\nTotal sales: 41\n"
        self.fake.script(
            name,
            {"tool_calls": [{"id": "c1", "name": "write_file", "arguments": json.dumps(
                {"path": "/reports/q1.md", "content": report})}]},
            {"tool_calls": [
                {"id": "c2", "name": "edit_file", "arguments": json.dumps(
                    {"path": "/reports/q1.md", "old_text": "Total sales: 41",
                     "new_text": "Total sales: 42"})},
                {"id": "c3", "name": "read_file", "arguments": json.dumps({"path": "/nope.md"})},
                {"id": "c4", "name": "write_file", "arguments": json.dumps(
                    {"path": "/../etc/passwd", "content": "x"})},
                {"id": "c5", "name": "edit_file", "arguments": json.dumps(
                    {"path": "/reports/q1.md", "old_text": "absent", "new_text": "x"})},
                {"id": "c6", "name": "write_file", "arguments": json.dumps(
                    {"path": "/big.txt", "content": "x" * (1024 * 1024 + 1)})}]},
            {"text": "The report is in /reports/q1.md."})
        r = api("POST", "/api/v1/sessions",
                {"harness_id": self.harness, "model_id": r.json["id"],
                 "capabilities": [{"ref": "session_file_system",
                                   "config": {"max_file_size_mb": 1}}]}, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        sid = r.json["id"]
        self.assertEqual(send(self.key, sid, [{"type": "text", "text": "Write the Q1 report"}]).status, 201)
        evs = wait_idle(self.key, sid, 1, timeout=30)
        self.assertIn("turn.completed", [e["type"] for e in evs],
                      [e["data"] for e in evs if e["type"] == "turn.failed"])
        done = {e["data"]["tool_call_id"]: e["data"] for e in evs if e["type"] == "tool.completed"}
        self.assertTrue(done["c1"]["success"], done["c1"])
        self.assertTrue(tool_output(done["c1"])["created"])
        self.assertTrue(done["c2"]["success"], done["c2"])
        self.assertFalse(done["c3"]["success"])
        self.assertIn("no such file", done["c3"]["error"])
        self.assertFalse(done["c4"]["success"])
        self.assertIn("..", done["c4"]["error"])
        self.assertFalse(done["c5"]["success"])
        self.assertIn("not found", done["c5"]["error"])
        self.assertFalse(done["c6"]["success"])
        self.assertIn("1048576", done["c6"]["error"])
        # read over REST
        r = api("GET", fs(sid, "reports/q1.md"), key=self.key)
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.json["content"], report.replace("41", "42"))
        written = [e for e in evs if e["type"] == "file.written"]
        self.assertEqual([(e["data"]["operation"], e["data"]["source"]) for e in written],
                         [("created", "tool"), ("updated", "tool")])
        turn = [e for e in evs if e["type"] == "turn.started"][0]["context"]["turn_id"]
        self.assertTrue(all(e["context"]["turn_id"] == turn for e in written), written)
        # each in its tool's place: after tool.started, before tool.completed
        types = [e["type"] for e in evs]
        for i, t in enumerate(types):
            if t == "file.written":
                self.assertEqual((types[i - 1], types[i + 1]), ("tool.started", "tool.completed"))
        self.assertEqual(rows(sid), ["/reports", "/reports/q1.md"])
        # the model was offered the ten tools, and saw every result,
        # the refusals as text it can act on
        reqs = self.fake.requests(name)
        self.assertEqual(len(reqs), 3)
        self.assertEqual(sorted(t["function"]["name"] for t in reqs[0]["body"]["tools"]),
                         ["copy_file", "delete_file", "edit_file", "grep_files", "list_directory",
                          "make_directory", "move_file", "read_file", "stat_file", "write_file"])
        seen = {m["tool_call_id"]: m["content"] for m in reqs[2]["body"]["messages"]
                if m["role"] == "tool"}
        self.assertEqual(sorted(seen), ["c1", "c2", "c3", "c4", "c5", "c6"])
        self.assertEqual(json.loads(seen["c1"])["path"], "/reports/q1.md")
        self.assertIn("no such file", seen["c3"])

    def test_every_tool_with_llmsim(self):
        """All ten tools in one act phase of the built-in simulator, on the
        same storage as the REST routes."""
        r = api("POST", "/api/v1/sessions",
                {"harness_id": self.harness,
                 "capabilities": [{"ref": "session_file_system",
                                   "config": {"max_file_size_mb": 1}}]}, key=self.key)
        self.assertEqual(r.status, 201, r.text)
        sid = r.json["id"]
        calls = [
            ("make_directory", {"path": "/w"}),
            ("make_directory", {"path": "/w"}),
            ("write_file", {"path": "/w/a.txt", "content": "alpha\nbeta\n"}),
            ("copy_file", {"src_path": "/w/a.txt", "dst_path": "/w/b.txt"}),
            ("move_file", {"src_path": "/w/b.txt", "dst_path": "/x/c.txt"}),
            ("grep_files", {"pattern": "^beta$"}),
            ("stat_file", {"path": "/x/c.txt"}),
            ("stat_file", {"path": "/nope"}),
            ("list_directory", {"path": "/", "recursive": True}),
            ("delete_file", {"path": "/w"}),
            ("delete_file", {"path": "/w", "recursive": True}),
            ("write_file", {"path": "/b.bin", "content": "AAEC/w==", "encoding": "base64"}),
            ("read_file", {"path": "/b.bin"}),
            ("write_file", {"path": "/_/x", "content": "no"}),
            ("edit_file", {"path": "/b.bin", "old_text": "A", "new_text": "B"}),
            ("grep_files", {"pattern": "(unclosed"}),
        ]
        text = "\n".join("#tool %s %s" % (n, json.dumps(a)) for n, a in calls)
        self.assertEqual(send(self.key, sid, text).status, 201)
        evs = wait_idle(self.key, sid, 1, timeout=30)
        done = [e["data"] for e in evs if e["type"] == "tool.completed"]
        self.assertEqual([d["tool_name"] for d in done], [n for n, _ in calls])
        ok = [d["success"] for d in done]
        self.assertEqual(ok, [True] * 9 + [False, True, True, True, False, False, False])
        res = [tool_output(d) if d.get("result") else None for d in done]
        self.assertEqual((res[0]["created"], res[1]["created"]), (True, False))
        self.assertEqual(res[5]["data"][0]["path"], "/w/a.txt")
        self.assertEqual((res[6]["exists"], res[6]["size_bytes"]), (True, 11))
        self.assertEqual(res[7], {"path": "/nope", "exists": False})
        self.assertEqual([e["path"] for e in res[8]["entries"]],
                         ["/w", "/w/a.txt", "/x", "/x/c.txt"])
        self.assertEqual((res[12]["encoding"], res[12]["content"]), ("base64", "AAEC/w=="))
        self.assertIn("not empty", done[9]["error"])
        self.assertIn("reserved", done[13]["error"])
        self.assertIn("not a text file", done[14]["error"])
        self.assertIn("regular expression", done[15]["error"])
        r = api("GET", fs(sid) + "?recursive=true", key=self.key)
        self.assertEqual([e["path"] for e in r.json["data"]], ["/b.bin", "/x", "/x/c.txt"])
        self.assertEqual(api("GET", fs(sid, "x/c.txt"), key=self.key).json["content"],
                         "alpha\nbeta\n")
        self.assertIn("turn.completed", [e["type"] for e in evs])


if __name__ == "__main__":
    unittest.main()
