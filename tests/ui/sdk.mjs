// sdk.mjs: the JavaScript client (static/sdk/everruns.js) in Node against
// the real stack: the guide's calls, streaming a turn from the message's
// sequence, filters, resuming after dropped connections without gap or
// duplicate, idle-timeout reconnects, cancel, the end of a stream when its
// session is deleted, errors, and the files and images routes; a turn
// that waits: sessions.submitToolApprovals and submitToolResults, with the
// server's refusals as EverrunsError codes.

import { assert, env, sdk, run, step, waitFor, Skip, routeMissing } from './lib.mjs';

const { Everruns, EverrunsError } = await sdk();
const client = new Everruns({ apiKey: env.key, baseUrl: env.base });

let agent;
let model;

async function newSession(extra = {}) {
  return client.sessions.create({ agentId: agent.id, title: 'sdk test', ...extra });
}

// Every event of one turn, streamed from the message's sequence.
async function turn(sessionId, text, opts = {}) {
  const msg = await client.messages.create(sessionId, text);
  const events = [];
  for await (const ev of client.events.stream(sessionId, { sinceSequence: msg.sequence, ...opts })) {
    events.push(ev);
    if (ev.type === 'session.idled') break;
  }
  return { msg, events };
}

function durable(events) {
  return events.filter((e) => typeof e.sequence === 'number');
}

function agentText(events) {
  const done = events.filter((e) => e.type === 'output.message.completed').pop();
  return done.data.message.content.filter((p) => p.type === 'text').map((p) => p.text).join('');
}

// a fetch whose SSE bodies break after `cut` bytes, as a dropped network
// connection does; it counts the streams it opened
function droppingFetch(cut) {
  const f = async (url, init) => {
    const res = await fetch(url, init);
    if (!/\/sse(\?|$)/.test(String(url)) || !res.ok) return res;
    f.opened++;
    const reader = res.body.getReader();
    let seen = 0;
    const body = new ReadableStream({
      async pull(ctrl) {
        const { value, done } = await reader.read();
        if (done) { ctrl.close(); return; }
        seen += value.length;
        if (seen > cut) {
          ctrl.enqueue(value.subarray(0, value.length - (seen - cut)));
          reader.cancel().catch(() => {});
          ctrl.error(new TypeError('network connection lost'));
          return;
        }
        ctrl.enqueue(value);
      },
      cancel() { reader.cancel().catch(() => {}); },
    });
    return new Response(body, { status: res.status, headers: res.headers });
  };
  f.opened = 0;
  return f;
}

const LOOKUP = { type: 'client_side', name: 'lookup_stock', description: 'The price of a stock',
  parameters: { type: 'object', properties: { sym: { type: 'string' } }, required: ['sym'] } };

// Stream a session from `since` until `stop(ev)` is true; the events.
async function until(sessionId, since, stop) {
  const events = [];
  for await (const ev of client.events.stream(sessionId, { sinceSequence: since })) {
    events.push(ev);
    if (stop(ev)) break;
  }
  return events;
}

const refused = (status, code) => (e) => e instanceof EverrunsError && e.status === status && e.code === code;

