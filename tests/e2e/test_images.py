"""Images (ARCHITECTURE 2.4, 3, 6.4, 8): POST /images (multipart/form-data) with
formats judged by their bytes, the 20 MiB edge, malformed multipart bodies,
metadata, content and delete, tenant scoping, image_file parts reaching
vision models of both drivers (tests/fake-llm records what they got), the
turn error of a model without vision, and the purge of never-attached
uploads."""

import base64
import os
import signal
import unittest
import uuid

from evr import api, new_org, psql, start_runner, wait_until
import test_drivers
from test_drivers import Fake, fake_providers
from test_turns import send, wait_idle

# A real 1x1 PNG, and files that only start like the other formats (the
# server judges the magic bytes; nothing decodes them).
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32
GIF = b"GIF89a\x01\x00\x01\x00" + b"\x00" * 32
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32
MIB = 1024 * 1024
BOUNDARY = "----evrTestBoundary7MA4YWxkTrZu0gW"


def multipart(fields, boundary=BOUNDARY, close=True):
    """fields: [(name, value bytes, filename or None, content type or None)]."""
    out = b""
    for name, value, filename, ctype in fields:
        disp = 'form-data; name="%s"' % name
        if filename is not None:
            disp += '; filename="%s"' % filename
        out += b"--" + boundary.encode() + b"\r\n"
        out += b"Content-Disposition: " + disp.encode() + b"\r\n"
        if ctype:
            out += b"Content-Type: " + ctype.encode() + b"\r\n"
        out += b"\r\n" + value + b"\r\n"
    if close:
        out += b"--" + boundary.encode() + b"--\r\n"
    return out


def upload(key, data, filename="photo.png", claimed="image/png", extra=(), query="",
           content_type=None):
    body = multipart([("file", data, filename, claimed)] + list(extra))
    return api("POST", "/api/v1/images" + query, raw=body, key=key,
               content_type=content_type or "multipart/form-data; boundary=" + BOUNDARY)


