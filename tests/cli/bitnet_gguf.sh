#!/usr/bin/env bash
# bench/write_bitnet_gguf, black box: the random-weight I2_S GGUF it writes for
# the bitnet.cpp side-by-side (docs/PERFORMANCE.md) loads in 1bit, carries the
# shape and the synthetic vocabulary it promises, holds exactly the weights of
# `--synthetic` with the same seed, and runs. Tiny shape: a few MB, a second.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${OB_BIN:-build/1bit}
WRITER=${BUILD:-build}/bench/write_bitnet_gguf
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$WRITER" ] || fail "$WRITER is not built (make bench-tools)"

"$WRITER" --shape tiny "$tmp/tiny.gguf" || fail "writer failed on --shape tiny"
head -c 4 "$tmp/tiny.gguf" | grep -q '^GGUF$' || fail "no GGUF magic"

# The header as 1bit reads it: the tiny shape (model.h: 512 wide, 3 layers,
# 4 heads, 1 KV head, FF 1536, vocab 1000), I2_S ternaries at 2 bits/weight.
"$BIN" info -m "$tmp/tiny.gguf" --verify >"$tmp/info" || fail "info --verify: $(cat "$tmp/info")"
field() { sed -n "s/^$1   *//p" "$tmp/info" | head -1; }
[ "$(field architecture)" = bitnet ] || fail "architecture: $(field architecture)"
[ "$(field embedding)" = 512 ] && [ "$(field layers)" = 3 ] && [ "$(field heads)" = 4 ] &&
  [ "$(field 'kv heads')" = 1 ] && [ "$(field feed-forward)" = 1536 ] && [ "$(field vocab)" = 1000 ] ||
  fail "dims: $(cat "$tmp/info")"
[ "$(field activation)" = relu2 ] && [ "$(field 'sub-norms')" = yes ] && [ "$(field 'tied embed')" = yes ] ||
  fail "bitnet-b1.58 traits: $(cat "$tmp/info")"
field source | grep -q '(I2_S)$' || fail "not read as I2_S: $(field source)"
# 7 linears per layer; every one ternary at exactly 2 bits per weight.
field ternary | grep -q '^21 tensors, .*(2.000 bits/weight)$' || fail "ternary: $(field ternary)"
# 256 byte symbols + 16 "Ġx" + 16x16 letter merges; 250 specials at the top (1000/4).
field tokenizer | grep -q '^gpt2 (pre-tokenizer llama-bpe): 1000 tokens, 272 merges' || fail "tokenizer: $(field tokenizer)"
field special | grep -q '^bos 750 <|begin_of_text|>, eos 751 <|end_of_text|>, eot 759 <|eot_id|>' ||
  fail "special tokens: $(field special)"
echo "ok: the tiny I2_S GGUF loads with its shape and vocabulary"

# The vocabulary's construction, by hand: merges rank "Ġe" (256, the first
# "Ġx" merge) before "a t" (256 + 16 + 2*16 + 1 = 305: letters "etaoinsh...").
[ "$("$BIN" tokenize -m "$tmp/tiny.gguf" -p " eat")" = "256 305" ] || fail "tokenize ' eat'"

# Same weights as the engine's synthetic model of the same seed: bitwise the
# same logits (the I2_S bytes and the scale in each tensor's tail are right).
ids=750,1,300,42,999,7
"$BIN" logits --synthetic tiny --ids $ids -o "$tmp/synth.f32" --threads 2 || fail "logits --synthetic"
"$BIN" logits -m "$tmp/tiny.gguf" --ids $ids -o "$tmp/gguf.f32" --threads 2 || fail "logits -m gguf"
[ "$(stat -c %s "$tmp/gguf.f32")" = $((6 * 1000 * 4)) ] || fail "logits file size"
cmp -s "$tmp/synth.f32" "$tmp/gguf.f32" || fail "GGUF logits differ from --synthetic tiny (seed 1)"
# ... and another seed gives other weights.
"$WRITER" --shape tiny --seed 2 "$tmp/seed2.gguf" || fail "writer --seed 2"
"$BIN" logits -m "$tmp/seed2.gguf" --ids $ids -o "$tmp/seed2.f32" --threads 2 || fail "logits seed 2"
if cmp -s "$tmp/synth.f32" "$tmp/seed2.f32"; then fail "--seed 2 wrote the seed-1 weights"; fi
echo "ok: weights identical to --synthetic tiny; --seed changes them"

# Generation runs end to end on it (greedy, 4 tokens).
"$BIN" run -m "$tmp/tiny.gguf" -p "the cat sat" -n 4 --temp 0 --threads 2 --print-ids --quiet >"$tmp/ids" ||
  fail "run: $(cat "$tmp/ids")"
[ "$(wc -w <"$tmp/ids")" = 4 ] || fail "run printed '$(cat "$tmp/ids")', expected 4 ids"

# Failures: no output path (usage, 2); rows that are not whole 128-weight
# blocks cannot be I2_S (1, one message, no file left behind).
if "$WRITER" >/dev/null 2>&1; then fail "writer without OUT succeeded"; fi
if "$WRITER" --shape bitnet:200,1,2,1,300,1000 "$tmp/bad.gguf" 2>"$tmp/err"; then fail "200-wide rows accepted"; fi
grep -q "128-weight blocks" "$tmp/err" && [ "$(wc -l <"$tmp/err")" = 1 ] || fail "bad shape message: $(cat "$tmp/err")"
[ ! -e "$tmp/bad.gguf" ] || fail "a failed write left $tmp/bad.gguf"
echo "ok: generation runs; bad shapes fail cleanly"

# A full disk: one message, exit 1, and the device is left alone.
if [ -w /dev/full ]; then
  if "$WRITER" --shape tiny /dev/full 2>"$tmp/err"; then fail "writing to /dev/full succeeded"; fi
  grep -q "write failed" "$tmp/err" && [ "$(wc -l <"$tmp/err")" = 1 ] || fail "/dev/full message: $(cat "$tmp/err")"
  [ -c /dev/full ] || fail "/dev/full is gone"
  echo "ok: a failed write is reported"
fi
