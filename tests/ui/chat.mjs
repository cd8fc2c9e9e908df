// chat.mjs: the chat UI in headless Chromium (the Debian package, driven
// by playwright-core) against the real stack. One page goes through the
// checks in order: log in; create, rename, search a session; a streamed
// llmsim reply; a tool-call card and thinking; Stop (button and Esc); a
// failed turn; a turn that waits: approval cards (approve, deny with a
// reason) and a client-side tool's result form (JSON, text, an error),
// rebuilt read-only after a reload, Stop while waiting; the Events tab;
// XSS in a message and in a model reply;
// files (when the /fs routes exist); image attach (when /images exists);
// everruns-sse killed mid-reply and restarted; 360 px and dark layouts,
// accessible names; a session longer than a page of history and than the
// Events tab's 2,000 rows; delete and the global chat. Screenshots go to
// tests/out/ui/.

import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { assert, env, sdk, run, waitFor, sleep, Skip, routeMissing } from './lib.mjs';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');
const { Everruns } = await sdk();
const client = new Everruns({ apiKey: env.key, baseUrl: env.base });

const CHROMIUM = process.env.EVR_CHROMIUM || ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
const SHOTS = path.join(env.out, 'ui');
fs.mkdirSync(SHOTS, { recursive: true });

const pageErrors = [];
const dialogs = [];
const cspViolations = [];
let browser;
let page;
let sessionId;
let agent;

