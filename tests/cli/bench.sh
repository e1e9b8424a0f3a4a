#!/usr/bin/env bash
# Black-box tests of `1bit bench` on a small synthetic model (no data needed):
# the JSON report is complete and self-consistent, and bad usage fails cleanly.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${OB_BIN:-build/1bit}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
command -v jq >/dev/null || fail "jq is needed to read the JSON report"

run_bench() { # out-file, extra args...
  local out=$1; shift
  "$BIN" bench --synthetic tiny --prompt 24 --contexts 4,16 --gen 3 --reps 1 --threads 2 --json "$@" >"$out" 2>"$tmp/err" \
    || fail "bench $*: $(cat "$tmp/err")"
  jq -e . "$out" >/dev/null || fail "bench $* printed invalid JSON: $(head -c 300 "$out")"
}

run_bench "$tmp/f16.json"
j=$tmp/f16.json
# Fields present and positive; the machine was probed.
jq -e '.prefill.tokens == 24 and .prefill.tokens_per_s > 0 and .prefill.gops > 0 and .prefill.int8_peak_share > 0' "$j" >/dev/null \
  || fail "prefill section: $(jq -c .prefill "$j")"
jq -e '.machine.read_gbps > 0 and .machine.int8_gops > 0 and .peak_rss_mb > 0 and .threads == 2' "$j" >/dev/null \
  || fail "machine section: $(jq -c .machine "$j")"
jq -e '[.decode[].context] == [4, 16] and all(.decode[]; .tokens == 3 and .tokens_per_s > 0)' "$j" >/dev/null \
  || fail "decode contexts: $(jq -c .decode "$j")"
# Bytes per token = weights + KV read; a longer context reads more KV.
jq -e 'all(.decode[]; .bytes_per_token == (.kv_bytes_per_token + $w)) and .decode[1].kv_bytes_per_token > .decode[0].kv_bytes_per_token' \
  --argjson w "$(jq .weight_bytes_per_token "$j")" "$j" >/dev/null || fail "bytes per token do not add up: $(jq -c .decode "$j")"
# Shares are the ratios of the reported numbers (GB/s = bytes * tok/s).
jq -e 'all(.decode[]; ((.gbps - .bytes_per_token * .tokens_per_s / 1e9) | fabs) < 0.01 + 0.01 * .gbps)' "$j" >/dev/null \
  || fail "gbps is not bytes * tok/s: $(jq -c .decode "$j")"
jq -e '.machine.read_gbps as $bw | all(.decode[]; ((.read_bw_share - .gbps / $bw) | fabs) < 0.001 + 0.01 * .read_bw_share)' "$j" >/dev/null \
  || fail "read_bw_share is not gbps / read_gbps"
echo "ok: bench --json report is complete and consistent"

# An int8 lm_head reads fewer bytes per token than the f16 one.
run_bench "$tmp/i8.json" --head i8 --no-probe
jq -e '.head_type == "i8" and .machine.read_gbps == null and .decode[0].read_bw_share == null' "$tmp/i8.json" >/dev/null \
  || fail "--head i8 --no-probe: $(head -c 400 "$tmp/i8.json")"
[ "$(jq .weight_bytes_per_token "$tmp/i8.json")" -lt "$(jq .weight_bytes_per_token "$j")" ] \
  || fail "i8 head does not read fewer bytes than f16"
# The scalar reference kernels run the same bench.
run_bench "$tmp/scalar.json" --kernels scalar --no-probe
jq -e '.kernels == "scalar"' "$tmp/scalar.json" >/dev/null || fail "--kernels scalar not reported"
echo "ok: --head i8, --no-probe, --kernels scalar"

# Batched decode: N sequences one token each per step; the ratio is to the
# single-stream decode of the same run at the same context.
run_bench "$tmp/batch.json" --batch 3 --head i8 --no-probe
jq -e '.batch.streams == 3 and ([.batch.runs[].context] == [4, 16]) and all(.batch.runs[]; .steps == 3 and .tokens_per_s > 0 and .int8_gops > 0 and .int8_peak_share == null)' \
  "$tmp/batch.json" >/dev/null || fail "--batch 3: $(jq -c .batch "$tmp/batch.json")"
jq -e '[.decode[].tokens_per_s] == [.batch.runs[].single_tokens_per_s] and all(.batch.runs[]; ((.ratio - .tokens_per_s / .single_tokens_per_s) | fabs) < 0.001 + 0.001 * .ratio)' \
  "$tmp/batch.json" >/dev/null || fail "--batch ratio is not batched / single tok/s: $(jq -c .batch "$tmp/batch.json")"
jq -e '.batch == null' "$j" >/dev/null || fail "no --batch: batch should be null"
echo "ok: --batch report"

# The human-readable report.
"$BIN" bench --synthetic tiny --prompt 8 --contexts 8 --gen 2 --reps 1 --no-probe >"$tmp/text" || fail "text report"
grep -q "^prefill  *8 tokens" "$tmp/text" && grep -q "^decode  *ctx *8:" "$tmp/text" || fail "text report: $(cat "$tmp/text")"

# Bad usage: exit 1 with one line on stderr, nothing on stdout.
bad() {
  if "$BIN" bench "$@" >"$tmp/out" 2>"$tmp/err"; then fail "bench $* succeeded"; fi
  [ "$(wc -l <"$tmp/err")" = 1 ] || fail "bench $*: stderr is not one line: $(cat "$tmp/err")"
  [ ! -s "$tmp/out" ] || fail "bench $*: printed to stdout"
}
bad
bad --synthetic tiny --contexts 64,8
bad --synthetic tiny --contexts x
bad --synthetic tiny --prompt 0
bad --synthetic tiny --kernels no-such-set
bad --synthetic tiny --ctx 16 --contexts 64
bad --synthetic no-such-shape
bad --synthetic tiny --bogus
bad --synthetic tiny --batch 0
bad --synthetic tiny --batch 257
echo "ok: bad usage fails with one line"
