// lib.mjs: what the JavaScript tests under tests/ui share. Each test file
// is a list of named checks run in order by run(); every result is one
// line `RESULT {"name", "ok", "error", "ms"}` on stdout, which
// tests/e2e/nodejs.py turns into Python test cases. A failed check does
// not stop the next ones (later checks that need its state fail on their
// own).
//
// Environment (set by tests/e2e/nodejs.py): EVR_BASE_URL, EVR_TEST_KEY (an
// API key of an organization of this test's own), EVR_SRCDIR, EVR_HOME,
// EVR_OUT (where artifacts go).

import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

export { assert };

export const env = {
  base: (process.env.EVR_BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, ''),
  key: process.env.EVR_TEST_KEY,
  srcdir: process.env.EVR_SRCDIR || path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..'),
  home: process.env.EVR_HOME,
  out: process.env.EVR_OUT || '/tmp',
};

// The client module as the server ships it (static/sdk/everruns.js).
export async function sdk() {
  return import(pathToFileURL(path.join(env.srcdir, 'static/sdk/everruns.js')).href);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(pred, { timeout = 10000, interval = 50, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(interval);
  }
}

// Thrown by a check that cannot run on this server (a route not built).
export class Skip extends Error {}

// Is the route of this path missing from the server ("No such route")?
export async function routeMissing(path, key) {
  const r = await fetch(env.base + path, { headers: { Authorization: `Bearer ${key || env.key}` } });
  if (r.status !== 404) return false;
  const b = await r.json().catch(() => ({}));
  return /no such route/i.test(b.error || '');
}

// One check may take at most this long (ms): a check that hangs fails by
// name instead of holding the whole file until its outer timeout.
const CHECK_TIMEOUT_MS = Number(process.env.EVR_CHECK_TIMEOUT_MS || 90000);

// step(what): a check marks where it is; a check that times out names
// the last step it reached, so a hang says where it hung.
let lastStep = null;
export function step(what) { lastStep = what; }

// onFail(name): called after a failed check (a screenshot, say).
export async function run(checks, onFail) {
  let failed = 0;
  for (const [name, fn] of checks) {
    const t0 = Date.now();
    let ok = true;
    let error = null;
    let skipped = null;
    let timer;
    lastStep = null;
    try {
      await Promise.race([fn(), new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no result after ${CHECK_TIMEOUT_MS} ms` +
          (lastStep ? ` (last step: ${lastStep})` : ''))), CHECK_TIMEOUT_MS);
      })]);
    } catch (e) {
      if (e instanceof Skip) {
        skipped = e.message;
      } else {
        ok = false;
        failed++;
        error = (e && e.stack) || String(e);
        if (onFail) await onFail(name).catch(() => {});
      }
    } finally {
      clearTimeout(timer);
    }
    process.stdout.write(`RESULT ${JSON.stringify({ name, ok, error, skipped, ms: Date.now() - t0 })}\n`);
  }
  return failed;
}
