#!/usr/bin/env node
// Load / soak benchmark for `1bit serve` (not a test: it reports, it does not judge).
//
// N clients on loopback each loop over streaming /v1/completions requests for a
// bounded time. Reports requests/s, aggregate generated tokens/s, latency and
// time-to-first-token percentiles, errors, the server's decode speed from
// /metrics, and the server's resident memory before and after. As a probe of
// the machine, it also reports how much of the CPU the server, this client and
// everything else used during the window (from /proc): on a shared machine the
// "others" share says how far to trust the figures.
//
//   node tests/server/load.mjs --bin build/1bit --model ../shared/data/stories260K/stories260K.gguf \
//        --clients 16 --seconds 30 --max-tokens 64 [--slots 16] [--temperature 0] \
//        [--server-arg=--threads --server-arg=2]
//   node tests/server/load.mjs --synthetic 2b4t --clients 16 ...   (random weights at BitNet 2B-4T shapes;
//        no tokenizer: prompts are token ids and only token counts are measured)
//   node tests/server/load.mjs --url http://127.0.0.1:8080 --pid 1234 ...   (an already running server)
//
// Prints a summary, then one JSON line (prefixed "RESULT ") for docs and scripts.
import { spawn } from 'node:child_process';
import fs from 'node:fs';

function parseArgs(argv) {
  const o = { clients: 4, seconds: 20, maxTokens: 64, slots: 0, serverArgs: [], prompt: 'Once upon a time', ctx: 0,
    temperature: 0.8 };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i], v = () => argv[++i];
    if (a === '--bin') o.bin = v();
    else if (a === '--model') o.model = v();
    else if (a === '--synthetic') o.synthetic = v();
    else if (a === '--url') o.url = v();
    else if (a === '--pid') o.pid = Number(v());
    else if (a === '--key') o.key = v();
    else if (a === '--clients') o.clients = Number(v());
    else if (a === '--seconds') o.seconds = Number(v());
    else if (a === '--max-tokens') o.maxTokens = Number(v());
    else if (a === '--slots') o.slots = Number(v());
    else if (a === '--ctx') o.ctx = Number(v());
    else if (a === '--prompt') o.prompt = v();
    else if (a === '--temperature') o.temperature = Number(v());
    else if (a.startsWith('--server-arg=')) o.serverArgs.push(a.slice('--server-arg='.length));
    else throw new Error(`unknown option ${a}`);
  }
  if (!o.url && !o.bin) throw new Error('give --url (and --pid) or --bin with --model/--synthetic');
  return o;
}

function rssKiB(pid) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
    return m ? Number(m[1]) : null;
  } catch { return null; }
}

// CPU time in seconds: the whole machine (busy, and all) from /proc/stat, one
// process (user + system) from /proc/PID/stat.
function machineCpu() {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const all = f.reduce((a, x) => a + x, 0), idle = f[3] + (f[4] || 0);
    return { busy: (all - idle) / 100, all: all / 100 };
  } catch { return null; }
}

function processCpu(pid) {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime (fields 14, 15)
  } catch { return null; }
}

async function startServer(o) {
  const args = ['serve', '--port', '0', '--slots', String(o.slots || o.clients), '--queue', String(4 * o.clients + 8)];
  if (o.synthetic) args.push('--synthetic', o.synthetic); else args.push('-m', o.model);
  if (o.ctx) args.push('--ctx', String(o.ctx));
  args.push(...o.serverArgs);
  const child = spawn(o.bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const url = await new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => {
      log += d;
      const m = log.match(/listening on (http:\/\/[^ ]+)/);
      if (m && /ready/.test(log)) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`server exited (${code}):\n${log}`)));
  });
  return { child, url, pid: child.pid };
}

