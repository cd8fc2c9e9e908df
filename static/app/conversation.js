// conversation.js: one session's conversation, built from its events.
//
// open() reads the whole event log (GET /events, pages of 1000), applies
// every event, then streams from the last sequence it applied, so nothing
// between the two is missed; sending a message streams from the
// message's own sequence when no stream is open. The same apply() renders
// history and live events: durable events are applied once each (their
// sequence only grows), and streamed text always shows a delta's
// `accumulated`, the whole text so far, so a stream that resumes after a
// drop (the client reconnects with Last-Event-ID and the server first
// sends what it missed) neither loses nor repeats text.
//
// Rendering: user text as text; agent text as sanitized markdown
// (markdown.js); tool calls as cards keyed by the call id, updated by
// tool.completed; thinking in a collapsed <details>. A bash call's card
// has a terminal: tool.output.delta appends to it as the command runs (the
// first delta of each stream connection holds the output so far, so it
// replaces), and tool.completed shows the final stdout and stderr.
// A turn that waits for the user (status waitingfortoolresults, shown as
// "waiting") asks in its tool cards: approval or a client-side tool's
// result (tool_asks.js).

import { $, h, clear, json, errText } from './dom.js';
import { renderMarkdown } from './markdown.js';
import { ToolAsks } from './tool_asks.js';

const CANCEL_TEXT = 'User requested to cancel the work.';
const WAITING = 'waitingfortoolresults';
const STATUS_TEXT = { active: 'working', [WAITING]: 'waiting' };

function usageText(u) {
  return u ? `${u.input_tokens || 0} in / ${u.output_tokens || 0} out tokens` : '';
}

