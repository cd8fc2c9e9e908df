// events_tab.js: the Events tab: the session's durable events as they
// arrive (sequence, type, time, the JSON), drawn only while the tab is
// shown; the newest 2,000 stay on screen.

import { $, h, clear, json } from './dom.js';

const KEEP = 2000;

export class EventsTab {
  constructor(app) {
    this.app = app;
    this.events = [];
    this.drawn = 0;
  }

  reset() {
    this.events = [];
    this.drawn = 0;
    clear($('events-body'));
  }

  add(ev) {
    this.events.push(ev);
    if (this.events.length > KEEP * 2) {
      this.events = this.events.slice(-KEEP);
      this.drawn = 0;
      clear($('events-body'));
    }
    if (!$('panel-events').hidden) this.show();
  }

  show() {
    const body = $('events-body');
    const from = Math.max(this.drawn, this.events.length - KEEP);
    for (const ev of this.events.slice(from)) {
      body.append(h('tr', { dataset: { sequence: ev.sequence } },
        h('td', { class: 'num', text: ev.sequence }),
        h('td', {}, h('code', { text: ev.type })),
        h('td', {}, h('time', { datetime: ev.ts, text: new Date(ev.ts).toLocaleTimeString() })),
        h('td', {}, h('details', {}, h('summary', { text: 'JSON' }), h('pre', { text: json(ev) })))));
    }
    this.drawn = this.events.length;
    while (body.rows.length > KEEP) body.deleteRow(0);
  }
}