async function metrics(url, key) {
  const r = await fetch(`${url}/metrics`, { headers: key ? { Authorization: `Bearer ${key}` } : {} });
  const out = {};
  for (const line of (await r.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

// One streaming request; resolves {ok, tokens, latency, ttft, error}.
async function oneRequest(url, o, body) {
  const t0 = performance.now();
  let ttft = null;
  try {
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST', body,
      headers: { 'Content-Type': 'application/json', ...(o.key ? { Authorization: `Bearer ${o.key}` } : {}) },
    });
    if (res.status !== 200) return { ok: false, error: `HTTP ${res.status}: ${(await res.text()).slice(0, 200)}` };
    // first token: the first chunk with text (a model without a tokenizer
    // streams none, and then there is no TTFT to report)
    const dec = new TextDecoder();
    let buf = '', tokens = null, done = false;
    for await (const part of res.body) {
      buf += dec.decode(part, { stream: true });
      let nl;
      while ((nl = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        if (!ev.startsWith('data: ')) continue;
        const data = ev.slice(6);
        if (data === '[DONE]') { done = true; continue; }
        const j = JSON.parse(data);
        if (j.error) return { ok: false, error: j.error.message };
        if (ttft === null && j.choices?.[0]?.text) ttft = performance.now() - t0;
        if (j.usage) tokens = j.usage.completion_tokens;
      }
    }
    if (!done || tokens === null) return { ok: false, error: 'stream ended without usage and [DONE]' };
    return { ok: true, tokens, latency: performance.now() - t0, ttft };
  } catch (e) {
    return { ok: false, error: String(e.cause?.code || e.message) };
  }
}

const pct = (xs, p) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function main() {
  const o = parseArgs(process.argv);
  let server = null, url = o.url, pid = o.pid;
  if (!url) {
    server = await startServer(o);
    url = server.url;
    pid = server.pid;
  }
  const prompt = o.synthetic ? Array.from({ length: 16 }, (_, i) => 1 + i) : o.prompt;
  const body = (i) => JSON.stringify({
    prompt, max_tokens: o.maxTokens, temperature: o.temperature, seed: i, ignore_eos: true,
    stream: true, stream_options: { include_usage: true },
  });
  // warm-up (first-touch of weights and caches), then the measured window
  await oneRequest(url, o, body(0));
  const rssBefore = pid ? rssKiB(pid) : null;
  const m0 = await metrics(url, o.key);
  const cpu0 = machineCpu(), srv0 = pid ? processCpu(pid) : null, me0 = process.cpuUsage();
  const results = [];
  const t0 = performance.now(), deadline = t0 + o.seconds * 1000;
  let seq = 1;
  await Promise.all(Array.from({ length: o.clients }, async () => {
    while (performance.now() < deadline) results.push(await oneRequest(url, o, body(seq++)));
  }));
  const elapsed = (performance.now() - t0) / 1000;
  const cpu1 = machineCpu(), srv1 = pid ? processCpu(pid) : null, me = process.cpuUsage(me0);
  const m1 = await metrics(url, o.key);
  const rssAfter = pid ? rssKiB(pid) : null;
  if (server) {
    server.child.kill('SIGTERM');
    await new Promise((r) => server.child.on('exit', r));
  }

  const ok = results.filter((r) => r.ok), bad = results.filter((r) => !r.ok);
  const tokens = ok.reduce((a, r) => a + r.tokens, 0);
  const ttfts = ok.map((r) => r.ttft).filter((x) => x !== null);
  const speeds = ok.map((r) => +(r.tokens / (r.latency / 1000)).toFixed(1));
  const d = (k) => (m1[k] ?? 0) - (m0[k] ?? 0);
  const steps = d('onebit_decode_steps_total');
  const out = {
    model: o.synthetic ? `synthetic:${o.synthetic}` : o.model ?? url, clients: o.clients, seconds: +elapsed.toFixed(2),
    max_tokens: o.maxTokens, requests: results.length, errors: bad.length,
    requests_per_s: +(ok.length / elapsed).toFixed(2), tokens_per_s: +(tokens / elapsed).toFixed(1),
    server_decode_tokens_per_s: d('onebit_decode_seconds_total') > 0
      ? +(d('onebit_generated_tokens_total') / d('onebit_decode_seconds_total')).toFixed(1) : null,
    avg_batch_tokens: steps ? +(d('onebit_batch_tokens_total') / steps).toFixed(2) : null,
    latency_ms: { p50: pct(ok.map((r) => r.latency), 50), p90: pct(ok.map((r) => r.latency), 90), p99: pct(ok.map((r) => r.latency), 99) },
    ttft_ms: { p50: pct(ttfts, 50), p90: pct(ttfts, 90), p99: pct(ttfts, 99) },
    // one request's own speed (its tokens over its latency): on a shared
    // machine the best request shows the speed without interference
    request_tokens_per_s: { p50: pct(speeds, 50), best: speeds.length ? Math.max(...speeds) : null },
    rss_mib_before: rssBefore && +(rssBefore / 1024).toFixed(1), rss_mib_after: rssAfter && +(rssAfter / 1024).toFixed(1),
    cpu: null,
    first_errors: [...new Set(bad.map((r) => r.error))].slice(0, 3),
  };
  for (const k of ['latency_ms', 'ttft_ms']) for (const p in out[k]) out[k][p] = out[k][p] && Math.round(out[k][p]);
  if (cpu0 && cpu1) {
    // shares of the whole machine (1 = every core busy for the whole window)
    const all = cpu1.all - cpu0.all, busy = cpu1.busy - cpu0.busy;
    const server = srv0 !== null && srv1 !== null ? srv1 - srv0 : null, client = (me.user + me.system) / 1e6;
    const share = (x) => x === null ? null : +(x / all).toFixed(3);
    out.cpu = { machine_busy: share(busy), server: share(server), client: share(client),
      others: server === null ? null : share(Math.max(0, busy - server - client)) };
  }
  console.log(`${out.clients} clients, ${out.seconds} s: ${out.requests} requests (${out.errors} errors), ` +
    `${out.requests_per_s} req/s, ${out.tokens_per_s} generated tok/s (server decode ${out.server_decode_tokens_per_s} tok/s, ` +
    `avg batch ${out.avg_batch_tokens}); latency p50/p90/p99 ${out.latency_ms.p50}/${out.latency_ms.p90}/${out.latency_ms.p99} ms; ` +
    `TTFT p50/p99 ${out.ttft_ms.p50 ?? 'n/a'}/${out.ttft_ms.p99 ?? 'n/a'} ms; ` +
    `per request p50/best ${out.request_tokens_per_s.p50}/${out.request_tokens_per_s.best} tok/s; RSS ${out.rss_mib_before} -> ${out.rss_mib_after} MiB; ` +
    `CPU shares: server ${out.cpu?.server}, client ${out.cpu?.client}, others ${out.cpu?.others}`);
  console.log('RESULT ' + JSON.stringify(out));
  process.exitCode = bad.length ? 1 : 0;
}

main().catch((e) => { console.error(e); process.exit(2); });
