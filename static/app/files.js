// files.js: the files panel of the open session (ARCHITECTURE 6.1): the whole
// tree (GET /fs?recursive=true), open a file (text shown as text, images
// previewed), upload with the button or by dropping files on the panel
// (raw bytes, POST /fs/{name}?overwrite=true), download
// (/fs/_/download/{path}) and delete. It refreshes when the agent writes
// a file (file.written, through changed()).

import { $, h, clear, fmtBytes, saveBlob, errText } from './dom.js';

const IMAGE_EXT = { png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', webp: 'image/webp' };

export class FilesPanel {
  constructor(app) {
    this.app = app;
    this.sid = null;
    this.timer = null;
    this.viewUrl = null;
    $('files-refresh').addEventListener('click', () => this.refresh());
    $('files-upload').addEventListener('click', () => $('files-input').click());
    $('files-input').addEventListener('change', (e) => {
      this.upload([...e.target.files]);
      e.target.value = '';
    });
    $('file-view-close').addEventListener('click', () => this.closeView());
    const panel = $('files');
    panel.addEventListener('dragover', (e) => {
      if (![...e.dataTransfer.types].includes('Files')) return;
      e.preventDefault();
      panel.classList.add('drag');
    });
    panel.addEventListener('dragleave', (e) => { if (e.target === panel) panel.classList.remove('drag'); });
    panel.addEventListener('drop', (e) => {
      e.preventDefault();
      panel.classList.remove('drag');
      this.upload([...e.dataTransfer.files]);
    });
  }

  open(sid) {
    this.sid = sid;
    this.closeView();
    clear($('file-list'));
    $('files-error').textContent = '';
    if (sid && !$('files').hidden) this.refresh();
  }

  // file.written: refresh soon (a burst of writes is one refresh)
  changed() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { if (!$('files').hidden) this.refresh(); }, 200);
  }

  async refresh() {
    const sid = this.sid;
    if (!sid) return;
    const c = this.app.client;
    let files;
    try {
      files = await c.sessionFs.list(sid, '/', { recursive: true });
    } catch (e) {
      if (sid !== this.sid || this.app.handleError(e)) return;
      $('files-error').textContent = e.status === 404 && e.body && /route/i.test(e.body.error || '')
        ? 'This server has no session file store.' : `Cannot list files: ${errText(e)}`;
      return;
    }
    if (sid !== this.sid) return;
    $('files-error').textContent = '';
    const list = $('file-list');
    clear(list);
    const rows = (Array.isArray(files) ? files : []).slice().sort((a, b) => String(a.path).localeCompare(String(b.path)));
    for (const f of rows) {
      const path = f.path || `/${f.name}`;
      if (f.is_directory) {
        list.append(h('li', { class: 'dir', dataset: { path } }, h('span', { class: 'file-name', text: `${path}/` })));
        continue;
      }
      list.append(h('li', { class: 'file', dataset: { path } },
        h('button', { type: 'button', class: 'file-name link', text: path, 'aria-label': `Open ${path}`, onclick: () => this.view(path) }),
        h('span', { class: 'file-size muted', text: fmtBytes(f.size_bytes) }),
        h('button', { type: 'button', class: 'small', text: 'Download', 'aria-label': `Download ${path}`, onclick: () => this.download(path) }),
        h('button', { type: 'button', class: 'small danger', text: 'Delete', 'aria-label': `Delete ${path}`, onclick: () => this.remove(path) })));
    }
    if (!rows.length) list.append(h('li', { class: 'muted', text: 'No files yet.' }));
  }

  async upload(files) {
    const c = this.app.client;
    if (!this.sid || !files.length) return;
    $('files-error').textContent = '';
    for (const f of files) {
      try {
        await c.sessionFs.upload(this.sid, `/${f.name}`, f);
      } catch (e) {
        if (this.app.handleError(e)) return;
        $('files-error').textContent = `Cannot upload ${f.name}: ${errText(e)}`;
      }
    }
    await this.refresh();
  }

  async view(path) {
    const c = this.app.client;
    try {
      const type = IMAGE_EXT[path.split('.').pop().toLowerCase()];
      // images as their bytes, everything else as the file object
      const blob = type ? await c.sessionFs.download(this.sid, path) : null;
      const f = type ? null : await c.sessionFs.get(this.sid, path);
      this.closeView();
      const body = $('file-view-body');
      if (type) {
        this.viewUrl = URL.createObjectURL(new Blob([blob], { type }));
        body.append(h('img', { src: this.viewUrl, alt: path, class: 'file-image' }));
      } else if (f.encoding === 'base64') {
        body.append(h('p', { class: 'muted', text: `Binary file, ${fmtBytes(f.size_bytes)}. Use Download.` }));
      } else {
        body.append(h('pre', { class: 'file-text', text: f.content || '' }));
      }
      $('file-view-name').textContent = path;
      $('file-view').hidden = false;
    } catch (e) {
      if (!this.app.handleError(e)) $('files-error').textContent = `Cannot open ${path}: ${errText(e)}`;
    }
  }

  closeView() {
    $('file-view').hidden = true;
    clear($('file-view-body'));
    if (this.viewUrl) URL.revokeObjectURL(this.viewUrl);
    this.viewUrl = null;
  }

  async download(path) {
    try {
      saveBlob(await this.app.client.sessionFs.download(this.sid, path), path.split('/').pop());
    } catch (e) {
      if (!this.app.handleError(e)) $('files-error').textContent = `Cannot download ${path}: ${errText(e)}`;
    }
  }

  async remove(path) {
    try {
      await this.app.client.sessionFs.delete(this.sid, path);
    } catch (e) {
      if (this.app.handleError(e)) return;
      $('files-error').textContent = `Cannot delete ${path}: ${errText(e)}`;
    }
    if ($('file-view-name').textContent === path) this.closeView();
    await this.refresh();
  }
}
