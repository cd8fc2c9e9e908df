// sidebar.js: the session list (newest first, as GET /sessions returns
// it), search, and the session dialogs: new session (agent picker and an
// optional model override, title, tags), rename/tags, delete, and the
// global chat button.

import { $, h, clear, fmtTime, errText } from './dom.js';

function parseTags(s) {
  return String(s || '').split(',').map((t) => t.trim()).filter(Boolean);
}

export class Sidebar {
  constructor(app) {
    this.app = app;
    this.seq = 0;
    this.timer = null;
    $('search').addEventListener('input', () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.refresh(), 250);
    });
    $('new-session-btn').addEventListener('click', () => this.openNew());
    $('chat-btn').addEventListener('click', () => this.globalChat());
    $('new-form').addEventListener('submit', (e) => this.create(e));
    $('new-cancel').addEventListener('click', () => $('new-dialog').close());
    $('edit-btn').addEventListener('click', () => this.openEdit());
    $('edit-form').addEventListener('submit', (e) => this.saveEdit(e));
    $('edit-cancel').addEventListener('click', () => $('edit-dialog').close());
    $('delete-btn').addEventListener('click', () => this.remove());
  }

  clear() {
    clear($('session-list'));
    $('search').value = '';
  }

  async refresh() {
    const app = this.app;
    if (!app.client) return;
    const mine = ++this.seq;
    let r;
    try {
      r = await app.client.sessions.list({ search: $('search').value.trim() || undefined, limit: 100 });
    } catch (e) {
      app.handleError(e);
      return;
    }
    if (mine !== this.seq) return; // a newer search answered first
    const list = $('session-list');
    clear(list);
    for (const s of r.data) {
      const title = s.title || 'Untitled session';
      const tags = (s.tags || []).filter((t) => !t.startsWith('user:'));
      const btn = h('button', {
        type: 'button', class: 'session-item', dataset: { id: s.id },
        onclick: () => app.openSession(s.id),
      },
      h('span', { class: 'session-name', text: title }),
      h('span', { class: 'session-meta' },
        h('time', { datetime: s.created_at, text: fmtTime(s.created_at) }),
        s.status === 'active' ? h('span', { class: 'dot', title: 'working', 'aria-label': 'working' }) : null,
        s.status === 'waitingfortoolresults'
          ? h('span', { class: 'dot waiting', title: 'waiting for you', 'aria-label': 'waiting for you' }) : null,
        tags.map((t) => h('span', { class: 'tag', text: t }))));
      list.append(h('li', {}, btn));
    }
    $('sessions-empty').hidden = r.data.length > 0;
    this.markActive(app.session && app.session.id);
  }

  markActive(id) {
    for (const b of document.querySelectorAll('.session-item')) {
      if (b.dataset.id === id) b.setAttribute('aria-current', 'page');
      else b.removeAttribute('aria-current');
    }
  }

  async openNew() {
    const c = this.app.client;
    $('new-error').textContent = '';
    $('new-name').value = '';
    $('new-tags').value = '';
    const agentSel = $('new-agent');
    const modelSel = $('new-model');
    clear(agentSel);
    clear(modelSel);
    $('new-dialog').showModal();
    try {
      const [agents, models] = await Promise.all([c.agents.list({ limit: 100 }), c.models.list({ limit: 100 })]);
      for (const a of agents.data)
        agentSel.append(h('option', { value: a.id, text: a.display_name ? `${a.display_name} (${a.name})` : a.name }));
      modelSel.append(h('option', { value: '', text: "The agent's default" }));
      for (const m of models.data.filter((x) => x.enabled !== false))
        modelSel.append(h('option', { value: m.id, text: `${m.display_name || m.model_id} (${m.provider_name || m.model_id})` }));
      if (!agents.data.length) $('new-error').textContent = 'This organization has no agents yet.';
    } catch (e) {
      this.app.handleError(e, $('new-error'));
    }
  }

  async create(e) {
    e.preventDefault();
    const app = this.app;
    const btn = $('new-create');
    btn.disabled = true;
    try {
      const s = await app.client.sessions.create({
        agentId: $('new-agent').value,
        modelId: $('new-model').value || undefined,
        title: $('new-name').value.trim() || undefined,
        tags: parseTags($('new-tags').value),
      });
      $('new-dialog').close();
      await this.refresh();
      await app.openSession(s.id);
    } catch (err) {
      app.handleError(err, $('new-error'));
    } finally {
      btn.disabled = false;
    }
  }

  async globalChat() {
    const app = this.app;
    try {
      const s = await app.client.sessions.chat();
      await this.refresh();
      await app.openSession(s.id);
    } catch (e) {
      app.handleError(e);
    }
  }

  openEdit() {
    const s = this.app.session;
    if (!s) return;
    $('edit-error').textContent = '';
    $('edit-name').value = s.title || '';
    $('edit-tags').value = (s.tags || []).join(', ');
    $('edit-dialog').showModal();
    $('edit-name').focus();
  }

  async saveEdit(e) {
    e.preventDefault();
    const app = this.app;
    const s = app.session;
    if (!s) return;
    try {
      const u = await app.client.sessions.update(s.id, { title: $('edit-name').value.trim(), tags: parseTags($('edit-tags').value) });
      app.session = { ...s, ...u };
      app.showSession(app.session);
      $('edit-dialog').close();
      await this.refresh();
    } catch (err) {
      app.handleError(err, $('edit-error'));
    }
  }

  async remove() {
    const app = this.app;
    const s = app.session;
    if (!s) return;
    $('confirm-text').textContent = `Delete "${s.title || 'Untitled session'}" with its messages and files? This cannot be undone.`;
    const d = $('confirm-dialog');
    d.returnValue = '';
    d.showModal();
    await new Promise((resolve) => d.addEventListener('close', resolve, { once: true }));
    if (d.returnValue !== 'yes') return;
    try {
      await app.client.sessions.delete(s.id);
    } catch (err) {
      if (app.handleError(err)) return;
      $('composer-error').textContent = `Cannot delete: ${errText(err)}`;
      return;
    }
    app.closeSession();
    await this.refresh();
  }
}
