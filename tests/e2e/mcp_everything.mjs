// The MCP reference server (@modelcontextprotocol/server-everything, from
// tests/package.json) in its streamableHttp mode for test_mcp.py, bound to
// 127.0.0.1 only (the package listens on every interface): PORT from the
// environment, endpoint /mcp.
import http from "node:http";
import { webcrypto } from "node:crypto";

// Debian 12's Node.js is 18, which has no global `crypto` (19 and later
// do); the MCP SDK calls crypto.randomUUID() for its session ids.
if (!globalThis.crypto) globalThis.crypto = webcrypto;

const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (port, ...rest) {
  const cb = rest.find((a) => typeof a === "function");
  return listen.call(this, port, "127.0.0.1", cb);
};
process.argv = [process.argv[0], "mcp-server-everything", "streamableHttp"];
await import("@modelcontextprotocol/server-everything/dist/index.js");