const checks = [
  // sessions: create, list, get, update, delete (the guide)
  ['sessions', async () => {
    agent = await client.agents.get('assistant');
    model = (await client.models.list()).data[0];
    const s = await client.sessions.create({
      agentId: agent.id, title: 'Q1 Sales Analysis', tags: ['sales', 'analytics'], modelId: model.id,
    });
    assert.match(s.id, /^ses_[0-9a-f]{32}$/);
    assert.equal(s.title, 'Q1 Sales Analysis');
    assert.deepEqual(s.tags, ['sales', 'analytics']);
    assert.equal(s.model_id, model.id);
    assert.equal(s.status, 'idle');
    const second = await newSession();
    const list = await client.sessions.list({ limit: 10 });
    assert.deepEqual(list.data.slice(0, 2).map((x) => x.id), [second.id, s.id], 'newest first');
    assert.equal((await client.sessions.list({ tags: ['analytics'] })).data.length, 1);
    assert.equal((await client.sessions.list({ search: 'Sales Analysis' })).data[0].id, s.id);
    assert.equal((await client.sessions.get(s.id)).title, 'Q1 Sales Analysis');
    const u = await client.sessions.update(s.id, { title: 'Q1 Sales Analysis - Complete', tags: ['sales', 'completed'] });
    assert.equal(u.title, 'Q1 Sales Analysis - Complete');
    assert.deepEqual(u.tags, ['sales', 'completed']);
    assert.equal(await client.sessions.delete(s.id), null);
    await assert.rejects(client.sessions.get(s.id), (e) => e instanceof EverrunsError && e.status === 404);
    const chat = await client.sessions.chat();
    assert.equal((await client.sessions.chat()).id, chat.id, 'one global chat session');
    assert.ok(chat.tags.includes('global-chat'));
  }],

  // errors: EverrunsError with status and code
  ['errors', async () => {
    const bad = new Everruns({ apiKey: 'evr_' + '0'.repeat(64), baseUrl: `${env.base}/api/v1` });
    await assert.rejects(bad.sessions.list(), (e) => e instanceof EverrunsError && e.status === 401 && e.code === 'unauthorized');
    await assert.rejects(client.sessions.create({ title: 'no agent' }),
      (e) => e.status === 400 && /agent_id|harness_id/.test(e.message));
    await assert.rejects(client.sessions.create({ agentId: agent.id, modelId: 'mod_' + '0'.repeat(32) }),
      (e) => e.status === 404);
  }],

  // messages.create + events.stream from the message sequence: the whole turn, deltas that add up
  ['stream_turn', async () => {
    const s = await newSession();
    const { msg, events } = await turn(s.id, '#tokens 30\n#rate 60');
    assert.equal(msg.role, 'user');
    assert.deepEqual(durable(events).map((e) => e.type), ['session.activated', 'turn.started', 'reason.started',
      'output.message.started', 'output.message.completed', 'reason.completed', 'turn.completed', 'session.idled']);
    const seqs = durable(events).map((e) => e.sequence);
    assert.equal(seqs[0], msg.sequence + 1);
    seqs.forEach((q, i) => assert.equal(q, seqs[0] + i, 'no gap'));
    const deltas = events.filter((e) => e.type === 'output.message.delta');
    assert.ok(deltas.length >= 2, `streamed in pieces (${deltas.length} deltas)`);
    assert.equal(deltas.map((d) => d.data.delta).join(''), agentText(events));
    assert.equal(deltas[deltas.length - 1].data.accumulated, agentText(events));
    // an instant reply is not missed either
    const again = await turn(s.id, '#text instant');
    assert.equal(agentText(again.events), 'instant');
  }],

  // events.stream filters: types and exclude
  ['filters', async () => {
    const s = await newSession();
    const msg = await client.messages.create(s.id, 'filtered');
    const got = [];
    for await (const ev of client.events.stream(s.id, { sinceSequence: 0, types: ['input.message', 'session.idled'] })) {
      got.push(ev.type);
      if (ev.type === 'session.idled') break;
    }
    assert.deepEqual(got, ['input.message', 'session.idled']);
    const ex = await client.events.list(s.id, { sinceSequence: msg.sequence, exclude: ['reason.started', 'reason.completed'] });
    assert.ok(ex.data.length > 3);
    assert.ok(ex.data.every((e) => !e.type.startsWith('reason.')));
  }],

  // events.stream resumes after dropped connections: no gap, no duplicate, complete text
  ['resume_after_drops', async () => {
    const s = await client.sessions.create({ agentId: agent.id, capabilities: [{ ref: 'test_math' }] });
    const f = droppingFetch(3000); // more than the largest frame, or no progress
    const c2 = new Everruns({ apiKey: env.key, baseUrl: env.base, fetch: f });
    const calls = Array.from({ length: 8 }, (_, i) => `#tool calculate {"operation":"add","a":${i},"b":1}`).join('\n');
    const msg = await client.messages.create(s.id, `${calls}\n#tokens 40\n#rate 80`);
    const states = [];
    const events = [];
    for await (const ev of c2.events.stream(s.id, { sinceSequence: msg.sequence, onState: (st) => states.push(st) })) {
      events.push(ev);
      if (ev.type === 'session.idled') break;
    }
    assert.ok(f.opened >= 5, `reconnected (${f.opened} streams)`);
    assert.ok(states.includes('reconnecting'));
    const seqs = durable(events).map((e) => e.sequence);
    const log = (await client.events.list(s.id, { sinceSequence: msg.sequence })).data.map((e) => e.sequence);
    assert.deepEqual(seqs, log, 'exactly the logged events, in order');
    const text = agentText(events);
    const deltas = events.filter((e) => e.type === 'output.message.delta');
    for (const d of deltas) assert.ok(text.startsWith(d.data.accumulated), 'accumulated is a prefix of the final text');
  }],

  // events.stream reconnects after an idle timeout and still delivers
  ['idle_timeout', async () => {
    const s = await newSession();
    const states = [];
    const ctrl = new AbortController();
    const it = client.events.stream(s.id, { sinceSequence: 1, idleTimeoutMs: 400, signal: ctrl.signal, onState: (st) => states.push(st) });
    const got = [];
    const reader = (async () => {
      for await (const ev of it) {
        got.push(ev.type);
        if (ev.type === 'session.idled') break;
      }
    })();
    await waitFor(() => states.filter((x) => x === 'reconnecting').length >= 2, { timeout: 8000, what: 'idle reconnects' });
    await client.messages.create(s.id, 'after the reconnects');
    await reader;
    assert.equal(got[0], 'input.message');
    assert.equal(got.filter((t) => t === 'input.message').length, 1);
    assert.ok(got.includes('turn.completed'));
    assert.equal(states[states.length - 1], 'closed');
  }],

  // sessions.cancel stops a running turn
  ['cancel', async () => {
    const s = await newSession();
    const msg = await client.messages.create(s.id, '#tokens 400\n#rate 20');
    const got = [];
    for await (const ev of client.events.stream(s.id, { sinceSequence: msg.sequence })) {
      got.push(ev.type);
      if (ev.type === 'output.message.delta' && got.filter((t) => t === 'output.message.delta').length === 2) {
        const r = await client.sessions.cancel(s.id);
        assert.equal(r.status, 'cancelled');
      }
      if (ev.type === 'session.idled') break;
    }
    assert.ok(got.includes('turn.cancelled'));
    assert.equal((await client.sessions.get(s.id)).status, 'idle');
    assert.equal((await client.sessions.cancel(s.id)).status, 'no_op');
  }],

  // events.stream ends when the session is deleted; an abort ends it too
  ['end_on_delete', async () => {
    step('create session');
    const s = await newSession();
    const got = [];
    const it = client.events.stream(s.id, { includeControl: true });
    const done = (async () => { for await (const ev of it) got.push(ev); })();
    step(`${s.id}: wait for connected`);
    await waitFor(() => got.length >= 1, { what: 'connected' });
    step(`${s.id}: delete`);
    await client.sessions.delete(s.id);
    step(`${s.id}: deleted; wait for the stream's end (got ${got.map((e) => e.type)})`);
    await done;
    assert.equal(got[0].type, 'connected');
    assert.equal(got[got.length - 1].type, 'disconnecting');
    assert.equal(got[got.length - 1].data.reason, 'session_deleted');
    step('abort a stream');
    const s2 = await newSession();
    const ctrl = new AbortController();
    const it2 = client.events.stream(s2.id, { signal: ctrl.signal });
    setTimeout(() => ctrl.abort(), 300);
    const t0 = Date.now();
    for await (const ev of it2) assert.fail(`no event expected, got ${ev.type}`);
    assert.ok(Date.now() - t0 < 5000);
    step('stream of a missing session');
    await assert.rejects(async () => { for await (const ev of client.events.stream('ses_' + '0'.repeat(32))) assert.fail(ev.type); },
      (e) => e instanceof EverrunsError && e.status === 404);
  }],

  // sessionFs: upload, list, read, delete (the guide)
  ['session_fs', async () => {
    const s = await newSession();
    if (await routeMissing(`/api/v1/sessions/${s.id}/fs`)) throw new Skip('the /fs routes are not on this server');
    const csv = 'region,total\nnorth,10\nsouth,20\n';
    await client.sessionFs.upload(s.id, 'sales.csv', csv, { contentType: 'text/csv' });
    await client.sessionFs.upload(s.id, '/data/blob.bin', new Uint8Array([0, 255, 1, 254]));
    const list = await client.sessionFs.list(s.id, '/', { recursive: true });
    const paths = list.map((f) => f.path);
    assert.ok(paths.includes('/sales.csv'), JSON.stringify(paths));
    assert.ok(paths.includes('/data/blob.bin'), JSON.stringify(paths));
    assert.equal(await client.sessionFs.read(s.id, 'sales.csv'), csv);
    assert.deepEqual([...await client.sessionFs.read(s.id, '/data/blob.bin')], [0, 255, 1, 254]);
    const blob = await client.sessionFs.download(s.id, 'sales.csv');
    assert.equal(await blob.text(), csv);
    await client.sessionFs.delete(s.id, 'sales.csv');
    await assert.rejects(client.sessionFs.read(s.id, 'sales.csv'), (e) => e.status === 404);
  }],

  // a call that needs approval: the turn waits; one approved, one denied
  ['tool_approvals', async () => {
    const s = await client.sessions.create({ agentId: agent.id, capabilities: [{ ref: 'test_math' }],
      tools: [{ type: 'builtin', name: 'calculate', policy: 'requires_approval' }] });
    step('send the message');
    const msg = await client.messages.create(s.id,
      '#tool calculate {"operation":"add","a":2,"b":3}\n#tool calculate {"operation":"multiply","a":6,"b":7}');
    step('wait for tool.approval_requested');
    const before = await until(s.id, msg.sequence, (ev) => ev.type === 'tool.approval_requested');
    const req = before[before.length - 1];
    const [first, second] = req.data.tool_calls.map((c) => c.id);
    assert.deepEqual(req.data.tool_calls.map((c) => c.name), ['calculate', 'calculate']);
    assert.deepEqual(req.data.tool_calls[1].arguments, { operation: 'multiply', a: 6, b: 7 });
    await waitFor(async () => (await client.sessions.get(s.id)).status === 'waitingfortoolresults', { what: 'waiting status' });
    step('answers');
    await assert.rejects(client.sessions.submitToolApprovals(s.id, [{ toolCallId: 'call_nosuchcall', approved: true }]),
      refused(400, 'unknown_tool_call'));
    await assert.rejects(client.sessions.submitToolResults(s.id, [{ toolCallId: first, result: 5 }]), refused(400, 'wrong_kind'));
    const r1 = await client.sessions.submitToolApprovals(s.id, [{ toolCallId: first, approved: true }]);
    assert.deepEqual(r1, { accepted: 1, status: 'waitingfortoolresults' });
    await assert.rejects(client.sessions.submitToolApprovals(s.id, [{ tool_call_id: first, approved: false }]),
      refused(409, 'already_answered'));
    const r2 = await client.sessions.submitToolApprovals(s.id, [{ tool_call_id: second, approved: false, reason: 'not today' }]);
    assert.equal(r2.accepted, 1);
    assert.notEqual(r2.status, 'waitingfortoolresults');
    step('the turn goes on to its end');
    const after = await until(s.id, req.sequence, (ev) => ev.type === 'session.idled');
    const types = durable(after).map((e) => e.type);
    assert.ok(types.includes('turn.resumed'), types.join(' '));
    assert.ok(types.includes('turn.completed'), types.join(' '));
    const resolved = after.filter((e) => e.type === 'tool.approval_resolved').map((e) => e.data);
    assert.deepEqual(resolved.map((d) => [d.tool_call_id, d.approved]), [[first, true], [second, false]]);
    assert.equal(resolved[1].reason, 'not today');
    const done = Object.fromEntries(after.filter((e) => e.type === 'tool.completed').map((e) => [e.data.tool_call_id, e.data]));
    assert.equal(done[first].success, true);
    assert.match(JSON.stringify(done[first].result), /\b5\b/);
    assert.equal(done[second].success, false);
    assert.match(done[second].error, /not today/);
    await assert.rejects(client.sessions.submitToolApprovals(s.id, [{ toolCallId: second, approved: true }]),
      refused(409, 'not_waiting'));
  }],

  // a client-side tool: the turn waits for the client's results
  ['tool_results', async () => {
    const s = await client.sessions.create({ agentId: agent.id, capabilities: [{ ref: 'test_math' }], tools: [LOOKUP] });
    assert.deepEqual((await client.sessions.get(s.id)).tools.map((t) => t.name), ['lookup_stock']);
    step('send the message');
    const msg = await client.messages.create(s.id,
      '#tool lookup_stock {"sym":"ACME"}\n#tool lookup_stock {"sym":"XYZ"}\n#tool calculate {"operation":"add","a":1,"b":1}');
    step('wait for tool.call_requested');
    const before = await until(s.id, msg.sequence, (ev) => ev.type === 'tool.call_requested');
    const req = before[before.length - 1];
    assert.deepEqual(req.data.tool_calls.map((c) => c.name), ['lookup_stock', 'lookup_stock'], 'only the client\'s calls');
    assert.deepEqual(req.data.tool_calls.map((c) => c.arguments.sym), ['ACME', 'XYZ']);
    const [a, b] = req.data.tool_calls.map((c) => c.id);
    await waitFor(async () => (await client.sessions.get(s.id)).status === 'waitingfortoolresults', { what: 'waiting status' });
    step('answers');
    await assert.rejects(client.sessions.submitToolResults(s.id, [{ toolCallId: a, result: 1 }, { toolCallId: a, result: 2 }]),
      refused(400, 'duplicate_tool_call'));
    await assert.rejects(client.sessions.submitToolApprovals(s.id, [{ toolCallId: a, approved: true }]), refused(400, 'wrong_kind'));
    await assert.rejects(client.sessions.submitToolResults('ses_' + '0'.repeat(32), [{ toolCallId: a, result: 1 }]),
      (e) => e instanceof EverrunsError && e.status === 404);
    const r = await client.sessions.submitToolResults(s.id, [{ toolCallId: a, result: { price: 12.5 } },
      { tool_call_id: b, error: 'market closed' }]);
    assert.equal(r.accepted, 2);
    assert.notEqual(r.status, 'waitingfortoolresults');
    step('the turn goes on to its end');
    const after = await until(s.id, req.sequence, (ev) => ev.type === 'session.idled');
    const done = Object.fromEntries(after.filter((e) => e.type === 'tool.completed').map((e) => [e.data.tool_call_id, e.data]));
    assert.equal(done[a].success, true);
    assert.equal(done[a].source, 'client');
    assert.match(JSON.stringify(done[a].result), /12\.5/);
    assert.equal(done[b].success, false);
    assert.match(done[b].error, /market closed/);
    assert.ok(durable(after).some((e) => e.type === 'turn.completed'));
    await assert.rejects(client.sessions.submitToolResults(s.id, [{ toolCallId: a, result: 1 }]), refused(409, 'not_waiting'));
  }],

  // images.upload and an image_file part
  ['images', async () => {
    if (await routeMissing('/api/v1/images')) throw new Skip('the /images routes are not on this server');
    const s = await newSession();
    // a 1x1 PNG
    const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');
    const img = await client.images.upload(new Blob([png], { type: 'image/png' }), { sessionId: s.id, filename: 'dot.png' });
    assert.match(img.id, /^img_[0-9a-f]{32}$/);
    const { msg } = await turn(s.id, { content: [{ type: 'text', text: 'What is in this image?' },
      { type: 'image_file', image_id: img.id, filename: 'dot.png' }] });
    assert.equal(msg.content[1].type, 'image_file');
    assert.equal(msg.content[1].image_id, img.id);
    const back = new Uint8Array(await (await client.images.content(img.id)).arrayBuffer());
    assert.deepEqual([...back], [...png]);
  }],
];

// exit once stdout is written: a fetch stream the client has let go of can
// keep Node 18's event loop alive (undici) after every check is done
const code = (await run(checks)) ? 1 : 0;
process.stdout.write('', () => process.exit(code));
