// everruns.js: the JavaScript client of the everruns HTTP API.
//
// One ES module, no dependencies, for browsers and Node 18+ (it needs only
// fetch, ReadableStream, TextDecoder, AbortController, FormData and Blob).
// Shaped like the Everruns TypeScript SDK of the Sessions guide:
//
//   import { Everruns } from './everruns.js';
//   const client = new Everruns({ apiKey: 'evr_...', baseUrl: 'http://127.0.0.1:8080' });
//   const session = await client.sessions.create({ agentId, title, tags, modelId });
//   const msg = await client.messages.create(session.id, 'Hello');
//   for await (const ev of client.events.stream(session.id, { sinceSequence: msg.sequence })) {
//     if (ev.type === 'turn.completed') break;
//   }
//
// A turn that needs the client (a client-side tool's call, a call that
// needs approval) writes tool.call_requested or tool.approval_requested
// and waits; sessions.submitToolResults() and submitToolApprovals()
// answer it.
//
// Objects come back as the API sends them (snake_case fields); options
// are camelCase. Failed requests throw EverrunsError (status, code, body).
// events.stream() is an async iterator over fetch streaming with the
// Authorization header (EventSource cannot send one); it reconnects by
// itself after a dropped connection, an idle timeout (no byte for
// idleTimeoutMs; the server sends a heartbeat every 15 s) or a
// `disconnecting` event, resuming with Last-Event-ID, so no durable event
// is lost or repeated. Deltas carry `accumulated`, the whole text so far,
// which is what a reconnecting client should display.

const API = '/api/v1';

export class EverrunsError extends Error {
  constructor(status, body, message) {
    const text = message || (body && body.error) || `HTTP ${status}`;
    super(text);
    this.name = 'EverrunsError';
    this.status = status;
    this.code = (body && body.code) || (status ? `http_${status}` : 'network_error');
    this.body = body;
  }
}

function defaultBaseUrl() {
  const env = globalThis.process && globalThis.process.env;
  if (env && env.EVERRUNS_BASE_URL) return env.EVERRUNS_BASE_URL;
  if (globalThis.location && globalThis.location.origin && globalThis.location.origin !== 'null')
    return globalThis.location.origin;
  return 'http://127.0.0.1:8080';
}

// A file path of the session filesystem, each segment percent-encoded.
function fsPath(path) {
  return String(path || '').split('/').filter((s) => s !== '').map(encodeURIComponent).join('/');
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null) continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, String(x)));
    else q.append(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal && signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      if (signal) signal.removeEventListener('abort', done);
      resolve();
    }
    if (signal) signal.addEventListener('abort', done);
  });
}

