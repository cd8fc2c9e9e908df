// composer.js: the message box. Enter sends, Shift+Enter is a new line
// (Esc stops a turn: conversation.js). Images are attached with the
// button, by dropping them on the box or by pasting; each is uploaded at
// once (POST /images, multipart, with the session's id), previewed from
// the local file, and sent as an image_file part.

import { $, h, clear, errText } from './dom.js';

const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];

export class Composer {
  constructor(app) {
    this.app = app;
    this.images = []; // {id, filename, url, li}
    this.uploading = 0;
    const input = $('input');
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      }
    });
    input.addEventListener('input', () => this.grow());
    $('composer').addEventListener('submit', (e) => { e.preventDefault(); this.submit(); });
    $('attach-btn').addEventListener('click', () => $('image-input').click());
    $('image-input').addEventListener('change', (e) => {
      this.attach([...e.target.files]);
      e.target.value = '';
    });
    const form = $('composer');
    form.addEventListener('dragover', (e) => {
      if ([...e.dataTransfer.types].includes('Files')) { e.preventDefault(); form.classList.add('drag'); }
    });
    form.addEventListener('dragleave', () => form.classList.remove('drag'));
    form.addEventListener('drop', (e) => {
      form.classList.remove('drag');
      const files = [...e.dataTransfer.files].filter((f) => IMAGE_TYPES.includes(f.type));
      if (files.length) { e.preventDefault(); this.attach(files); }
    });
    input.addEventListener('paste', (e) => {
      const files = [...(e.clipboardData ? e.clipboardData.files : [])].filter((f) => IMAGE_TYPES.includes(f.type));
      if (files.length) { e.preventDefault(); this.attach(files); }
    });
  }

  reset() {
    for (const im of this.images) URL.revokeObjectURL(im.url);
    this.images = [];
    clear($('attachments'));
    $('input').value = '';
    $('composer-error').textContent = '';
    this.grow();
  }

  grow() {
    const t = $('input');
    t.style.height = 'auto';
    t.style.height = `${Math.min(t.scrollHeight, 240)}px`;
  }

  async attach(files) {
    const app = this.app;
    $('composer-error').textContent = '';
    for (const f of files) {
      if (!IMAGE_TYPES.includes(f.type)) {
        $('composer-error').textContent = `${f.name} is not a PNG, JPEG, GIF or WebP image.`;
        continue;
      }
      const url = URL.createObjectURL(f);
      const im = { id: null, filename: f.name, url };
      const remove = h('button', { type: 'button', class: 'icon remove', 'aria-label': `Remove ${f.name}`, text: '✕',
        onclick: () => this.detach(im) });
      im.li = h('li', { class: 'attachment uploading' },
        h('img', { src: url, alt: `Preview of ${f.name}` }), h('span', { class: 'name', text: f.name }), remove);
      $('attachments').append(im.li);
      this.images.push(im);
      this.uploading++;
      try {
        const r = await app.client.images.upload(f, { sessionId: app.session && app.session.id, filename: f.name });
        im.id = r.id;
        im.li.classList.remove('uploading');
        im.li.dataset.imageId = r.id;
      } catch (e) {
        if (!app.handleError(e)) $('composer-error').textContent = `Cannot upload ${f.name}: ${errText(e)}`;
        this.detach(im);
      } finally {
        this.uploading--;
      }
    }
  }

  detach(im) {
    im.li.remove();
    URL.revokeObjectURL(im.url);
    this.images = this.images.filter((x) => x !== im);
  }

  async submit() {
    const app = this.app;
    if (!app.session) return;
    if (app.conv.status === 'active') {
      $('composer-error').textContent = 'The agent is still working; wait for it or press Stop.';
      return;
    }
    if (app.conv.waiting) {
      $('composer-error').textContent = 'The agent is waiting for your answer in the conversation above; answer it or press Stop.';
      return;
    }
    if (this.uploading) {
      $('composer-error').textContent = 'An image is still uploading.';
      return;
    }
    const text = $('input').value;
    const parts = [];
    if (text.trim()) parts.push({ type: 'text', text });
    for (const im of this.images) if (im.id) parts.push({ type: 'image_file', image_id: im.id, filename: im.filename });
    if (!parts.length) return;
    $('composer-error').textContent = '';
    $('send-btn').disabled = true;
    try {
      await app.conv.send(parts);
      $('input').value = '';
      this.grow();
      // the message shows the image now; the previews can go
      for (const im of this.images) { im.li.remove(); URL.revokeObjectURL(im.url); }
      this.images = [];
    } catch (e) {
      if (!app.handleError(e)) $('composer-error').textContent = `Not sent: ${errText(e)}`;
    } finally {
      $('send-btn').disabled = false;
    }
  }
}