export class Conversation {
  constructor(app) {
    this.app = app;
    this.log = $('log');
    this.ctrl = null;
    this.sid = null;
    this.asks = new ToolAsks(this);
    this.reset();
    $('stop-btn').addEventListener('click', () => this.cancel());
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && this.sid && this.status === 'active' && !document.querySelector('dialog[open]')) {
        e.preventDefault();
        this.cancel();
      }
    });
  }

  reset() {
    this.lastSeq = 0;
    this.streams = new Map();   // sequence of a *.started event -> {kind, el, body, messageId, done, text}
    this.tools = new Map();     // tool call id -> card
    this.shown = new Set();     // ids of user messages on screen
    this.prevType = '';
    this.status = 'idle';
    this.asks.reset();
  }

  close() {
    if (this.ctrl) this.ctrl.abort();
    this.ctrl = null;
    this.sid = null;
    clear(this.log);
    this.reset();
    this.conn('');
  }

  async open(s) {
    this.close();
    this.sid = s.id;
    const sid = s.id;
    const c = this.app.client;
    try {
      let more = true;
      while (more) {
        const r = await c.events.list(sid, { sinceSequence: this.lastSeq, limit: 1000 });
        if (this.sid !== sid) return;
        for (const ev of r.data) this.apply(ev, true);
        more = r.has_more && r.data.length > 0;
      }
    } catch (e) {
      if (this.sid !== sid) return;
      if (!this.app.handleError(e)) this.note(`Cannot read the conversation: ${errText(e)}`, 'error');
      return;
    }
    // the log is newer than the session object read before it
    this.setStatus(this.status);
    this.scroll(true);
    this.stream(this.lastSeq);
  }

  // Live events from `since` on; one stream at a time.
  stream(since) {
    if (this.ctrl || !this.sid) return;
    const ctrl = new AbortController();
    this.ctrl = ctrl;
    this.streamGen = (this.streamGen || 0) + 1;
    const sid = this.sid;
    const it = this.app.client.events.stream(sid, {
      sinceSequence: since, signal: ctrl.signal, includeControl: true,
      onState: (st, why) => { if (!ctrl.signal.aborted) this.conn(st, why); },
    });
    (async () => {
      try {
        let reason = '';
        for await (const ev of it) {
          if (ctrl.signal.aborted) break;
          if (ev.type === 'disconnecting') reason = (ev.data && ev.data.reason) || '';
          else if (ev.type !== 'connected') this.apply(ev, false);
        }
        // the client ends a stream by itself only when going on is useless
        if (!ctrl.signal.aborted && this.sid === sid) {
          if (reason === 'session_deleted') {
            this.note('This session was deleted.', 'error');
            this.app.sidebar.refresh();
          } else {
            this.note('The live stream was closed (the session is open in too many places); reopen the session to follow it here.', 'error');
          }
        }
      } catch (e) {
        if (!ctrl.signal.aborted && !this.app.handleError(e)) {
          this.note(`The live stream stopped: ${errText(e)}`, 'error');
        }
      } finally {
        if (this.ctrl === ctrl) this.ctrl = null;
      }
    })();
  }

  conn(state, why) {
    const el = $('conn');
    if (state === 'reconnecting') el.textContent = 'Reconnecting…';
    else if (state === 'connecting' && why) el.textContent = 'Connecting…';
    else el.textContent = '';
    el.dataset.state = state || '';
  }

  // idle, active or waitingfortoolresults (a turn waits for answers:
  // Stop still ends it)
  setStatus(st) {
    this.status = st;
    const el = $('status');
    el.dataset.status = st;
    el.textContent = STATUS_TEXT[st] || 'idle';
    const busy = st === 'active' || st === WAITING;
    $('stop-btn').hidden = !busy;
    $('send-btn').hidden = busy;
  }

  get waiting() { return this.status === WAITING; }

  // Send a user message (content: array of parts); the message shows at
  // once from the response. The open stream covers its turn whatever it
  // has seen so far; without one (it stopped on an error), a stream
  // starts from the last event applied, at most the message's sequence,
  // so even an instant reply is not missed. A stream may also have
  // applied the whole turn before the response arrived: then the status
  // is already right.
  async send(content) {
    const c = this.app.client;
    const msg = await c.messages.create(this.sid, { content });
    if (!this.shown.has(msg.id)) this.userMessage(msg, null);
    if (this.lastSeq < msg.sequence) this.setStatus('active');
    this.scroll(true);
    if (!this.ctrl) this.stream(Math.min(this.lastSeq, msg.sequence));
    return msg;
  }

  async cancel() {
    if (!this.sid) return;
    $('stop-btn').disabled = true;
    try {
      await this.app.client.sessions.cancel(this.sid);
    } catch (e) {
      this.app.handleError(e, $('composer-error'));
    } finally {
      $('stop-btn').disabled = false;
    }
  }

  nearBottom() {
    const l = this.log;
    return l.scrollHeight - l.scrollTop - l.clientHeight < 80;
  }

  scroll(force) {
    if (force || this.stick) this.log.scrollTop = this.log.scrollHeight;
  }

  add(el) {
    this.log.append(el);
    return el;
  }

  note(text, kind) {
    return this.add(h('div', { class: `note ${kind || ''}`, role: kind === 'error' ? 'alert' : undefined, text }));
  }

  apply(ev, history) {
    if (typeof ev.sequence === 'number') {
      if (ev.sequence <= this.lastSeq) return;
      this.lastSeq = ev.sequence;
      this.app.eventsTab.add(ev);
    }
    this.stick = history || this.nearBottom();
    const d = ev.data || {};
    switch (ev.type) {
      case 'input.message': this.userMessage(d.message, ev); break;
      case 'session.activated': this.setStatus('active'); break;
      case 'session.idled':
        this.asks.ended(null, 'Not answered: the session is idle.');
        this.finishStreams();
        this.setStatus('idle');
        if (d.usage) this.app.showUsage(d.usage);
        if (!history) this.app.sidebar.refresh();
        break;
      case 'output.message.started': this.startStream(ev, 'text'); break;
      case 'reason.thinking.started': this.startStream(ev, 'thinking'); break;
      case 'output.message.delta':
      case 'reason.thinking.delta': this.delta(d); break;
      case 'output.message.completed': this.completeText(d); break;
      case 'reason.thinking.completed': this.completeThinking(d); break;
      case 'tool.started': this.toolStarted(d); break;
      case 'tool.output.delta': this.toolOutput(d); break;
      case 'tool.completed':
        this.asks.completed(d);
        this.toolCompleted(d);
        break;
      case 'tool.approval_requested':
      case 'tool.call_requested':
        this.asks.requested(ev.type === 'tool.call_requested' ? 'result' : 'approval', d);
        this.setStatus(WAITING);
        if (!history) this.app.sidebar.refresh(); // its waiting mark
        break;
      case 'tool.approval_resolved': this.asks.resolved(d); break;
      case 'turn.resumed':
        this.asks.resumed(d.turn_id);
        this.setStatus('active');
        break;
      case 'turn.completed': this.turnDone(d); break;
      case 'turn.failed':
        this.asks.ended(d.turn_id, 'Not answered: the turn failed.');
        this.finishStreams();
        this.add(h('div', { class: 'turn-error', role: 'alert' },
          h('strong', { text: 'The turn failed: ' }), d.error || 'unknown error',
          d.error_code ? h('code', { text: ` ${d.error_code}` }) : null));
        break;
      case 'turn.cancelled':
        this.asks.ended(d.turn_id, 'Not answered: the turn was cancelled.');
        this.finishStreams();
        this.note('The turn was cancelled.', 'cancelled');
        break;
      case 'file.written': if (!history) this.app.files.changed(); break;
      default: break;
    }
    if (!ev.type.endsWith('.delta')) this.prevType = ev.type;
    this.scroll(false);
  }

  userMessage(m, ev) {
    if (!m) return;
    if (m.id) {
      if (this.shown.has(m.id)) return;
      this.shown.add(m.id);
    }
    const parts = Array.isArray(m.content) ? m.content : [{ type: 'text', text: String(m.content || '') }];
    const text = parts.filter((p) => p.type === 'text').map((p) => p.text).join('\n');
    if (ev && this.prevType === 'turn.cancelled' && text === CANCEL_TEXT) {
      this.note(text, 'cancelled');
      return;
    }
    const body = h('div', { class: 'body' });
    for (const p of parts) {
      if (p.type === 'text') body.append(h('div', { class: 'user-text', text: p.text }));
      else if (p.type === 'image_file') body.append(this.image(p));
      else if (p.type === 'image') body.append(h('span', { class: 'chip', text: 'image' }));
    }
    this.add(h('article', { class: 'msg user', 'aria-label': 'You', dataset: { id: m.id || '' } }, body));
  }

  image(p) {
    const img = h('img', { class: 'thumb', alt: p.filename || 'attached image' });
    this.app.client.images.content(p.image_id).then((blob) => {
      img.src = URL.createObjectURL(blob);
    }).catch(() => { img.alt = `${p.filename || 'image'} (not available)`; });
    return img;
  }

  // output.message.started / reason.thinking.started
  startStream(ev, kind) {
    const d = ev.data || {};
    if (kind === 'text') {
      // a retried LLM call starts over: drop the unfinished attempt
      for (const [seq, s] of this.streams) {
        if (s.kind === 'text' && !s.done && s.turn === ev.context?.turn_id) {
          s.el.remove();
          this.streams.delete(seq);
        }
      }
    }
    let el;
    let body;
    if (kind === 'thinking') {
      body = h('pre', { class: 'thinking-text' });
      el = h('details', { class: 'thinking' }, h('summary', { text: 'Thinking…' }), body);
    } else {
      body = h('div', { class: 'body markdown' });
      el = h('article', { class: 'msg agent streaming', 'aria-label': 'Agent', dataset: { id: d.message_id || '' } }, body);
    }
    this.add(el);
    this.streams.set(ev.sequence, { kind, el, body, messageId: d.message_id, turn: ev.context?.turn_id, done: false, text: '' });
  }

  delta(d) {
    const s = this.streams.get(d.message_sequence);
    if (!s || s.done || typeof d.accumulated !== 'string') return;
    s.text = d.accumulated;
    if (s.kind === 'thinking') {
      s.body.textContent = s.text;
      return;
    }
    if (s.raf) return;
    s.raf = requestAnimationFrame(() => {
      s.raf = 0;
      if (!s.done) {
        s.body.replaceChildren(renderMarkdown(s.text));
        this.scroll(false);
      }
    });
  }

  findStream(kind, pred) {
    let found = null;
    for (const s of this.streams.values()) if (s.kind === kind && !s.done && pred(s)) found = s;
    return found;
  }

  completeText(d) {
    const m = d.message || {};
    let s = this.findStream('text', (x) => x.messageId === m.id) || this.findStream('text', (x) => !x.messageId);
    const parts = Array.isArray(m.content) ? m.content : [];
    const text = parts.filter((p) => p.type === 'text').map((p) => p.text).join('\n\n');
    if (!s) {
      if (!text) return;
      const body = h('div', { class: 'body markdown' });
      const el = this.add(h('article', { class: 'msg agent', 'aria-label': 'Agent', dataset: { id: m.id || '' } }, body));
      s = { kind: 'text', el, body };
    }
    s.done = true;
    s.el.classList.remove('streaming');
    if (!text) {
      s.el.remove(); // only tool calls: the cards show them
      return;
    }
    s.body.replaceChildren(renderMarkdown(text));
  }

  // The turn ended (cancelled, failed, idle): text that was streaming
  // stays as it was, marked as cut short.
  finishStreams() {
    for (const s of this.streams.values()) {
      if (s.done) continue;
      s.done = true;
      if (s.kind === 'thinking') {
        s.el.querySelector('summary').textContent = 'Thinking';
      } else if (!s.text) {
        s.el.remove();
      } else {
        s.el.classList.remove('streaming');
        s.el.classList.add('interrupted');
        s.el.append(h('div', { class: 'meta', text: 'interrupted' }));
      }
    }
  }

  completeThinking(d) {
    const s = this.findStream('thinking', () => true);
    if (!s) return;
    s.done = true;
    s.body.textContent = d.thinking || s.text;
    s.el.querySelector('summary').textContent = 'Thinking';
  }

  // The card of tool call tc ({id, name, arguments}), new and running;
  // tool_asks.js makes request cards with it too.
  toolCard(tc, displayName) {
    const name = typeof tc.name === 'string' ? tc.name : '';
    const state = h('span', { class: 'tool-state', dataset: { state: 'running' }, text: 'running…' });
    const card = h('section', { class: 'tool-card', 'aria-label': `Tool call ${name}`, dataset: { callId: tc.id || '', state: 'running' } },
      h('header', {}, h('span', { class: 'tool-name', text: displayName || name || 'tool' }), state,
        h('span', { class: 'tool-duration' })),
      h('details', { class: 'tool-args' }, h('summary', { text: 'Arguments' }), h('pre', { text: json(tc.arguments) })),
      name === 'bash' ? h('pre', { class: 'tool-terminal', 'aria-label': 'Output', 'aria-live': 'polite' }) : null,
      h('div', { class: 'tool-ask' }),
      h('div', { class: 'tool-result' }));
    this.tools.set(tc.id, card);
    return this.add(card);
  }

  toolStarted(d) {
    const tc = d.tool_call || {};
    const card = this.tools.get(tc.id);
    if (!card || card.dataset.state === 'success' || card.dataset.state === 'error') {
      this.toolCard(tc, d.display_name);
      return;
    }
    // an approved call now runs: its request card shows it
    card.dataset.state = 'running';
    const st = card.querySelector('.tool-state');
    st.dataset.state = 'running';
    st.textContent = 'running…';
  }

  // tool.output.delta: a running command's output, as a terminal shows it
  toolOutput(d) {
    const term = this.tools.get(d.tool_call_id)?.querySelector('.tool-terminal');
    if (!term || typeof d.delta !== 'string') return;
    if (term.dataset.gen !== String(this.streamGen)) {
      term.dataset.gen = String(this.streamGen);
      term.textContent = '';
    }
    term.append(d.stream === 'stderr' ? h('span', { class: 'stderr', text: d.delta }) : d.delta);
    term.scrollTop = term.scrollHeight;
  }

  toolCompleted(d) {
    let card = this.tools.get(d.tool_call_id);
    if (!card) {
      this.toolStarted({ tool_call: { id: d.tool_call_id, name: d.tool_name } });
      card = this.tools.get(d.tool_call_id);
    }
    const ok = d.success !== false && !d.error;
    // a denied call keeps saying so; its result is the denial
    if (card.dataset.state !== 'denied') {
      card.dataset.state = ok ? 'success' : 'error';
      const st = card.querySelector('.tool-state');
      st.dataset.state = card.dataset.state;
      st.textContent = ok ? 'done' : 'error';
    }
    if (typeof d.duration_ms === 'number') card.querySelector('.tool-duration').textContent = `${d.duration_ms} ms`;
    // content parts (the document's shape): their text, read as JSON
    // when it is JSON
    let result = Array.isArray(d.result) ? d.result.map((p) => p.text || '').join('') : d.result;
    if (Array.isArray(d.result)) try { result = JSON.parse(result); } catch { /* text */ }
    const term = card.querySelector('.tool-terminal');
    const r = result;
    if (term && r && typeof r === 'object' && typeof r.stdout === 'string') {
      term.replaceChildren(r.stdout, h('span', { class: 'stderr', text: r.stderr || '' }),
        r.truncated ? h('span', { class: 'cut', text: '\n[output cut]' }) : '',
        h('span', { class: 'exit', text: r.timed_out ? '\n[killed: time limit]'
          : r.exit_code === null ? `\n[${r.signal || 'killed'}]` : `\n[exit ${r.exit_code}]` }));
    }
    const res = card.querySelector('.tool-result');
    const out = ok ? result : (d.error || result);
    res.replaceChildren(h('details', { open: !ok || undefined },
      h('summary', { text: ok ? 'Result' : 'Error' }),
      h('pre', { class: ok ? '' : 'error', text: typeof out === 'string' ? out : json(out) })));
  }

  turnDone(d) {
    const bits = [];
    if (d.usage) bits.push(usageText(d.usage));
    if (typeof d.duration_ms === 'number') bits.push(`${(d.duration_ms / 1000).toFixed(1)} s`);
    if (d.iterations > 1) bits.push(`${d.iterations} steps`);
    if (d.stop_reason && d.stop_reason !== 'end_turn') bits.push(`stopped: ${d.stop_reason}`);
    this.add(h('div', { class: 'turn-usage', text: `Turn: ${bits.join(' · ')}` }));
  }
}
