// tool_asks.js: the questions a waiting turn asks the person at the UI.
//
//   tool.approval_requested  one card per call: the tool, its arguments,
//                            Approve / Deny with an optional reason
//                            (POST /sessions/{id}/tool-approvals)
//   tool.call_requested      one card per call of a client-side tool: its
//                            arguments and a form for the result, as JSON
//                            or as text, or an error to report
//                            (POST /sessions/{id}/tool-results)
//
// A request card is the tool card of its call (conversation.js keys tool
// cards by call id), so the same card later shows the call running after
// an approval and its result. A card turns read-only, with its outcome,
// when its call is answered (tool.approval_resolved, tool.completed) or
// its turn goes on or ends (turn.resumed, turn.cancelled, turn.failed,
// session.idled). The cards are built from the event log like the rest of
// the conversation, so after a reload the open questions are asked again
// and the answered ones show how they were answered.
//
// Everything from an event (tool names, arguments, reasons) is model or
// user text: it only ever becomes text nodes (dom.js h()).

import { h, errText } from './dom.js';

const STATE_TEXT = {
  approval: 'needs your approval',
  result: 'waiting for your result',
};
// the card's state once its question is over (tool.completed and
// tool.started change it again as the call goes on)
const CLOSED_TEXT = {
  approved: 'approved', denied: 'denied', answered: 'answered', unanswered: 'not answered',
};

export class ToolAsks {
  constructor(conv) {
    this.conv = conv;
    this.reset();
  }

  reset() {
    this.open = new Map(); // call id -> {card, kind, turn, name}, asked now
    this.asked = new Set(); // ids of every call asked about for approval
  }

  // tool.approval_requested / tool.call_requested
  requested(kind, d) {
    const names = new Map();
    for (const s of Array.isArray(d.tool_summaries) ? d.tool_summaries : []) {
      if (s && typeof s.id === 'string' && typeof s.display_name === 'string') names.set(s.id, s.display_name);
    }
    let first = null;
    for (const tc of Array.isArray(d.tool_calls) ? d.tool_calls : []) {
      if (!tc || typeof tc.id !== 'string' || this.open.has(tc.id)) continue;
      // a client-side tool that needed approval first is asked for its
      // result in the same card
      let card = this.conv.tools.get(tc.id);
      if (!card || card.dataset.state === 'success' || card.dataset.state === 'error') {
        card = this.conv.toolCard(tc, names.get(tc.id));
      }
      const name = typeof tc.name === 'string' ? tc.name : 'tool';
      card.dataset.state = 'waiting';
      card.dataset.ask = kind;
      const st = card.querySelector('.tool-state');
      st.dataset.state = 'waiting';
      st.textContent = STATE_TEXT[kind];
      // the arguments are what the person decides on: shown open
      card.querySelector('.tool-args').open = true;
      const form = kind === 'approval' ? this.approvalForm(tc.id, name) : this.resultForm(tc.id, name);
      card.querySelector('.tool-ask').replaceChildren(form);
      this.open.set(tc.id, { card, kind, turn: d.turn_id, name });
      if (kind === 'approval') this.asked.add(tc.id);
      if (!first) first = form;
    }
    if (typeof d.headline === 'string' && d.headline && first) {
      first.prepend(h('p', { class: 'ask-headline', text: d.headline }));
    }
  }

