// markdown.js: model text -> sanitized DOM.
//
// marked (Debian libjs-marked) turns markdown into HTML and DOMPurify
// (Debian node-dompurify) sanitizes it; conf/everrunsctl copies both into
// www/vendor/ and index.html loads them before the app. Raw HTML in the
// text is escaped by marked's renderer (a model that writes <img ...>
// shows those characters), and DOMPurify removes anything active that
// markdown itself could produce (javascript: links and the like). Without
// either library the text is shown as plain text, never parsed as HTML.

let configured = false;

function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

function ready() {
  const { marked, DOMPurify } = window;
  if (!marked || !DOMPurify || typeof marked.parse !== 'function' || typeof DOMPurify.sanitize !== 'function')
    return false;
  if (!configured) {
    marked.use({ gfm: true, breaks: true, headerIds: false, mangle: false,
      renderer: { html: (html) => escapeHtml(typeof html === 'string' ? html : (html && html.text) || '') } });
    DOMPurify.addHook('afterSanitizeAttributes', (node) => {
      if (node.tagName === 'A' && node.getAttribute('href')) {
        node.setAttribute('target', '_blank');
        node.setAttribute('rel', 'noopener noreferrer');
      }
    });
    configured = true;
  }
  return true;
}

function plain(src) {
  const f = document.createDocumentFragment();
  const p = document.createElement('p');
  p.className = 'plain';
  p.textContent = src;
  f.append(p);
  return f;
}

// A DocumentFragment with the rendered text; code blocks get a Copy button.
export function renderMarkdown(text) {
  const src = String(text || '');
  if (!ready()) return plain(src);
  let frag;
  try {
    frag = window.DOMPurify.sanitize(window.marked.parse(src), {
      RETURN_DOM_FRAGMENT: true,
      FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'iframe'],
      FORBID_ATTR: ['style', 'id', 'name'],
    });
  } catch (e) {
    console.error('markdown rendering failed, showing plain text:', e);
    return plain(src);
  }
  for (const pre of frag.querySelectorAll('pre')) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'copy';
    b.textContent = 'Copy';
    b.setAttribute('aria-label', 'Copy code');
    b.addEventListener('click', () => {
      const code = pre.querySelector('code');
      navigator.clipboard && navigator.clipboard.writeText((code || pre).textContent).catch(() => {});
    });
    pre.prepend(b);
  }
  return frag;
}
