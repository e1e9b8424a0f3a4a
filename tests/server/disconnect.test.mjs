// Clients that leave before a non-streamed reply: nothing is ever written to
// them, so the server must notice the closed socket itself. Against the slow
// server (random weights at the `tiny` shape, 2 slots, queue 4, no API key),
// where a 4000-token generation takes seconds: the generation is cancelled and
// its slot (or queue place) freed within moments, and the server still serves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { http, metrics, waitFor, SLOW } from './lib.mjs';

if (!SLOW) throw new Error('OB_SERVER_SLOW_URL is not set (run through tests/cli/server.sh)');

const LONG = 4000;
const m = () => metrics(SLOW, '');
const body = (extra = {}) =>
  JSON.stringify({ prompt: [1, 2, 3], max_tokens: LONG, temperature: 0, ignore_eos: true, ...extra });

// Starts a request that the test aborts later; resolves to the Response or the error.
function start(extra, ctl) {
  return fetch(`${SLOW}/v1/completions`, {
    method: 'POST', signal: ctl.signal, headers: { 'Content-Type': 'application/json' }, body: body(extra),
  }).catch((e) => e);
}

async function stillServes() {
  const r = await http('/v1/completions', { base: SLOW, key: '', body: { prompt: [5, 6], max_tokens: 5, temperature: 0 } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.usage.completion_tokens, 5);
}

test('a client leaving a non-streamed request mid-generation cancels it and frees its slot', async (t) => {
  const before = await m();
  const ctl = new AbortController();
  const pending = start({}, ctl);
  await waitFor(async () => {
    const x = await m();
    return x.onebit_slots_busy === 1 && x.onebit_generated_tokens_total >= before.onebit_generated_tokens_total + 50;
  }, 10000, 'the generation to run');
  const t0 = performance.now();
  ctl.abort();
  assert.equal((await pending).name, 'AbortError');
  await waitFor(async () => {
    const x = await m();
    return x.onebit_slots_busy === 0 && x.onebit_client_disconnects_total === before.onebit_client_disconnects_total + 1;
  }, 5000, 'the slot to be freed');
  const freedMs = performance.now() - t0;
  const after = await m();
  const generated = after.onebit_generated_tokens_total - before.onebit_generated_tokens_total;
  assert.ok(generated < LONG, `the generation ran to its end (${generated} tokens): not cancelled`);
  assert.ok(freedMs < 2000, `the slot was freed ${freedMs.toFixed(0)} ms after the client left`);
  t.diagnostic(`slot freed ${freedMs.toFixed(0)} ms after the client left (metrics polled every 50 ms), ` +
    `${generated} of ${LONG} tokens generated`);
  assert.equal(after.onebit_generations_total, before.onebit_generations_total + 1);
  await stillServes();
});

test('a client leaving while its non-streamed request is queued loses its place in the queue', async () => {
  const before = await m();
  // both slots busy with streams this test ends itself
  const streams = [new AbortController(), new AbortController()];
  const busy = await Promise.all(streams.map((c) => start({ stream: true }, c)));
  for (const r of busy) {
    assert.equal(r.status, 200);
    const { done } = await r.body.getReader().read(); // the first event: generating
    assert.ok(!done);
  }
  const ctl = new AbortController();
  const pending = start({}, ctl);
  await waitFor(async () => (await m()).onebit_queue_depth === 1, 5000, 'the request to be queued');
  ctl.abort();
  assert.equal((await pending).name, 'AbortError');
  await waitFor(async () => (await m()).onebit_queue_depth === 0, 2000, 'the queue to empty');
  const mid = await m();
  assert.equal(mid.onebit_client_disconnects_total, before.onebit_client_disconnects_total + 1);
  assert.equal(mid.onebit_slots_busy, 2, 'the queued request must not have taken a slot');
  for (const c of streams) c.abort();
  await waitFor(async () => {
    const x = await m();
    return x.onebit_slots_busy === 0 && x.onebit_client_disconnects_total === before.onebit_client_disconnects_total + 3;
  }, 5000, 'the streams to be cancelled');
  const after = await m();
  assert.ok(after.onebit_generated_tokens_total - before.onebit_generated_tokens_total < 2 * LONG);
  await stillServes();
});
