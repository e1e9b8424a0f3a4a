// The OpenAI surface with the official client: chat and completions, streamed
// and not, stop strings, seeds, n, echo, prefix reuse, tokenize/detokenize.
// Greedy outputs are checked against llama2.c's own output for this model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { client, http, expectedStory, streamText, MODEL, BASE } from './lib.mjs';

const c = client();
const story = expectedStory();

test('GET /v1/models lists the served model', async () => {
  const page = await c.models.list();
  assert.equal(page.data.length, 1);
  assert.equal(page.data[0].id, MODEL);
  assert.equal(page.data[0].object, 'model');
});

test('greedy completion of an empty prompt matches llama2.c', async () => {
  const r = await c.completions.create({ model: MODEL, prompt: '', max_tokens: 40, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  const text = r.choices[0].text;
  assert.ok(text.length > 40, text);
  assert.ok(story.startsWith(text), `not a prefix of the reference:\n${text}`);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 40);
  assert.equal(r.usage.prompt_tokens, 1); // BOS
  assert.equal(r.usage.total_tokens, 41);
});

test('streamed completion equals the non-streamed one; usage chunk on request', async () => {
  const params = { model: MODEL, prompt: 'Once upon a time', max_tokens: 24, temperature: 0 };
  const full = await c.completions.create(params);
  const s = await streamText(c, { ...params, stream_options: { include_usage: true } }, 'completions');
  assert.equal(s.text, full.choices[0].text);
  assert.equal(s.finish, 'length');
  assert.ok(s.chunks >= 2, 'text chunks, then the usage chunk'); // text of several tokens may share a chunk
  assert.deepEqual({ ...s.usage, prompt_tokens_details: undefined }, { ...full.usage, prompt_tokens_details: undefined });
});

test('chat: non-streamed and streamed replies agree (plain template)', async () => {
  const messages = [{ role: 'user', content: 'Once upon a time, there was a little girl' }];
  const full = await c.chat.completions.create({ model: MODEL, messages, max_tokens: 20, temperature: 0 });
  assert.equal(full.object, 'chat.completion');
  assert.match(full.id, /^chatcmpl-/);
  assert.equal(full.choices[0].message.role, 'assistant');
  assert.ok(full.choices[0].message.content.length > 0);
  const stream = await c.chat.completions.create({ model: MODEL, messages, max_tokens: 20, temperature: 0, stream: true });
  let text = '', first = null, ids = new Set(), finish = null;
  for await (const ch of stream) {
    first ??= ch;
    ids.add(ch.id);
    assert.equal(ch.object, 'chat.completion.chunk');
    for (const choice of ch.choices) {
      text += choice.delta.content ?? '';
      finish = choice.finish_reason ?? finish;
    }
  }
  assert.equal(first.choices[0].delta.role, 'assistant');
  assert.equal(ids.size, 1, 'one id for the whole stream');
  assert.equal(text, full.choices[0].message.content);
  assert.equal(finish, full.choices[0].finish_reason);
});

// Where the reference continues "...there was a little girl named Lily."
test('stop strings end the text before the match, also across tokens and in streams', async () => {
  const cases = [
    ['Lily', 'Once upon a time, there was a little girl named '],
    [' little gi', 'Once upon a time, there was a'],      // spans " little", " g", "ir"
    [['xyz', 'girl named L'], 'Once upon a time, there was a little '],
  ];
  for (const [stop, want] of cases) {
    assert.ok(story.startsWith(want));
    const p = { model: MODEL, prompt: '', max_tokens: 60, temperature: 0, stop };
    const r = await c.completions.create(p);
    assert.equal(r.choices[0].text, want, `stop ${JSON.stringify(stop)}`);
    assert.equal(r.choices[0].finish_reason, 'stop');
    const s = await streamText(c, p, 'completions');
    assert.equal(s.text, want, `streamed, stop ${JSON.stringify(stop)}`);
    assert.equal(s.finish, 'stop');
  }
});

test('seeded sampling is reproducible; n choices use seed, seed+1, ...', async () => {
  const p = { model: MODEL, prompt: 'Once upon a time', max_tokens: 24, temperature: 1.0, top_k: 0, top_p: 1, min_p: 0 };
  const a = await c.completions.create({ ...p, seed: 1234 });
  const b = await c.completions.create({ ...p, seed: 1234 });
  assert.equal(a.choices[0].text, b.choices[0].text);
  const two = await c.completions.create({ ...p, seed: 1234, n: 2 });
  assert.equal(two.choices.length, 2);
  assert.deepEqual(two.choices.map((x) => x.index), [0, 1]);
  assert.equal(two.choices[0].text, a.choices[0].text);
  const next = await c.completions.create({ ...p, seed: 1235 });
  assert.equal(two.choices[1].text, next.choices[0].text);
  assert.equal(two.usage.completion_tokens, 48);
  // different seeds: over three tries at temperature 1 at least one differs
  const others = await Promise.all([1, 2, 3].map((s) => c.completions.create({ ...p, seed: 99 + s })));
  assert.ok(others.some((o) => o.choices[0].text !== a.choices[0].text));
});

test('max_completion_tokens, echo, unknown fields, model name variants', async () => {
  const r = await c.chat.completions.create({
    model: MODEL.replace(/\.gguf$/, ''), messages: [{ role: 'user', content: 'Hi' }],
    max_completion_tokens: 5, temperature: 0, user: 'someone', logit_bias: {}, some_future_field: [1, 2],
  });
  assert.equal(r.usage.completion_tokens, 5);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.model, MODEL.replace(/\.gguf$/, ''), 'the request\'s model name is echoed');
  const e = await c.completions.create({ model: MODEL, prompt: 'Once upon', max_tokens: 4, temperature: 0, echo: true });
  assert.ok(e.choices[0].text.startsWith('Once upon'));
  const plain = await c.completions.create({ model: MODEL, prompt: 'Once upon', max_tokens: 4, temperature: 0 });
  assert.equal(e.choices[0].text, 'Once upon' + plain.choices[0].text);
});

