// main.js: the chat UI's entry point: login and logout, the theme, the
// layout toggles (sidebar on narrow screens, files panel, tabs), and the
// wiring of the parts (sidebar.js, conversation.js, composer.js,
// files.js, events_tab.js), which share one `app` object.
//
// The API key is kept in memory only, unless "Remember on this device" is
// ticked (then localStorage, removed again on logout). Every request
// goes through the JavaScript client (../sdk/everruns.js) with the key in
// the Authorization header; there are no cookies.

import { Everruns, EverrunsError } from '../sdk/everruns.js';
import { $, errText } from './dom.js';
import { Sidebar } from './sidebar.js';
import { Conversation } from './conversation.js';
import { Composer } from './composer.js';
import { FilesPanel } from './files.js';
import { EventsTab } from './events_tab.js';

const KEY_STORE = 'everruns.apiKey';
const THEME_STORE = 'everruns.theme';

function storage() {
  try { return window.localStorage; } catch (_) { return null; }
}

const app = {
  client: null,
  session: null,

  // A failed request: 401 means the key is gone (revoked): back to login.
  handleError(e, where) {
    if (e instanceof EverrunsError && e.status === 401) {
      logout('Your API key was not accepted any more; log in again.');
      return true;
    }
    if (where) where.textContent = errText(e);
    return false;
  },

  async openSession(id) {
    if (!id) return;
    let s;
    try {
      s = await app.client.sessions.get(id);
    } catch (e) {
      if (!app.handleError(e) && e.status === 404) app.closeSession();
      return;
    }
    app.session = s;
    if (location.hash !== `#${s.id}`) history.replaceState(null, '', `#${s.id}`);
    $('empty').hidden = true;
    $('session-view').hidden = false;
    app.showSession(s);
    app.sidebar.markActive(s.id);
    app.eventsTab.reset();
    app.composer.reset();
    app.files.open(s.id);
    setSidebar(false);
    await app.conv.open(s);
    $('input').focus();
  },

  closeSession() {
    app.conv.close();
    app.files.open(null);
    app.session = null;
    history.replaceState(null, '', location.pathname);
    $('session-view').hidden = true;
    $('empty').hidden = false;
    app.sidebar.markActive(null);
  },

  // title, tags and usage of the current session in the session bar
  showSession(s) {
    $('session-title').textContent = s.title || 'Untitled session';
    const tags = $('session-tags');
    tags.replaceChildren(...(s.tags || []).filter((t) => !t.startsWith('user:')).map((t) => {
      const li = document.createElement('li');
      li.textContent = t;
      return li;
    }));
    app.showUsage(s.usage);
  },

  showUsage(u) {
    $('session-usage').textContent = u && (u.input_tokens || u.output_tokens)
      ? `${u.input_tokens} in / ${u.output_tokens} out tokens` : '';
  },
};

function setSidebar(open) {
  document.body.classList.toggle('sidebar-open', open);
  $('menu-btn').setAttribute('aria-expanded', String(open));
  $('scrim').hidden = !open;
}

function setFiles(open) {
  $('files').hidden = !open;
  $('files-btn').setAttribute('aria-expanded', String(open));
  document.body.classList.toggle('files-open', open);
  if (open) app.files.refresh();
}

function selectTab(which) {
  const chat = which === 'chat';
  for (const [tab, panel, on] of [['tab-chat', 'panel-chat', chat], ['tab-events', 'panel-events', !chat]]) {
    $(tab).setAttribute('aria-selected', String(on));
    $(tab).tabIndex = on ? 0 : -1;
    $(panel).hidden = !on;
  }
  if (!chat) app.eventsTab.show();
}

function applyTheme(t) {
  if (t === 'light' || t === 'dark') document.documentElement.dataset.theme = t;
  else delete document.documentElement.dataset.theme;
}

function toggleTheme() {
  const cur = document.documentElement.dataset.theme ||
    (window.matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light');
  const next = cur === 'dark' ? 'light' : 'dark';
  applyTheme(next);
  const st = storage();
  if (st) st.setItem(THEME_STORE, next);
}

function showLogin(msg) {
  $('app').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = msg || '';
  $('login-key').value = '';
  $('login-key').focus();
}

async function enter(key, remember) {
  // the API is next to the page (behind a proxy under url_prefix, too)
  const client = new Everruns({ apiKey: key, baseUrl: new URL('.', location.href).href });
  await client.auth.me();
  app.client = client;
  const st = storage();
  if (st) {
    if (remember) st.setItem(KEY_STORE, key);
    else st.removeItem(KEY_STORE);
  }
  $('login').hidden = true;
  $('app').hidden = false;
  await app.sidebar.refresh();
  const id = location.hash.slice(1);
  if (/^ses_[0-9a-f]{32}$/.test(id)) await app.openSession(id);
}

function logout(msg) {
  const st = storage();
  if (st) st.removeItem(KEY_STORE);
  if (app.session) app.closeSession();
  app.client = null;
  app.sidebar.clear();
  showLogin(msg);
}

async function onLogin(ev) {
  ev.preventDefault();
  const key = $('login-key').value.trim();
  $('login-error').textContent = '';
  $('login-btn').disabled = true;
  try {
    await enter(key, $('login-remember').checked);
  } catch (e) {
    $('login-error').textContent = e instanceof EverrunsError && e.status === 401
      ? 'That API key was not accepted.' : `Cannot log in: ${errText(e)}`;
  } finally {
    $('login-btn').disabled = false;
  }
}

function init() {
  const st = storage();
  applyTheme(st && st.getItem(THEME_STORE));
  app.sidebar = new Sidebar(app);
  app.conv = new Conversation(app);
  app.composer = new Composer(app);
  app.files = new FilesPanel(app);
  app.eventsTab = new EventsTab(app);

  $('login-form').addEventListener('submit', onLogin);
  $('logout-btn').addEventListener('click', () => logout());
  $('theme-btn').addEventListener('click', toggleTheme);
  $('menu-btn').addEventListener('click', () => setSidebar(!document.body.classList.contains('sidebar-open')));
  $('scrim').addEventListener('click', () => setSidebar(false));
  $('files-btn').addEventListener('click', () => setFiles($('files').hidden));
  $('files-close').addEventListener('click', () => setFiles(false));
  $('tab-chat').addEventListener('click', () => selectTab('chat'));
  $('tab-events').addEventListener('click', () => selectTab('events'));
  document.querySelector('.tabs').addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowLeft' && e.key !== 'ArrowRight') return;
    const next = $('tab-chat').getAttribute('aria-selected') === 'true' ? 'events' : 'chat';
    selectTab(next);
    $(`tab-${next}`).focus();
  });
  window.addEventListener('hashchange', () => {
    const id = location.hash.slice(1);
    if (app.client && /^ses_[0-9a-f]{32}$/.test(id) && (!app.session || app.session.id !== id)) app.openSession(id);
  });

  const saved = st && st.getItem(KEY_STORE);
  if (saved) {
    $('login-remember').checked = true;
    enter(saved, true).catch((e) => {
      if (e instanceof EverrunsError && e.status === 401) {
        st.removeItem(KEY_STORE);
        showLogin('The remembered API key was not accepted; log in again.');
      } else {
        showLogin(`Cannot reach the server: ${errText(e)}`);
      }
    });
  } else {
    showLogin();
  }
}

init();