async function shot(name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

const text = (sel) => page.locator(sel).first().textContent();
const statusIs = (st, timeout = 15000) => page.waitForFunction((s) => document.getElementById('status').dataset.status === s, st, { timeout });
const agentTexts = () => page.$$eval('#log .msg.agent .body', (els) => els.map((e) => e.textContent));

async function send(message) {
  await page.fill('#input', message);
  await page.press('#input', 'Enter');
}

// Send and wait for the end of the turn (its usage line, cancel note or
// error box) and the idle status.
async function sendTurn(message) {
  const ends = () => page.locator('#log .turn-usage, #log .note.cancelled, #log .turn-error').count();
  const before = await ends();
  await send(message);
  await page.waitForFunction((n) => document.querySelectorAll('#log .turn-usage, #log .note.cancelled, #log .turn-error').length > n,
    before, { timeout: 20000 });
  await statusIs('idle');
}

// A check that works in sessions of its own: whatever happens, the page
// goes back to the session the other checks share.
function ownSession(fn) {
  return async () => {
    try {
      await fn();
    } finally {
      await page.evaluate((id) => { location.hash = id; }, sessionId);
      await page.waitForFunction(() => document.getElementById('session-title').textContent === 'UI test renamed');
    }
  };
}

// Open a session by its URL and wait for its title.
async function openSession(id, title) {
  await page.evaluate((x) => { location.hash = x; }, id);
  await page.waitForFunction((t) => document.getElementById('session-title').textContent === t, title);
}

async function login(key, remember) {
  await page.locator('#login:not([hidden])').waitFor();
  await page.fill('#login-key', key);
  await page.setChecked('#login-remember', remember);
  await page.click('#login-btn');
}

// The API's text of the last agent message of the session.
async function lastAgentText(sid) {
  const msgs = (await client.messages.list(sid)).data.filter((m) => m.role === 'agent');
  return msgs[msgs.length - 1].content.filter((p) => p.type === 'text').map((p) => p.text).join('\n\n');
}

// a 1x1 PNG
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');

const tokens = (n) => Array.from({ length: n }, (_, i) => `token${i + 1}`).join(' ');

const checks = [
  ['login', async () => {
    assert.ok(CHROMIUM, 'chromium is not installed (conf/install-deps --test)');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await ctx.newPage();
    page.setDefaultTimeout(15000);
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
    page.on('console', (m) => { if (/Content.Security.Policy/i.test(m.text())) cspViolations.push(m.text()); });
    agent = await client.request('POST', '/agents', { body: { name: 'ui-tools', display_name: 'UI tools',
      system_prompt: 'You test the UI.', capabilities: [{ ref: 'test_math' }, { ref: 'session_file_system' }, { ref: 'virtual_bash' }] } });

    await page.goto(`${env.base}/`);
    await shot('01-login');
    await login(`evr_${'0'.repeat(64)}`, false);
    await page.waitForFunction(() => /not accepted/.test(document.getElementById('login-error').textContent));
    await login(env.key, false);
    await page.locator('#app:not([hidden])').waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem('everruns.apiKey')), null, 'not remembered');
    await page.reload();
    await page.locator('#login:not([hidden])').waitFor();
    await login(env.key, true);
    await page.locator('#app:not([hidden])').waitFor();
    await page.reload();
    await page.locator('#app:not([hidden])').waitFor({ timeout: 5000 });
    await page.click('#logout-btn');
    await page.locator('#login:not([hidden])').waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem('everruns.apiKey')), null, 'forgotten on logout');
    await login(env.key, false);
    await page.locator('#app:not([hidden])').waitFor();
  }],

  ['create_session', async () => {
    const model = (await client.models.list()).data.find((m) => m.model_id === 'llmsim');
    await page.click('#new-session-btn');
    await page.locator('#new-dialog[open]').waitFor();
    await page.waitForFunction(() => document.querySelectorAll('#new-agent option').length >= 2);
    await page.selectOption('#new-agent', agent.id);
    await page.selectOption('#new-model', model.id);
    await page.fill('#new-name', 'UI test');
    await page.fill('#new-tags', 'ui, e2e');
    await shot('02-new-session');
    await page.click('#new-create');
    await page.locator('#session-view:not([hidden])').waitFor();
    sessionId = await page.evaluate(() => location.hash.slice(1));
    assert.match(sessionId, /^ses_[0-9a-f]{32}$/);
    const s = await client.sessions.get(sessionId);
    assert.equal(s.agent_id, agent.id);
    assert.equal(s.model_id, model.id);
    assert.equal(s.title, 'UI test');
    assert.deepEqual(s.tags, ['ui', 'e2e']);
    assert.equal(await text('#session-title'), 'UI test');
    assert.equal(await page.locator('.session-item').first().getAttribute('data-id'), sessionId, 'newest first');

    await page.click('#edit-btn');
    await page.fill('#edit-name', 'UI test renamed');
    await page.fill('#edit-tags', 'ui, renamed');
    await page.click('#edit-save');
    await page.waitForFunction(() => document.getElementById('session-title').textContent === 'UI test renamed');
    assert.deepEqual((await client.sessions.get(sessionId)).tags, ['ui', 'renamed']);
    await page.waitForFunction(() => document.querySelector('.session-item .session-name').textContent === 'UI test renamed');

    await client.sessions.create({ agentId: agent.id, title: 'another one' });
    await page.fill('#search', 'renamed');
    await page.waitForFunction(() => document.querySelectorAll('.session-item').length === 1);
    await page.fill('#search', 'no such session at all');
    await page.waitForFunction(() => document.querySelectorAll('.session-item').length === 0);
    await page.fill('#search', '');
    await page.waitForFunction(() => document.querySelectorAll('.session-item').length >= 2);
  }],

  ['streamed_reply', async () => {
    // Shift+Enter is a new line, not a send
    await page.fill('#input', 'line one');
    await page.press('#input', 'Shift+Enter');
    await page.type('#input', 'line two');
    assert.equal(await page.inputValue('#input'), 'line one\nline two');
    assert.equal((await client.messages.list(sessionId)).data.length, 0);

    await send('#tokens 40\n#rate 20');
    // part of the reply is on screen while the turn runs
    const partial = await page.waitForFunction(() => {
      const b = [...document.querySelectorAll('#log .msg.agent.streaming .body')].pop();
      const t = b ? b.textContent : '';
      return /token3\b/.test(t) && !/token40/.test(t) ? t : null;
    }, null, { timeout: 10000 });
    assert.ok((await partial.jsonValue()).length > 0);
    assert.equal(await text('#status'), 'working');
    assert.ok(await page.isVisible('#stop-btn'));
    await shot('03-streaming');
    await statusIs('idle');
    const texts = await agentTexts();
    assert.equal(texts[texts.length - 1].trim(), tokens(40));
    assert.equal(texts[texts.length - 1].trim(), await lastAgentText(sessionId));
    assert.match(await page.locator('.turn-usage').last().textContent(), /\d+ in \/ \d+ out tokens/);
    assert.ok(await page.locator('.msg.user', { hasText: '#tokens 40' }).count() === 1);
  }],

  ['tool_card_and_thinking', async () => {
    await send('#think\n#tool calculate {"operation":"multiply","a":6,"b":7}');
    const card = page.locator('.tool-card').last();
    await card.waitFor();
    await page.waitForFunction(() => {
      const c = [...document.querySelectorAll('.tool-card')].pop();
      return c && c.dataset.state === 'success';
    }, null, { timeout: 10000 });
    await page.locator('#log .turn-usage').nth(1).waitFor();
    assert.equal(await card.locator('.tool-name').textContent(), 'calculate');
    assert.match(await card.locator('.tool-args pre').textContent(), /"operation": "multiply"/);
    assert.match(await card.locator('.tool-result pre').textContent(), /"result": 42/);
    assert.match(await card.locator('.tool-duration').textContent(), /^\d+ ms$/);
    await statusIs('idle');
    const thinking = page.locator('details.thinking').last();
    assert.equal(await thinking.getAttribute('open'), null, 'thinking is collapsed');
    assert.equal(await thinking.locator('summary').textContent(), 'Thinking');
    assert.match(await thinking.locator('pre').textContent(), /step by step/);
    await card.locator('.tool-result summary').click();
    await shot('04-tool-card');
    // a failing tool shows its error
    await sendTurn('#tool calculate {"operation":"divide","a":1,"b":0}');
    assert.equal(await page.locator('.tool-card').last().getAttribute('data-state'), 'error');
    assert.match(await page.locator('.tool-card').last().locator('.tool-result pre.error').textContent(), /Division by zero/);
  }],

  ['bash_terminal', async () => {
    const sandbox = (await (await fetch(`${env.base}/health`)).json()).sandbox;
    const before = await page.locator('.tool-card').count();
    await send('#tool bash {"command":"for i in 1 2 3 4 5 6; do echo line$i; sleep 0.4; done; echo oops >&2"}');
    // this turn's card, not the last check's
    await page.waitForFunction((n) => document.querySelectorAll('.tool-card').length > n, before,
      { timeout: 15000 });
    const card = page.locator('.tool-card').nth(before);
    if (sandbox !== 'ok') {
      // a host without the sandbox's namespaces (a chroot, say): the card
      // shows the tool's error, which says so
      await page.waitForFunction((n) => document.querySelectorAll('.tool-card')[n].dataset.state === 'error',
        before, { timeout: 15000 });
      assert.match(await card.locator('.tool-result pre.error').textContent(), /sandbox is unavailable/);
      await statusIs('idle');
      return;
    }
    // the output shows while the command runs, in a monospaced terminal
    await page.waitForFunction(() => {
      const c = [...document.querySelectorAll('.tool-card')].pop();
      const t = c && c.querySelector('.tool-terminal');
      return t && c.dataset.state === 'running' && /line2/.test(t.textContent);
    }, null, { timeout: 15000 });
    assert.match(await card.locator('.tool-terminal').evaluate((e) => getComputedStyle(e).fontFamily), /mono/i);
    await shot('04b-bash-running');
    await page.waitForFunction(() => [...document.querySelectorAll('.tool-card')].pop().dataset.state === 'success',
      null, { timeout: 15000 });
    const term = await card.locator('.tool-terminal').textContent();
    assert.match(term, /line1\nline2\nline3\nline4\nline5\nline6\n/);
    assert.match(term, /oops/);
    assert.match(term, /\[exit 0\]/);
    assert.equal(await card.locator('.tool-terminal .stderr').first().textContent(), 'oops\n');
    await statusIs('idle');
  }],

  ['stop', async () => {
    for (const how of ['button', 'escape']) {
      await send('#tokens 500\n#rate 10');
      await statusIs('active');
      await page.waitForFunction(() => /token2\b/.test(([...document.querySelectorAll('#log .msg.agent.streaming .body')].pop() || {}).textContent || ''), null, { timeout: 10000 });
      const t0 = Date.now();
      if (how === 'button') await page.click('#stop-btn');
      else await page.press('#input', 'Escape');
      await statusIs('idle');
      assert.ok(Date.now() - t0 < 5000, `stopped in ${Date.now() - t0} ms`);
      assert.ok(await page.isHidden('#stop-btn'));
      await page.locator('.note.cancelled', { hasText: 'cancelled' }).last().waitFor();
      assert.equal(await page.locator('#log .msg.agent.streaming').count(), 0, 'no reply left streaming');
      assert.equal(await page.locator('#log .msg.agent.interrupted').count(), how === 'button' ? 1 : 2);
      assert.equal((await client.sessions.get(sessionId)).status, 'idle');
    }
    await shot('05-stopped');
  }],

  ['turn_error', async () => {
    // a model whose provider does not answer (nothing listens on port 9)
    const prv = await client.request('POST', '/llm-providers', { body: { name: 'unreachable',
      provider_type: 'openai_completions', base_url: 'http://127.0.0.1:9/v1', api_key: 'none' } });
    const mod = await client.request('POST', `/llm-providers/${prv.id}/models`, { body: { model_id: 'gone', capabilities: ['chat'] } });
    const s = await client.sessions.create({ agentId: agent.id, modelId: mod.id, title: 'failing model' });
    await page.evaluate((id) => { location.hash = id; }, s.id);
    await page.waitForFunction(() => document.getElementById('session-title').textContent === 'failing model');
    await sendTurn('hello?');
    const box = page.locator('#log .turn-error').last();
    assert.equal(await box.getAttribute('role'), 'alert');
    const failed = (await client.events.list(s.id, { types: ['turn.failed'] })).data.pop();
    assert.equal(await box.textContent(), `The turn failed: ${failed.data.error} ${failed.data.error_code}`);
    await shot('06-turn-failed');
    await page.evaluate((id) => { location.hash = id; }, sessionId);
    await page.waitForFunction(() => document.getElementById('session-title').textContent === 'UI test renamed');
    await page.locator('#log .turn-usage').first().waitFor();
  }],

  ['approval_card', ownSession(async () => {
    const s = await client.sessions.create({ agentId: agent.id, title: 'approvals', tools: [
      { type: 'builtin', name: 'calculate', policy: 'requires_approval' },
      { type: 'builtin', name: 'write_file', policy: 'requires_approval' }] });
    await openSession(s.id, 'approvals');
    const xss = '<img src=x onerror=window.__xss=7>'; // no quote: JSON shows it as it is
    await send(`#tool calculate {"operation":"multiply","a":6,"b":7}\n#tool write_file {"path":"/denied.txt","content":${JSON.stringify(xss)}}\n#tool calculate {"operation":"add","a":1,"b":1}`);
    await page.waitForFunction(() => document.querySelectorAll('#log .tool-card[data-ask="approval"]').length === 3);
    await statusIs('waitingfortoolresults');
    assert.equal(await text('#status'), 'waiting');
    assert.ok(await page.isVisible('#stop-btn'), 'Stop ends a waiting turn');
    const req = (await client.events.list(s.id, { types: ['tool.approval_requested'] })).data[0].data;
    const [calcId, writeId, addId] = req.tool_calls.map((c) => c.id);
    const calc = page.locator(`.tool-card[data-call-id="${calcId}"]`);
    const write = page.locator(`.tool-card[data-call-id="${writeId}"]`);
    const add = page.locator(`.tool-card[data-call-id="${addId}"]`);
    assert.equal(await calc.locator('.tool-name').textContent(), 'calculate');
    assert.equal(await calc.locator('.tool-state').textContent(), 'needs your approval');
    const shown = await calc.locator('.tool-args pre').textContent();
    assert.deepEqual(JSON.parse(shown), { operation: 'multiply', a: 6, b: 7 });
    assert.match(shown, /^\{\n  "/, 'arguments pretty-printed');
    assert.ok(await calc.locator('.tool-args pre').isVisible(), 'arguments shown open');
    assert.ok((await write.locator('.tool-args pre').textContent()).includes(xss), 'the arguments as text');
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assert.equal(await page.locator('#log img:not(.thumb)').count(), 0);
    await shot('06a-approval-cards');

    // a reload asks again: the cards come back from the event log
    await page.reload();
    await login(env.key, false);
    await page.waitForFunction(() => document.querySelectorAll('#log .tool-card[data-ask="approval"] form').length === 3);
    await statusIs('waitingfortoolresults');

    await calc.locator('button', { hasText: 'Approve' }).click();
    await page.waitForFunction((id) => document.querySelector(`.tool-card[data-call-id="${id}"]`).dataset.state === 'approved', calcId);
    assert.equal(await calc.locator('form').count(), 0, 'read-only once answered');
    assert.equal(await calc.locator('.tool-outcome').textContent(), 'Approved.');
    assert.equal((await client.sessions.get(s.id)).status, 'waitingfortoolresults', 'the other calls are still pending');
    await add.locator('button', { hasText: 'Deny' }).click();
    await page.waitForFunction((id) => document.querySelector(`.tool-card[data-call-id="${id}"]`).dataset.state === 'denied', addId);
    assert.equal(await add.locator('.tool-outcome').textContent(), 'Denied.');
    // Enter in the reason denies, it never approves
    await write.locator('input').fill('not in this test');
    await write.locator('input').press('Enter');
    await statusIs('idle', 20000);
    await page.waitForFunction((id) => document.querySelector(`.tool-card[data-call-id="${id}"]`).dataset.state === 'success', calcId);
    assert.match(await calc.locator('.tool-result pre').textContent(), /42/);
    assert.equal(await write.getAttribute('data-state'), 'denied');
    assert.equal(await write.locator('.tool-outcome').textContent(), 'Denied: not in this test');
    assert.match(await write.locator('.tool-result pre.error').textContent(), /not in this test/);
    const resolved = (await client.events.list(s.id, { types: ['tool.approval_resolved'] })).data.map((e) => e.data);
    assert.deepEqual(resolved.map((d) => [d.tool_call_id, d.approved, d.reason || null]),
      [[calcId, true, null], [addId, false, null], [writeId, false, 'not in this test']]);
    await assert.rejects(client.sessionFs.read(s.id, '/denied.txt'), (e) => e.status === 404);
    await shot('06b-approval-answered');

    // and after a reload the answered cards are read-only with their outcome
    await page.reload();
    await login(env.key, false);
    await page.waitForFunction((id) => document.querySelector(`.tool-card[data-call-id="${id}"] .tool-outcome`), writeId);
    assert.equal(await page.locator('#log .tool-card form').count(), 0);
    assert.equal(await write.locator('.tool-outcome').textContent(), 'Denied: not in this test');
    assert.equal(await calc.locator('.tool-outcome').textContent(), 'Approved.');
    assert.equal(await calc.getAttribute('data-state'), 'success');
    await statusIs('idle');
  })],

  ['client_tool_form', ownSession(async () => {
    const s = await client.sessions.create({ agentId: agent.id, title: 'client tools', tools: [{ type: 'client_side',
      name: 'lookup_stock', description: 'The price of a stock',
      parameters: { type: 'object', properties: { sym: { type: 'string' } }, required: ['sym'] } }] });
    await openSession(s.id, 'client tools');
    await send('#tool lookup_stock {"sym":"ACME"}\n#tool lookup_stock {"sym":"XYZ"}\n#tool lookup_stock {"sym":"ERR"}');
    await page.waitForFunction(() => document.querySelectorAll('#log .tool-card[data-ask="result"]').length === 3);
    await statusIs('waitingfortoolresults');
    // the session list marks it as waiting for you
    await page.locator(`.session-item[data-id="${s.id}"] .dot.waiting`).waitFor();
    const ids = (await client.events.list(s.id, { types: ['tool.call_requested'] })).data[0].data.tool_calls.map((c) => c.id);
    const card = (i) => page.locator(`.tool-card[data-call-id="${ids[i]}"]`);
    assert.equal(await card(0).locator('.tool-state').textContent(), 'waiting for your result');
    assert.match(await card(1).locator('.tool-args pre').textContent(), /"sym": "XYZ"/);
    await shot('06c-client-tool-forms');
    // a new message waits for the answers
    const users = (await client.messages.list(s.id)).data.length;
    await send('are you there?');
    await page.waitForFunction(() => /waiting for your answer/.test(document.getElementById('composer-error').textContent));
    assert.equal((await client.messages.list(s.id)).data.length, users);
    await page.fill('#input', '');
    // JSON that is not JSON is not sent
    await card(0).locator('textarea').fill('{"price": 12.5');
    await card(0).locator('button', { hasText: 'Send result' }).click();
    await page.waitForFunction((id) => /not JSON/.test(document.querySelector(`.tool-card[data-call-id="${id}"] .error`).textContent), ids[0]);
    assert.equal((await client.events.list(s.id, { types: ['tool.completed'] })).data.length, 0);
    await card(0).locator('textarea').fill('{"price": 12.5}');
    await card(0).locator('button', { hasText: 'Send result' }).click();
    await page.waitForFunction((id) => document.querySelector(`.tool-card[data-call-id="${id}"]`).dataset.state === 'success', ids[0]);
    assert.match(await card(0).locator('.tool-result pre').textContent(), /"price": 12\.5/);
    assert.equal(await card(0).locator('form').count(), 0);
    // text
    await card(1).locator('select').selectOption('text');
    await card(1).locator('textarea').fill('about 7 dollars');
    await card(1).locator('button', { hasText: 'Send result' }).click();
    // an error
    await card(2).locator('textarea').fill('market closed');
    await card(2).locator('button', { hasText: 'Report an error' }).click();
    await statusIs('idle', 20000);
    await page.waitForFunction((id) => document.querySelector(`.tool-card[data-call-id="${id}"]`).dataset.state === 'error', ids[2]);
    assert.match(await card(2).locator('.tool-result pre.error').textContent(), /market closed/);
    assert.match(await card(1).locator('.tool-result pre').textContent(), /about 7 dollars/);
    const done = Object.fromEntries((await client.events.list(s.id, { types: ['tool.completed'] })).data
      .map((e) => [e.data.tool_call_id, e.data]));
    assert.deepEqual(ids.map((id) => [done[id].success, done[id].source]), [[true, 'client'], [true, 'client'], [false, 'client']]);
    assert.match(JSON.stringify(done[ids[0]].result), /12\.5/);
    assert.match(JSON.stringify(done[ids[1]].result), /about 7 dollars/);
    assert.match(done[ids[2]].error, /market closed/);
    await page.locator('#log .turn-usage').last().waitFor();
    await shot('06d-client-tool-answered');

    // Stop while waiting: the question is over, unanswered
    await send('#tool lookup_stock {"sym":"LATE"}');
    await page.waitForFunction(() => document.querySelectorAll('#log .tool-card[data-ask="result"]').length === 1);
    await statusIs('waitingfortoolresults');
    await page.click('#stop-btn');
    await statusIs('idle');
    const late = page.locator('#log .tool-card').last();
    assert.equal(await late.getAttribute('data-state'), 'unanswered');
    assert.equal(await late.locator('.tool-outcome').textContent(), 'Not answered: the turn was cancelled.');
    assert.equal(await page.locator('#log .tool-card form').count(), 0);
  })],

  ['approval_then_result', ownSession(async () => {
    // a client-side tool that asks first: approval, then the result, in one card
    const s = await client.sessions.create({ agentId: agent.id, title: 'ask then run', tools: [{ type: 'client_side',
      name: 'lookup_stock', description: 'The price of a stock', policy: 'requires_approval',
      parameters: { type: 'object', properties: { sym: { type: 'string' } } } }] });
    await openSession(s.id, 'ask then run');
    await send('#tool lookup_stock {"sym":"ACME"}');
    await page.waitForFunction(() => document.querySelectorAll('#log .tool-card[data-ask="approval"]').length === 1);
    const id = await page.locator('#log .tool-card').first().getAttribute('data-call-id');
    await page.locator('#log .tool-card button', { hasText: 'Approve' }).click();
    await page.waitForFunction(() => document.querySelectorAll('#log .tool-card[data-ask="result"]').length === 1);
    assert.equal(await page.locator('#log .tool-card').count(), 1, 'the same card');
    const card = page.locator(`.tool-card[data-call-id="${id}"]`);
    await card.locator('textarea').fill('{"price": 3}');
    await card.locator('button', { hasText: 'Send result' }).click();
    await statusIs('idle', 20000);
    await page.waitForFunction((x) => document.querySelector(`.tool-card[data-call-id="${x}"]`).dataset.state === 'success', id);
    assert.match(await card.locator('.tool-result pre').textContent(), /"price": 3/);
  })],

  ['events_tab', async () => {
    await page.click('#tab-events');
    await page.locator('#panel-events:not([hidden])').waitFor();
    const log = (await client.events.list(sessionId)).data;
    await page.waitForFunction((n) => document.querySelectorAll('#events-body tr').length === n, log.length);
    const first = await page.$$eval('#events-body tr:first-child td', (tds) => tds.slice(0, 2).map((t) => t.textContent));
    assert.deepEqual(first, ['1', 'session.started']);
    const last = await page.$$eval('#events-body tr:last-child td', (tds) => tds.slice(0, 2).map((t) => t.textContent));
    assert.deepEqual(last, [String(log[log.length - 1].sequence), log[log.length - 1].type]);
    await page.locator('#events-body tr:last-child summary').click();
    assert.match(await page.locator('#events-body tr:last-child pre').textContent(), /"session_id"/);
    await shot('06-events');
    await page.click('#tab-chat');
    await page.locator('#panel-chat:not([hidden])').waitFor();
  }],

  ['xss_renders_as_text', async () => {
    const payload = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script><svg onload="window.__xss=3"></svg> [click](javascript:window.__xss=4)';
    await sendTurn(payload);
    await sendTurn('#text <img src=y onerror=window.__xss=5> **bold** <iframe src=javascript:window.__xss=6></iframe>');
    await sleep(300);
    const found = await page.evaluate(() => ({
      xss: window.__xss,
      injected: document.querySelectorAll('#log img:not(.thumb), #log script, #log svg, #log iframe, #log [onerror], #log [onload], #log a[href^="javascript"]').length,
    }));
    assert.equal(found.xss, undefined, 'no script ran');
    assert.equal(found.injected, 0, 'no element was injected');
    assert.deepEqual(dialogs, []);
    assert.ok(await page.locator('.msg.user .user-text', { hasText: '<img src=x onerror="window.__xss=1">' }).count() === 1,
      'the user message shows the markup as text');
    const texts = await agentTexts();
    assert.ok(texts[texts.length - 2].includes('<img src=x onerror="window.__xss=1">'), texts[texts.length - 2]);
    assert.ok(texts[texts.length - 1].includes('<img src=y onerror=window.__xss=5>'), texts[texts.length - 1]);
    assert.equal(await page.locator('#log .msg.agent strong', { hasText: 'bold' }).count(), 1, 'markdown still renders');
    await shot('07-xss');
  }],

  ['files', async () => {
    if (await routeMissing(`/api/v1/sessions/${sessionId}/fs`)) throw new Skip('the /fs routes are not on this server');
    await page.click('#files-btn');
    await page.locator('#files:not([hidden])').waitFor();
    await page.setInputFiles('#files-input', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello from the UI\n') });
    await page.locator('#file-list li[data-path="/notes.txt"]').waitFor();
    // drag and drop
    const dt = await page.evaluateHandle(() => {
      const d = new DataTransfer();
      d.items.add(new File(['# dropped\n'], 'dropped.md', { type: 'text/markdown' }));
      return d;
    });
    await page.dispatchEvent('#files', 'dragover', { dataTransfer: dt });
    await page.dispatchEvent('#files', 'drop', { dataTransfer: dt });
    await page.locator('#file-list li[data-path="/dropped.md"]').waitFor();
    assert.equal(await client.sessionFs.read(sessionId, '/dropped.md'), '# dropped\n');
    await page.click('#file-list li[data-path="/notes.txt"] .file-name');
    await page.locator('#file-view:not([hidden])').waitFor();
    assert.equal(await text('#file-view-body pre'), 'hello from the UI\n');
    await shot('08-files');
    // an image file opens as an image
    await page.setInputFiles('#files-input', { name: 'dot.png', mimeType: 'image/png', buffer: PNG });
    await page.click('#file-list li[data-path="/dot.png"] .file-name');
    await page.waitForFunction(() => { const i = document.querySelector('#file-view-body img'); return i && i.complete && i.naturalWidth === 1; });
    const download = page.waitForEvent('download');
    await page.click('#file-list li[data-path="/notes.txt"] button[aria-label="Download /notes.txt"]');
    const dl = await download;
    assert.equal(dl.suggestedFilename(), 'notes.txt');
    await page.click('#file-list li[data-path="/notes.txt"] button[aria-label="Delete /notes.txt"]');
    await page.locator('#file-list li[data-path="/notes.txt"]').waitFor({ state: 'detached' });
    await assert.rejects(client.sessionFs.read(sessionId, '/notes.txt'), (e) => e.status === 404);
    // the agent writes a file (file.written): the list refreshes by itself
    await sendTurn('#tool write_file {"path":"/reports/agent.md","content":"# written by the agent"}');
    await page.locator('#file-list li[data-path="/reports/agent.md"]').waitFor({ timeout: 5000 });
    // and so does a write through the API from elsewhere
    await client.sessionFs.upload(sessionId, '/from-api.txt', 'x');
    await page.locator('#file-list li[data-path="/from-api.txt"]').waitFor({ timeout: 5000 });
    await page.click('#file-list li[data-path="/reports/agent.md"] .file-name');
    await page.waitForFunction(() => document.getElementById('file-view-name').textContent === '/reports/agent.md');
    assert.equal(await text('#file-view-body pre'), '# written by the agent');
    await shot('08-files-agent');
    await page.click('#files-close');
  }],

  ['image_attach', async () => {
    if (await routeMissing('/api/v1/images')) throw new Skip('the /images routes are not on this server');
    await page.setInputFiles('#image-input', { name: 'dot.png', mimeType: 'image/png', buffer: PNG });
    const li = page.locator('#attachments li[data-image-id]');
    await li.waitFor();
    const imageId = await li.getAttribute('data-image-id');
    assert.match(imageId, /^img_[0-9a-f]{32}$/);
    assert.ok(await page.locator('#attachments img').evaluate((i) => i.complete && i.naturalWidth === 1), 'preview shown');
    await shot('09-image-attached');
    await sendTurn('What is in this image?');
    await page.waitForFunction(() => { const i = document.querySelector('#log .msg.user img.thumb'); return i && i.complete && i.naturalWidth === 1; });
    const m = (await client.messages.list(sessionId)).data.filter((x) => x.role === 'user').pop();
    assert.deepEqual(m.content.map((p) => p.type), ['text', 'image_file']);
    assert.equal(m.content[1].image_id, imageId);
    assert.equal(await page.locator('#attachments li').count(), 0);
  }],

  ['sse_killed_mid_reply', async () => {
    assert.ok(env.home, 'EVR_HOME is not set');
    await send('#tokens 60\n#rate 15');
    await page.waitForFunction(() => /token5\b/.test(([...document.querySelectorAll('#log .msg.agent.streaming .body')].pop() || {}).textContent || ''), null, { timeout: 10000 });
    const pid = Number(fs.readFileSync(path.join(env.home, 'run', 'sse.pid'), 'utf8').split(/\s+/)[0]);
    process.kill(pid, 'SIGKILL');
    await page.waitForFunction(() => document.getElementById('conn').dataset.state === 'reconnecting', null, { timeout: 10000 });
    await shot('10-reconnecting');
    execFileSync('bash', [path.join(env.srcdir, 'conf', 'everrunsctl'), 'start'], {
      env: { ...process.env, EVERRUNS_HOME: env.home }, stdio: 'ignore', timeout: 120000,
    });
    // the client backs off up to 10 s between attempts
    await statusIs('idle', 30000);
    await page.waitForFunction(() => !document.querySelector('#log .msg.agent.streaming'), null, { timeout: 15000 });
    const texts = await agentTexts();
    const last = texts[texts.length - 1].trim();
    assert.equal(last, tokens(60), 'the whole reply, once');
    assert.equal(last, await lastAgentText(sessionId));
    assert.equal(texts.filter((t) => t.includes('token60')).length, 1, 'one bubble for the reply');
    await page.waitForFunction(() => !document.getElementById('conn').textContent);
    await shot('11-after-sse-restart');
  }],

  ['narrow_dark_accessible', async () => {
    // every control has an accessible name
    const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, input, select, textarea')]
      .filter((el) => el.type !== 'file' && el.type !== 'hidden')
      .filter((el) => !(el.getAttribute('aria-label') || (el.labels && el.labels.length) || (el.tagName === 'BUTTON' && el.textContent.trim())))
      .map((el) => el.outerHTML.slice(0, 80)));
    assert.deepEqual(unnamed, []);
    await page.emulateMedia({ colorScheme: 'dark' });
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const rgb = bg.match(/\d+/g).map(Number);
    assert.ok(rgb[0] + rgb[1] + rgb[2] < 150, `dark background (${bg})`);
    await shot('12-dark');
    await page.click('#theme-btn');
    const bg2 = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.ok(bg2.match(/\d+/g).map(Number).reduce((a, b) => a + b) > 600, `the toggle makes it light (${bg2})`);
    await page.click('#theme-btn');
    await page.setViewportSize({ width: 360, height: 740 });
    await sleep(200);
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 360), 'no horizontal scrolling at 360 px');
    assert.ok(await page.isVisible('#input'));
    assert.ok(await page.isVisible('#send-btn'));
    const sb = await page.locator('#sidebar').boundingBox();
    assert.ok(!sb || sb.x + sb.width <= 0, 'the session list is off screen');
    await shot('13-narrow-dark');
    await page.click('#menu-btn');
    await page.waitForFunction(() => document.getElementById('sidebar').getBoundingClientRect().left >= 0);
    await shot('14-narrow-sessions');
    await page.click('#scrim', { position: { x: 340, y: 400 } });
    await page.evaluate(() => { localStorage.removeItem('everruns.theme'); delete document.documentElement.dataset.theme; });
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 360, height: 740 });
    await shot('15-narrow-light');
    await page.setViewportSize({ width: 1280, height: 800 });
  }],

  ['long_session', async () => {
    // more than one page of history (GET /events gives 1,000 at a time)
    // and more events than the Events tab keeps on screen (2,000)
    const prv = (await client.request('GET', '/llm-providers')).data.find((p) => p.provider_type === 'llmsim');
    const instant = await client.request('POST', `/llm-providers/${prv.id}/models`,
      { body: { model_id: 'llmsim-instant', capabilities: ['chat', 'tools'] } });
    const s = await client.sessions.create({ agentId: agent.id, modelId: instant.id, title: 'long session' });
    const calls = Array.from({ length: 50 }, (_, i) => `#tool calculate {"operation":"add","a":${i},"b":1}`).join('\n');
    let last = 0;
    while (last < 2100) {
      const m = await client.messages.create(s.id, calls);
      for await (const ev of client.events.stream(s.id, { sinceSequence: m.sequence, types: ['session.idled'] })) {
        last = ev.sequence;
        break;
      }
    }
    await page.evaluate((id) => { location.hash = id; }, s.id);
    await page.waitForFunction(() => document.getElementById('session-title').textContent === 'long session');
    await page.waitForFunction((n) => document.querySelectorAll('#log .turn-usage').length === n,
      (await client.messages.list(s.id)).data.filter((x) => x.role === 'user').length, { timeout: 30000 });
    assert.equal(await page.locator('#log .tool-card[data-state="success"]').count(),
      (await client.events.list(s.id, { types: ['tool.completed'] })).data.length);
    await page.click('#tab-events');
    await page.waitForFunction(() => document.querySelectorAll('#events-body tr').length === 2000);
    const seqs = await page.$$eval('#events-body tr', (rows) => [rows[0].dataset.sequence, rows[rows.length - 1].dataset.sequence].map(Number));
    assert.deepEqual(seqs, [last - 1999, last]);
    await page.click('#tab-chat');
    // an instant reply, possibly streamed before the POST answers
    for (const w of ['quick', 'quicker']) {
      await sendTurn(`#text ${w}`);
      assert.equal((await agentTexts()).pop().trim(), w);
    }
    await page.evaluate((id) => { location.hash = id; }, sessionId);
    await page.waitForFunction(() => document.getElementById('session-title').textContent === 'UI test renamed');
  }],

  ['deleted_elsewhere', async () => {
    const s = await client.sessions.create({ agentId: agent.id, title: 'short-lived' });
    await page.evaluate((id) => { location.hash = id; }, s.id);
    await page.waitForFunction(() => document.getElementById('session-title').textContent === 'short-lived');
    await page.waitForFunction(() => !document.getElementById('conn').textContent);
    await sleep(300); // the stream is open
    await client.sessions.delete(s.id);
    await page.locator('#log .note.error', { hasText: 'This session was deleted.' }).waitFor();
    await page.waitForFunction((id) => !document.querySelector(`.session-item[data-id="${id}"]`), s.id);
    await page.evaluate((id) => { location.hash = id; }, sessionId);
    await page.waitForFunction(() => document.getElementById('session-title').textContent === 'UI test renamed');
  }],

  ['delete_and_global_chat', async () => {
    await page.click('#delete-btn');
    await page.locator('#confirm-dialog[open]').waitFor();
    await page.click('#confirm-yes');
    await page.locator('#empty:not([hidden])').waitFor();
    await assert.rejects(client.sessions.get(sessionId), (e) => e.status === 404);
    await page.waitForFunction((id) => !document.querySelector(`.session-item[data-id="${id}"]`), sessionId);
    await page.click('#chat-btn');
    await page.locator('#session-view:not([hidden])').waitFor();
    const id = await page.evaluate(() => location.hash.slice(1));
    const s = await client.sessions.get(id);
    assert.ok(s.tags.includes('global-chat'));
    await sendTurn('hello global');
    const texts = await agentTexts();
    assert.equal(texts[texts.length - 1].trim(), 'You said: hello global');
    await shot('16-global-chat');
  }],

  ['no_page_errors', async () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(dialogs, []);
    assert.deepEqual(cspViolations, []);
  }],
];

const failed = await run(checks, async (name) => { if (page) await shot(`failed-${name}`); });
if (browser) await browser.close();
// exit once stdout is written: a fetch stream the client has let go of can
// keep Node 18's event loop alive (undici) after every check is done
const code = failed ? 1 : 0;
process.stdout.write('', () => process.exit(code));