class Images(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.key = new_org("images")["api_key"]
        cls.other = new_org("images-other")["api_key"]
        cls.agent = api("GET", "/api/v1/agents/assistant", key=cls.key).json["id"]

    def session(self, key=None):
        r = api("POST", "/api/v1/sessions", {"agent_id": self.agent if key is None else
                                             api("GET", "/api/v1/agents/assistant", key=key).json["id"]},
                key=key or self.key)
        self.assertEqual(r.status, 201, r.text)
        return r.json["id"]

    def test_each_format_is_recognised_by_its_bytes(self):
        for data, want in ((PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"),
                           (WEBP, "image/webp")):
            # the claimed type is wrong on purpose: the bytes decide
            r = upload(self.key, data, filename="C:\\Users\\me\\shot.bin", claimed="text/plain")
            self.assertEqual(r.status, 201, r.text)
            img = r.json
            self.assertRegex(img["id"], r"^img_[0-9a-f]{32}$")
            self.assertEqual((img["content_type"], img["media_type"]), (want, want))
            self.assertEqual(img["size_bytes"], len(data))
            self.assertEqual(img["filename"], "shot.bin")
            self.assertIsNone(img["session_id"])
            self.assertFalse(img["attached"])
            c = api("GET", "/api/v1/images/%s/content" % img["id"], key=self.key)
            self.assertEqual(c.status, 200)
            self.assertEqual(c.headers["content-type"], want)
            self.assertEqual(c.body, data)

    def test_not_an_image_is_415(self):
        for data in (b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"GIF88a" + b"\x00" * 20,
                     b"RIFF\x00\x00\x00\x00WAVEfmt ", b"\x89PNG\r\n\x1a", b"hello"):
            r = upload(self.key, data, claimed="image/png")
            self.assertEqual(r.status, 415, r.text)
            self.assertEqual(r.json["code"], "unsupported_image_type")
        r = upload(self.key, b"", claimed="image/png")
        self.assertEqual(r.status, 400, r.text)

    def test_size_edge_20_mib(self):
        exact = PNG[:8] + b"\x00" * (20 * MIB - 8)
        r = upload(self.key, exact)
        self.assertEqual(r.status, 201, r.text)
        self.assertEqual(r.json["size_bytes"], 20 * MIB)
        c = api("GET", "/api/v1/images/%s/content" % r.json["id"], key=self.key)
        self.assertEqual(len(c.body), 20 * MIB)
        self.assertEqual(c.body[:8], PNG[:8])
        api("DELETE", "/api/v1/images/" + r.json["id"], key=self.key)
        before = psql("SELECT count(*) FROM images")[0][0]
        r = upload(self.key, exact + b"\x00")
        self.assertEqual(r.status, 413, r.text)
        self.assertEqual(r.json["code"], "payload_too_large")
        # a body over the route's 21 MiB is refused by nginx, same shape
        r = upload(self.key, PNG[:8] + b"\x00" * (21 * MIB))
        self.assertEqual(r.status, 413, r.text)
        self.assertIn("error", r.json)
        self.assertEqual(psql("SELECT count(*) FROM images")[0][0], before)

    def test_multipart_edge_cases(self):
        good = multipart([("file", PNG, "a.png", "image/png")])
        cases = [
            # (content type, body, status, code)
            ("multipart/form-data", good, 400, "invalid_multipart"),          # no boundary
            ("multipart/form-data; boundary=", good, 400, "invalid_multipart"),
            ("application/json", b"{}", 415, "unsupported_media_type"),
            ("image/png", PNG, 415, "unsupported_media_type"),
            (None, good, 415, "unsupported_media_type"),
            ("multipart/form-data; boundary=" + BOUNDARY, good[:len(good) // 2], 400,
             "invalid_multipart"),                                           # truncated
            ("multipart/form-data; boundary=" + BOUNDARY,
             multipart([("file", PNG, "a.png", None)], close=False), 400, "invalid_multipart"),
            ("multipart/form-data; boundary=other", good, 400, "invalid_multipart"),
            ("multipart/form-data; boundary=" + BOUNDARY,
             multipart([("file", PNG, "a.png", "image/png"), ("file", GIF, "b.gif", "image/gif")]),
             400, "validation_error"),                                       # two files
            ("multipart/form-data; boundary=" + BOUNDARY,
             multipart([("notfile", PNG, "a.png", "image/png")]), 400, "validation_error"),
            ("multipart/form-data; boundary=" + BOUNDARY,
             multipart([("file", PNG, "x" * 300 + ".png", "image/png")]), 400, "invalid_multipart"),
            ("multipart/form-data; boundary=" + BOUNDARY,
             multipart([("f%d" % i, b"v", None, None) for i in range(17)]), 400, "invalid_multipart"),
        ]
        # huge part headers
        huge = (b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data; name=\"file\"\r\n"
                + b"X-Pad: " + b"a" * 10000 + b"\r\n\r\n" + PNG + b"\r\n--" + BOUNDARY.encode() + b"--\r\n")
        cases.append(("multipart/form-data; boundary=" + BOUNDARY, huge, 400, "invalid_multipart"))
        before = psql("SELECT count(*) FROM images")[0][0]
        for ct, body, status, code in cases:
            r = api("POST", "/api/v1/images", raw=body, key=self.key, content_type=ct)
            self.assertEqual((r.status, r.json and r.json.get("code")), (status, code),
                             "%s: %s" % (ct, r.text))
        self.assertEqual(psql("SELECT count(*) FROM images")[0][0], before)
        # a quoted boundary, a preamble and an epilogue are fine
        body = b"preamble\r\n" + good + b"epilogue"
        r = api("POST", "/api/v1/images", raw=body, key=self.key,
                content_type='multipart/form-data; charset=utf-8; boundary="%s"' % BOUNDARY)
        self.assertEqual(r.status, 201, r.text)

    def test_get_list_content_delete(self):
        r = upload(self.key, GIF, filename="anim.gif")
        self.assertEqual(r.status, 201)
        img = r.json
        g = api("GET", "/api/v1/images/" + img["id"], key=self.key)
        self.assertEqual(g.status, 200)
        self.assertEqual(g.json, img)
        # the upstream document's list: a bare array, newest first
        page = api("GET", "/api/v1/images?limit=100", key=self.key).json
        self.assertIn(img["id"], [i["id"] for i in page])
        self.assertNotIn("data", page[0])
        self.assertEqual(api("GET", "/api/v1/images?limit=1", key=self.key).json[0]["id"], img["id"])
        self.assertEqual(api("GET", "/api/v1/images?limit=1&offset=100000", key=self.key).json, [])
        for bad in ("limit=0", "limit=101", "offset=-1"):
            self.assertEqual(api("GET", "/api/v1/images?" + bad, key=self.key).status, 400, bad)
        self.assertEqual(api("DELETE", "/api/v1/images/" + img["id"], key=self.key).status, 204)
        for path in ("/api/v1/images/" + img["id"], "/api/v1/images/%s/content" % img["id"]):
            self.assertEqual(api("GET", path, key=self.key).status, 404)
        self.assertEqual(api("DELETE", "/api/v1/images/" + img["id"], key=self.key).status, 404)
        for bad in ("img_123", "ses_" + "0" * 32, "nope"):
            r = api("GET", "/api/v1/images/" + bad, key=self.key)
            self.assertEqual(r.status, 400, r.text)
            self.assertIn("image_id", r.json["error"])
        self.assertEqual(api("GET", "/api/v1/images", key=None).status, 401)

    def test_tenant_scoping(self):
        img = upload(self.key, PNG).json
        for method, path in (("GET", "/api/v1/images/" + img["id"]),
                             ("GET", "/api/v1/images/%s/content" % img["id"]),
                             ("DELETE", "/api/v1/images/" + img["id"])):
            r = api(method, path, key=self.other)
            self.assertEqual(r.status, 404, r.text)
        page = api("GET", "/api/v1/images?limit=100", key=self.other).json
        self.assertNotIn(img["id"], [i["id"] for i in page])
        self.assertEqual(api("GET", "/api/v1/images/" + img["id"], key=self.key).status, 200)
        # another organization cannot reference it in a message either
        sid = self.session(self.other)
        r = send(self.other, sid, [{"type": "image_file", "image_id": img["id"]}])
        self.assertEqual(r.status, 404, r.text)

    def test_session_id_field_and_query(self):
        sid = self.session()
        r = upload(self.key, PNG, extra=[("session_id", sid.encode(), None, None)])
        self.assertEqual(r.status, 201, r.text)
        self.assertEqual(r.json["session_id"], sid)
        r = upload(self.key, PNG, query="?session_id=" + sid)
        self.assertEqual(r.json["session_id"], sid)
        other_sid = self.session(self.other)
        for bad in (other_sid, "ses_" + uuid.uuid4().hex, "ses_nope"):
            r = upload(self.key, PNG, extra=[("session_id", bad.encode(), None, None)])
            self.assertEqual(r.status, 404, r.text)
            self.assertIn("session_id", r.json["error"])

    def test_unattached_images_are_purged_after_24h(self):
        sid = self.session()
        kept = upload(self.key, PNG).json["id"]
        gone = upload(self.key, PNG).json["id"]
        fresh = upload(self.key, PNG).json["id"]
        r = send(self.key, sid, [{"type": "text", "text": "look"},
                                 {"type": "image_file", "image_id": kept}])
        self.assertEqual(r.status, 201, r.text)
        wait_idle(self.key, sid, 1)
        self.assertTrue(api("GET", "/api/v1/images/" + kept, key=self.key).json["attached"])
        psql("UPDATE images SET created_at = now() - interval '25 hours' "
             "WHERE id IN ($1::uuid, $2::uuid)", kept[4:], gone[4:])
        # a runner does housekeeping when it starts
        extra = start_runner("runner-images")
        try:
            wait_until(lambda: api("GET", "/api/v1/images/" + gone, key=self.key).status == 404,
                       timeout=15, what="the purge")
        finally:
            os.kill(extra.pid, signal.SIGTERM)
            extra.wait(timeout=15)
        self.assertEqual(api("GET", "/api/v1/images/" + kept, key=self.key).status, 200)
        self.assertEqual(api("GET", "/api/v1/images/" + fresh, key=self.key).status, 200)


class ImagesToModels(unittest.TestCase):
    """image_file parts in each driver's wire format, and no vision."""

    @classmethod
    def setUpClass(cls):
        cls.fake = Fake()
        cls.key = new_org("images-llm")["api_key"]
        cls.providers = fake_providers(cls.fake, cls.key)
        cls.harness = api("GET", "/api/v1/harnesses/base", key=cls.key).json["id"]

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    model = test_drivers.Drivers.model
    def session(self, mid):
        r = api("POST", "/api/v1/sessions", {"harness_id": self.harness, "model_id": mid},
                key=self.key)
        self.assertEqual(r.status, 201, r.text)
        return r.json["id"]

    def test_image_file_reaches_vision_models_in_their_wire_format(self):
        b64 = base64.b64encode(PNG).decode()
        for kind in ("openai_completions", "anthropic"):
            name, mid = self.model(kind, caps=("chat", "tools", "vision"))
            self.fake.script(name, {"text": "a single pixel"})
            img = upload(self.key, PNG, filename="pixel.png").json
            sid = self.session(mid)
            r = send(self.key, sid, [{"type": "text", "text": "What is in this picture?"},
                                     {"type": "image_file", "image_id": img["id"],
                                      "filename": "pixel.png"}])
            self.assertEqual(r.status, 201, r.text)
            evs = wait_idle(self.key, sid, 1)
            self.assertEqual(evs[-2]["type"], "turn.completed", evs[-2])
            body = self.fake.requests(name)[0]["body"]
            user = [m for m in body["messages"] if m["role"] == "user"][-1]
            if kind == "openai_completions":
                self.assertEqual(user["content"][0], {"type": "text", "text": "What is in this picture?"})
                self.assertEqual(user["content"][1],
                                 {"type": "image_url",
                                  "image_url": {"url": "data:image/png;base64," + b64}})
            else:
                blocks = user["content"]
                image = [b for b in blocks if b["type"] == "image"][0]
                self.assertEqual(image["source"], {"type": "base64", "media_type": "image/png",
                                                   "data": b64})
            self.assertTrue(api("GET", "/api/v1/images/" + img["id"], key=self.key).json["attached"])

    def test_model_without_vision_fails_the_turn_clearly(self):
        for kind in ("openai_completions", "anthropic"):
            name, mid = self.model(kind, caps=("chat", "tools"))
            img = upload(self.key, JPEG, filename="x.jpg").json
            sid = self.session(mid)
            r = send(self.key, sid, [{"type": "text", "text": "describe"},
                                     {"type": "image_file", "image_id": img["id"]}])
            self.assertEqual(r.status, 201, r.text)
            evs = wait_idle(self.key, sid, 1)
            failed = [e for e in evs if e["type"] == "turn.failed"]
            self.assertEqual(len(failed), 1, [e["type"] for e in evs])
            self.assertEqual(failed[0]["data"]["error_code"], "unsupported_input")
            self.assertIn("does not accept images", failed[0]["data"]["error"])
            self.assertEqual(self.fake.requests(name), [])


if __name__ == "__main__":
    unittest.main()
