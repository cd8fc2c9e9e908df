// tests/ui/eventsource.mjs: read a session's SSE stream with the npm
// `eventsource` package (a WHATWG EventSource: it reconnects by itself with
// Last-Event-ID, honours `retry:`), and print one JSON line per event on
// stdout: {"open":n} on every (re)connection, {"type","id","data"} per event.
//
//   node eventsource.mjs URL API_KEY UNTIL_TYPE [COUNT] [TIMEOUT_S]
//
// It exits 0 after the COUNT-th event of type UNTIL_TYPE (default 1), 1 on
// a fatal EventSource error, 2 on timeout (default 60 s).
//
// The only thing added to the package is the Authorization header (a
// browser would send a cookie instead), and the transport gives the server
// a moment when a reverse proxy answers 502/503 while the SSE process
// restarts: WHATWG EventSource treats any non-200 answer as final.
import { EventSource } from "eventsource";

const [url, key, untilType, countArg, timeoutArg] = process.argv.slice(2);
const want = Number(countArg || 1);
const TYPES = [
  "connected", "disconnecting", "session.started", "input.message",
  "session.activated", "turn.started", "reason.started",
  "output.message.started", "output.message.delta",
  "output.message.completed", "reason.completed", "reason.thinking.started",
  "reason.thinking.delta", "reason.thinking.completed", "act.started",
  "tool.started", "tool.completed", "act.completed", "turn.completed",
  "turn.failed", "turn.cancelled", "session.idled", "file.written",
];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function authFetch(input, init) {
  const headers = { ...(init.headers || {}), Authorization: "Bearer " + key };
  for (let i = 0; ; i++) {
    const r = await fetch(input, { ...init, headers });
    if (![502, 503, 504].includes(r.status) || i >= 100) return r;
    await r.body?.cancel();
    await sleep(100);
  }
}

const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const es = new EventSource(url, { fetch: authFetch });
let opens = 0, seen = 0;
const timer = setTimeout(() => { out({ timeout: true }); process.exit(2); },
  1000 * Number(timeoutArg || 60));
es.onopen = () => out({ open: ++opens });
es.onerror = (e) => {
  // a dropped connection is retried by the package (readyState CONNECTING);
  // CLOSED means it gave up
  if (es.readyState === EventSource.CLOSED) {
    out({ fatal: String(e.message || e.code) });
    process.exit(1);
  }
  out({ error: String(e.message || "dropped") });
};
for (const t of TYPES) {
  es.addEventListener(t, (ev) => {
    out({ type: t, id: ev.lastEventId, data: JSON.parse(ev.data) });
    if (t === untilType && ++seen >= want) {
      clearTimeout(timer);
      es.close();
      process.stdout.end(() => process.exit(0));
    }
  });
}
