"""A small MCP server stand-in for the fault cases of test_mcp.py (the
real server there is the MCP reference server): Streamable HTTP on
127.0.0.1, run as its own process so that it can die.

    python3 mcp_standin.py  ->  prints its port, serves until killed

Endpoint /mcp answers initialize (with an Mcp-Session-Id), the
initialized notification (202) and tools/list (the tools below); a
tools/call does what its tool's name says:
  ok        {"text"}: a JSON result with that text
  sse       the same as an SSE stream with a notification first, the
            stream left open after the response
  fail      a result with isError
  rpcerr    a JSON-RPC error
  die       the process exits without answering (a server that dies)
  hang      never answers (a slow server)
  huge      {"kb"}: a text result of that many KiB
  garbage   {"seed"}: a random answer made from the seed (random bytes,
            broken JSON, wrong ids, broken SSE framing, odd statuses...)
Endpoint /garbage-list/<seed> answers tools/list with such garbage, and
/hang-list never answers tools/list. Every request is appended (method,
session header) to the file named by MCP_STANDIN_LOG if set."""

import http.server
import json
import os
import random
import socket
import sys
import time

TOOLS = [
    {"name": "ok", "description": "Answers the text given.",
     "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
    {"name": "sse", "description": "Answers over SSE.",
     "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
    {"name": "fail", "description": "Reports a tool error.", "inputSchema": {"type": "object"}},
    {"name": "rpcerr", "description": "Answers a JSON-RPC error.", "inputSchema": {"type": "object"}},
    {"name": "die", "description": "Dies.", "inputSchema": {"type": "object"}},
    {"name": "hang", "description": "Never answers.", "inputSchema": {"type": "object"}},
    {"name": "huge", "description": "A large answer.",
     "inputSchema": {"type": "object", "properties": {"kb": {"type": "integer"}}}},
    {"name": "garbage", "description": "A random answer.",
     "inputSchema": {"type": "object", "properties": {"seed": {"type": "integer"}}}},
    {"name": "odd name/with.dots", "description": "A name to sanitise.",
     "inputSchema": "not a schema"},
]


def garbage(rnd, rid):
    """(status, content type, body bytes, keep open) from rnd."""
    good = {"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": "fine"}]}}
    kind = rnd.randrange(14)
    if kind == 0:
        return 200, "application/json", bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 4000))), False
    if kind == 1:
        s = json.dumps(good)
        return 200, "application/json", s[:rnd.randrange(len(s))].encode(), False
    if kind == 2:
        return 200, "application/json", json.dumps(dict(good, id=rid + 1 + rnd.randrange(5))).encode(), False
    if kind == 3:
        return 200, "text/event-stream", bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 4000))), False
    if kind == 4:
        lines = ["event: message", "data: " + json.dumps(good)[:rnd.randrange(40)], "", ": comment",
                 "data: {", "id: 7", "retry: x", "data: " + json.dumps(good)]
        rnd.shuffle(lines)
        return 200, "text/event-stream", ("\n".join(lines) + rnd.choice(["", "\n", "\n\n"])).encode(), False
    if kind == 5:
        return rnd.choice([200, 201, 204, 301, 400, 404, 500, 502, 999]), rnd.choice(
            ["application/json", "text/plain", "", "text/event-stream"]), json.dumps(good).encode(), False
    if kind == 6:
        deep = "[" * rnd.randrange(10, 5000)
        return 200, "application/json", ('{"jsonrpc":"2.0","id":%d,"result":' % rid + deep).encode(), False
    if kind == 7:
        bad = dict(good)
        bad["result"] = rnd.choice([None, 1, "x", [], {"content": "nope"}, {"content": [1, None, {}]},
                                    {"content": [{"type": "image"}], "isError": "yes"},
                                    {"isError": True}, {"structuredContent": {"a": [1, 2]}}])
        return 200, "application/json", json.dumps(bad).encode(), False
    if kind == 8:
        return 200, "application/json", json.dumps({"jsonrpc": "2.0", "id": rid, "error": rnd.choice(
            [None, "x", {"code": "a"}, {"message": 5}, {"code": -32000, "message": "m" * 5000}])}).encode(), False
    if kind == 9:
        body = ("data: " + json.dumps(good) + "\n\n").encode()
        cut = rnd.randrange(len(body))
        return 200, "text/event-stream", body[:cut], rnd.random() < 0.3
    if kind == 10:
        text = "".join(chr(rnd.choice([0x41, 0xe9, 0x263a, 0x1f600, 0xd800 if rnd.random() < 0.1 else 0x42]))
                       for _ in range(200))
        return 200, "application/json", json.dumps(
            {"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": text}]}}).encode(), False
    if kind == 11:
        return 200, "application/json", b"\xff\xfe" + json.dumps(good).encode() + b"\xc3", False
    if kind == 12:
        return 200, "application/json", json.dumps([{"jsonrpc": "2.0", "method": "x"}, good]).encode(), False
    return 200, "text/event-stream", b"data: " + b"x" * rnd.randrange(100, 300000) + b"\n\n", rnd.random() < 0.5


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, ctype, body, headers=(), keep_open=False):
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        if not keep_open:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if keep_open:
            time.sleep(60)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        if not (self.path in ("/mcp", "/hang-list") or self.path.startswith("/garbage-list/")):
            return self.answer(404, "text/plain", b"not here")
        try:
            msg = json.loads(raw)
        except ValueError:
            return self.answer(400, "text/plain", b"bad json")
        method, rid = msg.get("method"), msg.get("id")
        log = os.environ.get("MCP_STANDIN_LOG")
        if log:
            with open(log, "a") as f:
                f.write(json.dumps({"path": self.path, "method": method,
                                    "session": self.headers.get("Mcp-Session-Id"),
                                    "version": self.headers.get("MCP-Protocol-Version"),
                                    "auth": self.headers.get("Authorization"),
                                    "x": self.headers.get("X-Standin")}) + "\n")
        if method == "initialize":
            return self.answer(200, "application/json", json.dumps({
                "jsonrpc": "2.0", "id": rid, "result": {
                    "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                    "serverInfo": {"name": "standin", "version": "1"}}}).encode(),
                [("Mcp-Session-Id", "standin-" + os.urandom(4).hex())])
        if rid is None:
            return self.answer(202, "", b"")
        if method == "tools/list":
            if self.path.startswith("/garbage-list/"):
                rnd = random.Random(int(self.path.rsplit("/", 1)[1]))
                return self.answer(*garbage(rnd, rid))
            if self.path == "/hang-list":
                time.sleep(120)
                return
            return self.answer(200, "application/json", json.dumps(
                {"jsonrpc": "2.0", "id": rid, "result": {"tools": TOOLS}}).encode())
        if method != "tools/call":
            return self.answer(200, "application/json", json.dumps(
                {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no such method"}}).encode())
        p = msg.get("params") or {}
        name, args = p.get("name"), p.get("arguments") or {}

        def result(res):
            return json.dumps({"jsonrpc": "2.0", "id": rid, "result": res}).encode()
        if name == "ok":
            return self.answer(200, "application/json", result(
                {"content": [{"type": "text", "text": args.get("text", "")}]}))
        if name == "sse":
            body = ("event: message\ndata: " + json.dumps(
                {"jsonrpc": "2.0", "method": "notifications/message",
                 "params": {"level": "info", "data": "working"}}) + "\n\n" +
                ": a comment\n\nevent: message\ndata: " + result(
                {"content": [{"type": "text", "text": args.get("text", "")}]}).decode() + "\n\n").encode()
            return self.answer(200, "text/event-stream", body, keep_open=True)
        if name == "fail":
            return self.answer(200, "application/json", result(
                {"content": [{"type": "text", "text": "the standin failed on purpose"}], "isError": True}))
        if name == "rpcerr":
            return self.answer(200, "application/json", json.dumps(
                {"jsonrpc": "2.0", "id": rid, "error": {"code": -32602, "message": "bad arguments"}}).encode())
        if name == "die":
            os._exit(3)
        if name == "hang":
            time.sleep(120)
            return
        if name == "huge":
            return self.answer(200, "application/json", result(
                {"content": [{"type": "text", "text": "y" * (1024 * int(args.get("kb", 1)))}]}))
        if name == "garbage":
            return self.answer(*garbage(random.Random(int(args.get("seed", 0))), rid))
        return self.answer(200, "application/json", result({"content": [], "isError": True}))


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    address_family = socket.AF_INET


if __name__ == "__main__":
    srv = Server(("127.0.0.1", 0), Handler)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()