test('a follow-up turn reuses the cached prompt prefix', async () => {
  const messages = [{ role: 'user', content: 'Once upon a time, there was a big dog named Max. Max liked to run in the park.' }];
  const first = await c.chat.completions.create({ model: MODEL, messages, max_tokens: 16, temperature: 0 });
  messages.push({ role: 'assistant', content: first.choices[0].message.content }, { role: 'user', content: 'Then what?' });
  const second = await c.chat.completions.create({ model: MODEL, messages, max_tokens: 8, temperature: 0 });
  const cached = second.usage.prompt_tokens_details.cached_tokens;
  assert.ok(cached >= first.usage.prompt_tokens - 1, `cached ${cached} of ${second.usage.prompt_tokens}`);
});

test('tokenize and detokenize round-trip', async () => {
  const text = 'Once upon a time, there was a little girl.';
  const t = await http('/tokenize', { body: { content: text } });
  assert.equal(t.status, 200);
  assert.ok(t.json.tokens.length > 3 && t.json.tokens.every(Number.isInteger));
  const d = await http('/detokenize', { body: { tokens: t.json.tokens } });
  assert.equal(d.status, 200);
  assert.equal(d.json.content.trimStart(), text);
  const wp = await http('/tokenize', { body: { content: text, with_pieces: true } });
  assert.deepEqual(wp.json.tokens.map((x) => x.id), t.json.tokens);
  assert.equal(wp.json.tokens.map((x) => x.piece).join('').trimStart(), text);
  const bos = await http('/tokenize', { body: { content: text, add_special: true } });
  assert.equal(bos.json.tokens.length, t.json.tokens.length + 1);
});

test('/health and /metrics', async () => {
  const h = await http('/health', { method: 'GET', key: '' });
  assert.equal(h.status, 200);
  assert.deepEqual(h.json, { status: 'ok' });
  const m = await http('/metrics', { method: 'GET' });
  assert.equal(m.status, 200);
  assert.match(m.headers.get('content-type'), /^text\/plain/);
  for (const name of ['onebit_prompt_tokens_total', 'onebit_generated_tokens_total', 'onebit_queue_depth',
    'onebit_decode_tokens_per_second', 'onebit_prefill_tokens_per_second', 'onebit_kv_cache_usage_ratio',
    'onebit_http_requests_total{route="completions"}'])
    assert.match(m.text, new RegExp(`^${name.replace(/[{}]/g, '\\$&')} [0-9.e+-]+$`, 'm'), name);
  assert.ok(BASE);
});
