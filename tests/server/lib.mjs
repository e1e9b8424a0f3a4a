// Shared helpers for the server tests. tests/cli/server.sh starts `1bit serve`
// and passes its address in OB_SERVER_URL (and the API key in OB_API_KEY).
import OpenAI from 'openai';
import assert from 'node:assert/strict';
import fs from 'node:fs';

export const BASE = process.env.OB_SERVER_URL;
export const SMALL = process.env.OB_SERVER_SMALL_URL; // --slots 1 --queue 1, for the 503 test
export const KEY = process.env.OB_API_KEY || '';
export const MODEL = process.env.OB_MODEL_ID || 'stories260K.gguf';
if (!BASE) throw new Error('OB_SERVER_URL is not set (run through tests/cli/server.sh)');

export function client(opts = {}) {
  return new OpenAI({ baseURL: `${BASE}/v1`, apiKey: KEY || 'none', maxRetries: 0, timeout: 60000, ...opts });
}

// The reference greedy continuation of an empty prompt: llama2.c's own test
// output for this model (../shared/data/stories260K/expected-run-t0-n200.txt).
export function expectedStory() {
  const root = process.env.OB_SHARED || new URL('../../../shared', import.meta.url).pathname;
  return fs.readFileSync(`${root}/data/stories260K/expected-run-t0-n200.txt`, 'utf8');
}

// Raw HTTP: returns {status, headers, json, text}.
export async function http(path, { method = 'POST', body, headers = {}, base = BASE, key = KEY } = {}) {
  const h = { ...headers };
  if (key && !('Authorization' in h) && !('X-Api-Key' in h)) h.Authorization = `Bearer ${key}`;
  if (body !== undefined && typeof body !== 'string') body = JSON.stringify(body);
  if (body !== undefined && !('Content-Type' in h)) h['Content-Type'] = 'application/json';
  const res = await fetch(base + path, { method, body, headers: h });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, json, text };
}

// Asserts OpenAI's error shape and status; returns the error object.
export function assertError(r, status, param) {
  assert.equal(r.status, status, `status ${r.status}: ${r.text}`);
  assert.ok(r.json && r.json.error, `no error object: ${r.text}`);
  const e = r.json.error;
  assert.equal(typeof e.message, 'string');
  assert.ok(e.message.length > 0);
  assert.equal(typeof e.type, 'string');
  assert.ok('param' in e && 'code' in e, 'error needs param and code keys');
  if (param !== undefined) assert.equal(e.param, param);
  return e;
}

export const SLOW = process.env.OB_SERVER_SLOW_URL; // synthetic tiny model, no key, 2 slots, queue 4

// Prometheus text -> {name or name{labels}: value}.
export async function metrics(base = BASE, key = KEY) {
  const r = await http('/metrics', { method: 'GET', base, key });
  assert.equal(r.status, 200);
  const out = {};
  for (const line of r.text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

export async function waitFor(pred, ms = 5000, what = 'condition') {
  const t0 = Date.now();
  for (;;) {
    if (await pred()) return;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Streams a completion with the SDK and returns {text, finish, chunks, usage}.
export async function streamText(c, params, kind = 'chat') {
  const api = kind === 'chat' ? c.chat.completions : c.completions;
  const stream = await api.create({ ...params, stream: true });
  let text = '', finish = null, chunks = 0, usage = null;
  for await (const ch of stream) {
    chunks++;
    if (ch.usage) usage = ch.usage;
    for (const choice of ch.choices) {
      text += kind === 'chat' ? choice.delta.content ?? '' : choice.text ?? '';
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  return { text, finish, chunks, usage };
}
