// Many clients at once: a client that disconnects mid-stream frees its slot
// at once and the server keeps serving (against the slow server); 32 concurrent streaming clients get
// exactly the greedy outputs they get alone (continuous batching must not mix
// sequences up).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { client, http, metrics, waitFor, streamText, MODEL, BASE, KEY, SLOW } from './lib.mjs';

const c = client();

test('a client disconnecting mid-stream cancels its generation and frees the slot', async () => {
  // Against the slow server (random weights at the tiny shape, about a
  // millisecond a token): stories260K could finish 1000 tokens before the
  // abort reached it on a fast machine.
  const LONG = 4000;
  const m = () => metrics(SLOW, '');
  const before = await m();
  const ctl = new AbortController();
  const res = await fetch(`${SLOW}/v1/completions`, {
    method: 'POST', signal: ctl.signal, headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt: [1, 2, 3], max_tokens: LONG, temperature: 0, ignore_eos: true, stream: true }),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/event-stream/);
  // a synthetic model has no tokenizer: its tokens carry no text, and the
  // stream carries only keep-alive comments until the end, so the generation
  // is followed through the metrics
  await waitFor(async () => (await m()).onebit_generated_tokens_total >= before.onebit_generated_tokens_total + 50,
    10000, 'the generation to run');
  ctl.abort();
  await waitFor(async () => {
    const x = await m();
    return x.onebit_slots_busy === 0 && x.onebit_client_disconnects_total === before.onebit_client_disconnects_total + 1;
  }, 5000, 'the slot to be freed');
  const after = await m();
  const generated = after.onebit_generated_tokens_total - before.onebit_generated_tokens_total;
  assert.ok(generated < LONG, `generation ran to the end (${generated} tokens): not cancelled`);
  // and the server still serves
  const r = await http('/v1/completions', { base: SLOW, key: '', body: { prompt: [5, 6], max_tokens: 8, temperature: 0 } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.usage.completion_tokens, 8);
});

const names = ['Lily', 'Tom', 'Sue', 'Max', 'Ben', 'Mia', 'Sam', 'Tim', 'Anna', 'Jack', 'Lucy', 'Bob', 'Zoe', 'Leo',
  'Amy', 'Dan', 'Eve', 'Joe', 'Kim', 'Ned', 'Pam', 'Ray', 'Sid', 'Ted', 'Una', 'Vic', 'Wes', 'Yan', 'Ivy', 'Gus',
  'Fay', 'Hal'];

test('32 concurrent streaming clients get the outputs they get alone', async () => {
  const params = (i) => ({
    model: MODEL, temperature: 0, max_tokens: 24 + (i % 5) * 4,
    messages: [{ role: 'user', content: `Once upon a time, there was a ${i % 2 ? 'boy' : 'girl'} named ${names[i]}.` }],
  });
  const alone = [];
  for (let i = 0; i < names.length; i++) {
    const r = await c.chat.completions.create(params(i));
    alone.push(r.choices[0].message.content);
  }
  assert.ok(new Set(alone).size > 16, 'prompts should lead to different stories');
  const before = await metrics();
  const together = await Promise.all(names.map((_, i) => streamText(c, { ...params(i), stream_options: { include_usage: true } })));
  const after = await metrics();
  for (let i = 0; i < names.length; i++) {
    assert.equal(together[i].text, alone[i], `client ${i} (${names[i]})`);
    assert.equal(together[i].usage.completion_tokens, params(i).max_tokens);
  }
  // Batched: fewer decode steps than tokens generated.
  const steps = after.onebit_decode_steps_total - before.onebit_decode_steps_total;
  const tokens = after.onebit_batch_tokens_total - before.onebit_batch_tokens_total;
  assert.ok(tokens / steps > 1.5, `average batch ${tokens / steps}`);
  assert.equal(after.onebit_slots_busy, 0);
  assert.equal(after.onebit_queue_depth, 0);
});