function b64decode(s) {
  if (typeof atob === 'function') {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  return new Uint8Array(globalThis.Buffer.from(s, 'base64'));
}

export class Everruns {
  // apiKey: "evr_..." (default: $EVERRUNS_API_KEY in Node). baseUrl: the
  // server's origin (a trailing /api/v1 is accepted too; default: the
  // page's origin in a browser, $EVERRUNS_BASE_URL or
  // http://127.0.0.1:8080 in Node). fetch: a fetch implementation.
  constructor(opts = {}) {
    const env = globalThis.process && globalThis.process.env;
    this.apiKey = opts.apiKey || (env && env.EVERRUNS_API_KEY) || '';
    this.baseUrl = String(opts.baseUrl || defaultBaseUrl()).replace(/\/+$/, '').replace(/\/api\/v1$/, '');
    this._fetch = opts.fetch || globalThis.fetch.bind(globalThis);
    this.sessions = new Sessions(this);
    this.messages = new Messages(this);
    this.events = new Events(this);
    this.sessionFs = new SessionFs(this);
    this.agents = new Agents(this);
    this.models = new Models(this);
    this.images = new Images(this);
    this.auth = new Auth(this);
  }

  url(path) {
    return this.baseUrl + API + path;
  }

  headers(extra) {
    const h = { ...(extra || {}) };
    if (this.apiKey) h.Authorization = `Bearer ${this.apiKey}`;
    return h;
  }

  // One request. body: a JSON value; raw: bytes/Blob/string/FormData sent
  // as they are. Returns parsed JSON, null for 204, or the Response itself
  // with {response: true}.
  async request(method, path, { body, raw, contentType, headers, signal, response } = {}) {
    const h = this.headers(headers);
    let payload;
    if (body !== undefined) {
      h['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    } else if (raw !== undefined) {
      if (contentType) h['Content-Type'] = contentType;
      payload = raw;
    }
    let res;
    try {
      res = await this._fetch(this.url(path), { method, headers: h, body: payload, signal });
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      throw new EverrunsError(0, null, `network error: ${e && e.message ? e.message : e}`);
    }
    if (!res.ok) {
      let b = null;
      try { b = await res.json(); } catch (_) { /* not JSON */ }
      throw new EverrunsError(res.status, b);
    }
    if (response) return res;
    if (res.status === 204) return null;
    const text = await res.text();
    return text ? JSON.parse(text) : null;
  }
}

class Sessions {
  constructor(c) { this.c = c; }

  // create({agentId | harnessId, title, tags, modelId, capabilities,
  // maxIterations, systemPrompt, tools, approval, idempotencyKey});
  // tools: client-side tools ({type: "client_side", name, description,
  // parameters}) and tool policies ({type: "builtin", name, policy});
  // approval: "auto", "writes" or "all"
  create(o = {}) {
    const body = {};
    const map = { agentId: 'agent_id', harnessId: 'harness_id', modelId: 'model_id', title: 'title',
      tags: 'tags', capabilities: 'capabilities', maxIterations: 'max_iterations', systemPrompt: 'system_prompt',
      tools: 'tools', approval: 'approval' };
    for (const [k, f] of Object.entries(map)) if (o[k] !== undefined && o[k] !== null && o[k] !== '') body[f] = o[k];
    const headers = o.idempotencyKey ? { 'Idempotency-Key': o.idempotencyKey } : undefined;
    return this.c.request('POST', '/sessions', { body, headers });
  }

  // list({agentId, tags, search, offset, limit}) -> {data, total, offset, limit}
  list(o = {}) {
    return this.c.request('GET', '/sessions' + query({ agent_id: o.agentId, tags: o.tags, search: o.search,
      offset: o.offset, limit: o.limit }));
  }

  get(id) { return this.c.request('GET', `/sessions/${encodeURIComponent(id)}`); }

  // update(id, {title, tags})
  update(id, o = {}) {
    const body = {};
    if (o.title !== undefined) body.title = o.title;
    if (o.tags !== undefined) body.tags = o.tags;
    return this.c.request('PATCH', `/sessions/${encodeURIComponent(id)}`, { body });
  }

  delete(id) { return this.c.request('DELETE', `/sessions/${encodeURIComponent(id)}`); }

  // -> {status: "cancelled" | "no_op", message}
  cancel(id) { return this.c.request('POST', `/sessions/${encodeURIComponent(id)}/cancel`, { body: {} }); }

  // The caller's global chat session (created on the first call).
  chat() { return this.c.request('POST', '/sessions/chat', { body: {} }); }

  // A waiting turn's answers (status "waitingfortoolresults"). Each
  // takes an array; an item's fields may be snake_case as the API has
  // them or camelCase. Both return {accepted, status}: the session's
  // status after the answer ("active" once no call is pending).
  //
  // submitToolResults(sessionId, [{toolCallId, result} | {toolCallId, error}]):
  // the results of client-side tool calls (tool.call_requested); result
  // is any JSON value, error a message.
  submitToolResults(sessionId, results) {
    const tool_results = (results || []).map((r) => {
      const o = { tool_call_id: r.tool_call_id !== undefined ? r.tool_call_id : r.toolCallId };
      if (r.result !== undefined) o.result = r.result;
      if (r.error !== undefined && r.error !== null) o.error = r.error;
      return o;
    });
    return this.c.request('POST', `/sessions/${encodeURIComponent(sessionId)}/tool-results`, { body: { tool_results } });
  }

  // submitToolApprovals(sessionId, [{toolCallId, approved, reason}]):
  // approve or deny calls that wait for approval (tool.approval_requested);
  // a reason goes with a denial to the model.
  submitToolApprovals(sessionId, approvals) {
    const list = (approvals || []).map((a) => {
      const o = { tool_call_id: a.tool_call_id !== undefined ? a.tool_call_id : a.toolCallId, approved: a.approved };
      if (a.reason !== undefined && a.reason !== null) o.reason = a.reason;
      return o;
    });
    return this.c.request('POST', `/sessions/${encodeURIComponent(sessionId)}/tool-approvals`, { body: { approvals: list } });
  }
}

class Messages {
  constructor(c) { this.c = c; }

  // create(sessionId, "text") or create(sessionId, {content, controls,
  // metadata, idempotencyKey}); content is a string or an array of parts
  // ({type:"text", text}, {type:"image_file", image_id, filename}, ...).
  // Returns the message; stream its turn with sinceSequence: msg.sequence.
  create(sessionId, input) {
    const o = typeof input === 'string' ? { content: input } : (input || {});
    const message = { role: 'user', content: o.content };
    if (o.controls) message.controls = o.controls;
    const body = { message };
    if (o.metadata) body.metadata = o.metadata;
    const headers = o.idempotencyKey ? { 'Idempotency-Key': o.idempotencyKey } : undefined;
    return this.c.request('POST', `/sessions/${encodeURIComponent(sessionId)}/messages`, { body, headers });
  }

  list(sessionId, o = {}) {
    return this.c.request('GET', `/sessions/${encodeURIComponent(sessionId)}/messages` + query({
      since_sequence: o.sinceSequence, before_sequence: o.beforeSequence, limit: o.limit }));
  }
}

// One parsed SSE frame -> the object stream() yields: the event envelope
// (durable events and deltas), or {type, data} for connected/disconnecting.
function frameEvent(name, data) {
  let v;
  try { v = JSON.parse(data); } catch (_) { return null; }
  if (v && typeof v === 'object' && typeof v.type === 'string' && v.data !== undefined) return v;
  return { type: name || 'message', data: v };
}

const CONTROL = new Set(['connected', 'disconnecting']);
// after these a reconnect would be refused or would knock another stream out
const FINAL_REASONS = new Set(['session_deleted', 'replaced']);

class Events {
  constructor(c) { this.c = c; }

  // The log: {data, has_more}. since/before/limit/types/exclude/wait as in the API.
  list(sessionId, o = {}) {
    return this.c.request('GET', `/sessions/${encodeURIComponent(sessionId)}/events` + query({
      since_id: o.sinceId, since_sequence: o.sinceSequence, before_sequence: o.beforeSequence,
      types: o.types, exclude: o.exclude, limit: o.limit, wait: o.wait }), { signal: o.signal });
  }

  // stream(sessionId, {sinceId, sinceSequence, types, exclude, signal,
  //   includeControl, idleTimeoutMs, onState}) -> an async iterator of
  // events. Without sinceId/sinceSequence: only events from now on. It
  // ends when the loop breaks, signal aborts, or the server says the
  // session is gone; it throws EverrunsError on a refusal (4xx other than
  // 429). includeControl: also yield `connected` and `disconnecting`.
  // onState(state, detail): "connecting", "open", "reconnecting" (detail:
  // the error or reason), "closed".
  stream(sessionId, o = {}) {
    const c = this.c;
    const idleMs = o.idleTimeoutMs || 45000;
    const onState = o.onState || (() => {});
    const outer = o.signal;
    let lastId = o.sinceId || null;
    let lastSeq = o.sinceSequence !== undefined && o.sinceSequence !== null ? o.sinceSequence : null;
    let ctrl = null;
    let reader = null;
    let stopped = false;

    // Ends the current connection. Cancelling the body's reader as well
    // as aborting the fetch: under some fetch implementations (Node 18
    // with Debian's undici 5.15) an abort can leave a pending read()
    // waiting for ever.
    const cut = () => {
      if (ctrl) ctrl.abort();
      if (reader) reader.cancel().catch(() => {});
    };
    const stop = () => { stopped = true; cut(); };
    if (outer) {
      if (outer.aborted) stopped = true;
      else outer.addEventListener('abort', stop, { once: true });
    }

    async function* run() {
      let retryMs = 1000;
      let failures = 0;
      try {
        while (!stopped) {
          const q = { types: o.types, exclude: o.exclude };
          const headers = { Accept: 'text/event-stream' };
          if (lastId) headers['Last-Event-ID'] = lastId;
          else if (lastSeq !== null) q.since_sequence = lastSeq;
          ctrl = new AbortController();
          let idle = null;
          const arm = () => { clearTimeout(idle); idle = setTimeout(cut, idleMs); };
          let wait = null;
          let why = null;
          onState(failures ? 'reconnecting' : 'connecting', why);
          try {
            arm();
            const res = await c._fetch(c.url(`/sessions/${encodeURIComponent(sessionId)}/sse${query(q)}`),
              { headers: c.headers(headers), signal: ctrl.signal, cache: 'no-store' });
            if (!res.ok) {
              let b = null;
              try { b = await res.json(); } catch (_) { /* not JSON */ }
              const err = new EverrunsError(res.status, b);
              if (res.status === 429 || res.status >= 500) {
                const ra = Number(res.headers.get('Retry-After'));
                wait = ra > 0 ? ra * 1000 : null;
                throw err;
              }
              stopped = true;
              throw err;
            }
            onState('open');
            let framed = false;
            reader = res.body.getReader();
            const dec = new TextDecoder();
            let buf = '';
            let name = '';
            let data = [];
            let id = null;
            for (;;) {
              const { value, done } = await reader.read();
              if (done) break;
              arm();
              buf += dec.decode(value, { stream: true });
              let nl;
              while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
                const line = buf.slice(0, nl);
                buf = buf.slice(nl + (buf[nl] === '\r' && buf[nl + 1] === '\n' ? 2 : 1));
                if (line === '') {
                  if (data.length) {
                    // a server that speaks is healthy: the next drop is
                    // retried at once
                    framed = true;
                    failures = 0;
                    const ev = frameEvent(name, data.join('\n'));
                    if (id) {
                      lastId = id;
                      if (ev && typeof ev.sequence === 'number') lastSeq = ev.sequence;
                    }
                    if (ev && ev.type === 'disconnecting') {
                      const r = ev.data && ev.data.reason;
                      if (FINAL_REASONS.has(r)) stopped = true;
                      why = r || 'disconnecting';
                      wait = ev.data && ev.data.retry_ms >= 0 ? ev.data.retry_ms : 100;
                    }
                    if (ev && (o.includeControl || !CONTROL.has(ev.type))) {
                      yield ev;
                      if (stopped) return;
                    }
                  }
                  name = ''; data = []; id = null;
                  continue;
                }
                if (line[0] === ':') continue;
                const i = line.indexOf(':');
                const f = i < 0 ? line : line.slice(0, i);
                let v = i < 0 ? '' : line.slice(i + 1);
                if (v[0] === ' ') v = v.slice(1);
                if (f === 'event') name = v;
                else if (f === 'data') data.push(v);
                else if (f === 'id') id = v;
                else if (f === 'retry' && /^\d+$/.test(v)) retryMs = Number(v);
              }
            }
            why = why || 'stream ended';
            if (!framed) failures++;
          } catch (e) {
            if (stopped && !(e instanceof EverrunsError)) return;
            if (e instanceof EverrunsError && stopped) throw e;
            why = e;
            failures++;
          } finally {
            clearTimeout(idle);
            reader = null;
          }
          if (stopped) return;
          onState('reconnecting', why);
          // the first reconnect at once (a dropped connection), then back
          // off from the server's retry: hint, at most 10 s
          const delay = wait !== null ? wait : failures <= 1 ? 100 : Math.min(retryMs * (failures - 1), 10000);
          await sleep(delay, outer);
        }
      } finally {
        stopped = true;
        cut();
        if (outer) outer.removeEventListener('abort', stop);
        onState('closed');
      }
    }
    const it = run();
    it.close = stop;
    return it;
  }
}

class SessionFs {
  constructor(c) { this.c = c; }

  base(sessionId) { return `/sessions/${encodeURIComponent(sessionId)}/fs`; }

  // list(sessionId, path = "/", {recursive}) -> [FileInfo]
  async list(sessionId, path = '/', o = {}) {
    const p = fsPath(path);
    const r = await this.c.request('GET', this.base(sessionId) + (p ? `/${p}` : '') +
      query({ recursive: o.recursive ? 'true' : undefined }));
    return r && Array.isArray(r.data) ? r.data : r;
  }

  // The file object: {path, name, content, encoding, size_bytes, ...}.
  get(sessionId, path) {
    return this.c.request('GET', `${this.base(sessionId)}/${fsPath(path)}`);
  }

  // The content: a string for text files, a Uint8Array for binary ones.
  async read(sessionId, path) {
    const f = await this.get(sessionId, path);
    return f.encoding === 'base64' ? b64decode(f.content || '') : f.content;
  }

  // upload(sessionId, path, data, {overwrite = true, contentType}): data is
  // a string, Blob/File, ArrayBuffer or typed array, sent as raw bytes
  // (the guide's --data-binary upload).
  upload(sessionId, path, data, o = {}) {
    let ct = o.contentType || (data && data.type) || 'application/octet-stream';
    // a JSON Content-Type would ask the server for the JSON create form
    if (/json/i.test(ct)) ct = 'application/octet-stream';
    const ow = o.overwrite === false ? undefined : 'true';
    return this.c.request('POST', `${this.base(sessionId)}/${fsPath(path)}` + query({ overwrite: ow }),
      { raw: data, contentType: ct });
  }

  // Raw bytes (a Blob) from /fs/_/download/{path}.
  async download(sessionId, path) {
    const res = await this.c.request('GET', `${this.base(sessionId)}/_/download/${fsPath(path)}`, { response: true });
    return res.blob();
  }

  delete(sessionId, path, o = {}) {
    return this.c.request('DELETE', `${this.base(sessionId)}/${fsPath(path)}` +
      query({ recursive: o.recursive ? 'true' : undefined }));
  }

  mkdir(sessionId, path) {
    return this.c.request('POST', `${this.base(sessionId)}/${fsPath(path)}`, { body: { is_directory: true } });
  }
}

class Agents {
  constructor(c) { this.c = c; }
  list(o = {}) { return this.c.request('GET', '/agents' + query({ search: o.search, tags: o.tags, offset: o.offset, limit: o.limit })); }
  get(idOrName) { return this.c.request('GET', `/agents/${encodeURIComponent(idOrName)}`); }
}

class Models {
  constructor(c) { this.c = c; }
  list(o = {}) { return this.c.request('GET', '/llm-models' + query({ offset: o.offset, limit: o.limit })); }
}

class Images {
  constructor(c) { this.c = c; }

  // upload(file, {sessionId, filename}) -> {id: "img_...", ...}: a
  // multipart POST /images; file is a Blob/File (or bytes with filename).
  upload(file, o = {}) {
    const fd = new FormData();
    const blob = file instanceof Blob ? file : new Blob([file], { type: o.contentType || 'application/octet-stream' });
    fd.append('file', blob, o.filename || file.name || 'image');
    if (o.sessionId) fd.append('session_id', o.sessionId);
    return this.c.request('POST', '/images', { raw: fd });
  }

  get(id) { return this.c.request('GET', `/images/${encodeURIComponent(id)}`); }

  async content(id) {
    const res = await this.c.request('GET', `/images/${encodeURIComponent(id)}/content`, { response: true });
    return res.blob();
  }

  delete(id) { return this.c.request('DELETE', `/images/${encodeURIComponent(id)}`); }
}

class Auth {
  constructor(c) { this.c = c; }
  me() { return this.c.request('GET', '/auth/me'); }
}

export default Everruns;