  approvalForm(id, name) {
    const reason = h('input', { class: 'ask-reason', name: 'reason', maxlength: '2000', autocomplete: 'off',
      'aria-label': `Reason for denying ${name} (optional)`, placeholder: 'Reason (optional, sent with a denial)' });
    const err = h('p', { class: 'error', role: 'alert' });
    const deny = h('button', { type: 'submit', class: 'danger ask-deny', value: 'deny', text: 'Deny' });
    const form = h('form', { class: 'ask-form', 'aria-label': `Approve or deny ${name}` },
      h('p', { class: 'ask-text', text: `The agent wants to run ${name}. Allow it?` }),
      reason,
      h('div', { class: 'ask-actions' },
        h('button', { type: 'submit', class: 'primary ask-approve', value: 'approve', text: 'Approve' }), deny),
      err);
    // Enter in the reason denies (the form's default button would approve)
    reason.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.isComposing) {
        e.preventDefault();
        deny.click();
      }
    });
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      // only a press of Approve approves
      const how = e.submitter && e.submitter.value;
      if (how !== 'approve' && how !== 'deny') return;
      const approved = how === 'approve';
      const a = { tool_call_id: id, approved };
      const r = reason.value.trim();
      if (!approved && r) a.reason = r;
      this.send(id, form, err, (c, sid) => c.sessions.submitToolApprovals(sid, [a]));
    });
    return form;
  }

  resultForm(id, name) {
    const kind = h('select', { class: 'ask-kind', name: 'kind', 'aria-label': `Format of the result of ${name}` },
      h('option', { value: 'json', text: 'JSON' }), h('option', { value: 'text', text: 'Text' }));
    const value = h('textarea', { class: 'ask-value', name: 'value', rows: '3', spellcheck: 'false',
      'aria-label': `Result of ${name}, or the error to report`, placeholder: '{"result": ...}' });
    kind.addEventListener('change', () => {
      value.placeholder = kind.value === 'json' ? '{"result": ...}' : 'The result as text';
    });
    const err = h('p', { class: 'error', role: 'alert' });
    const form = h('form', { class: 'ask-form', 'aria-label': `Result of ${name}` },
      h('p', { class: 'ask-text', text: `${name} is a client-side tool: run it and send its result, or report an error.` }),
      h('div', { class: 'ask-row' }, h('span', { class: 'muted', text: 'Result as' }), kind),
      value,
      h('div', { class: 'ask-actions' },
        h('button', { type: 'submit', class: 'primary ask-send', value: 'result', text: 'Send result' }),
        h('button', { type: 'submit', class: 'danger ask-error', value: 'error', text: 'Report an error' })),
      err);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      err.textContent = '';
      const r = { tool_call_id: id };
      if (e.submitter && e.submitter.value === 'error') {
        r.error = value.value.trim() || 'The client reported an error.';
      } else if (kind.value === 'text') {
        r.result = value.value;
      } else {
        try {
          r.result = JSON.parse(value.value);
        } catch (x) {
          err.textContent = `That is not JSON (${x.message}); choose Text to send it as text.`;
          value.focus();
          return;
        }
      }
      this.send(id, form, err, (c, sid) => c.sessions.submitToolResults(sid, [r]));
    });
    return form;
  }

  // Post one answer. The card turns read-only when the answer's events
  // arrive (on the stream, and in the log on a reload), not here: what
  // the server recorded is what the card shows.
  async send(id, form, err, post) {
    const app = this.conv.app;
    const sid = this.conv.sid;
    const controls = [...form.elements];
    err.textContent = '';
    for (const c of controls) c.disabled = true;
    try {
      await post(app.client, sid);
      if (this.open.has(id) && this.conv.sid === sid) {
        form.append(h('p', { class: 'muted ask-sent', text: 'Sent.' }));
      }
    } catch (e) {
      if (this.conv.sid !== sid) return;
      for (const c of controls) c.disabled = false;
      if (!app.handleError(e, err) && e.code) err.textContent = `${errText(e)} (${e.code})`;
    }
  }

  // The call's question is over: the card keeps its arguments and shows
  // the outcome instead of the form.
  close(id, outcome, state) {
    const p = this.open.get(id);
    if (!p) return;
    this.open.delete(id);
    const card = p.card;
    delete card.dataset.ask;
    card.querySelector('.tool-args').open = false;
    card.querySelector('.tool-ask').replaceChildren(h('p', { class: 'tool-outcome', text: outcome }));
    const st = card.querySelector('.tool-state');
    card.dataset.state = state;
    st.dataset.state = state;
    st.textContent = CLOSED_TEXT[state];
  }

  // tool.approval_resolved (the card may have been closed already by the
  // call's tool.completed, should that come first: the decision still
  // shows)
  resolved(d) {
    if (!this.asked.has(d.tool_call_id)) return;
    if (!this.open.has(d.tool_call_id)) {
      const card = this.conv.tools.get(d.tool_call_id);
      if (!card) return;
      this.open.set(d.tool_call_id, { card, kind: 'approval' });
    }
    if (d.approved === true) {
      this.close(d.tool_call_id, 'Approved.', 'approved');
    } else {
      const why = typeof d.reason === 'string' && d.reason ? `Denied: ${d.reason}` : 'Denied.';
      this.close(d.tool_call_id, why, 'denied');
    }
  }

  // tool.completed of a call still asked about: the client's result
  // (source "client"), or the call ended without an answer; conversation.js
  // shows the result or error in the card
  completed(d) {
    const p = this.open.get(d.tool_call_id);
    if (!p) return;
    if (p.kind === 'result' && d.source === 'client') {
      const ok = d.success !== false && !d.error;
      this.close(d.tool_call_id, ok ? 'Answered: see the result below.' : 'Answered with an error.', 'answered');
    } else {
      this.close(d.tool_call_id, 'Not answered.', 'unanswered');
    }
  }

  // The turn went on (turn.resumed) or ended: questions still open in it
  // are no longer asked.
  ended(turnId, outcome) {
    for (const [id, p] of [...this.open]) {
      if (turnId && p.turn && p.turn !== turnId) continue;
      this.close(id, outcome, 'unanswered');
    }
  }

  resumed(turnId) {
    for (const [id, p] of [...this.open]) {
      if (turnId && p.turn && p.turn !== turnId) continue;
      this.close(id, 'Answered.', 'answered');
    }
  }
}
