#!/usr/bin/env bash
# Black-box tests of run / logits / chat / ppl on real models from ../shared.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${OB_BIN:-build/1bit}
SHARED=${OB_SHARED:-../shared}
STORIES=$SHARED/data/stories260K/stories260K.gguf
FIX=$SHARED/fixtures/bitnet-tiny
. tests/lib.sh
[ -f "$STORIES" ] && [ -d "$FIX" ] || skip "$SHARED is absent; set OB_SHARED or place shared/ beside the repo"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# stories260K greedy: output begins byte for byte with llama2.c's expected text.
"$BIN" run -m "$STORIES" -p "" --temp 0 -n 256 --quiet >"$tmp/out.txt" 2>"$tmp/err.txt" || fail "run stories260K: $(cat "$tmp/err.txt")"
exp_len=$(wc -c <"$SHARED/data/stories260K/expected-run-t0-n200.txt")
head -c "$exp_len" "$tmp/out.txt" | cmp -s - "$SHARED/data/stories260K/expected-run-t0-n200.txt" \
  || fail "stories260K greedy output differs from expected-run-t0-n200.txt: $(head -c 200 "$tmp/out.txt")"
echo "ok: stories260K greedy text matches llama2.c ($exp_len bytes)"

# A continuation keeps the space between the prompt and the first new word.
[ "$("$BIN" run -m "$STORIES" -p "Once upon a" --temp 0 -n 2 --quiet)" = " time," ] || fail "continuation lost its leading space"

# The same with the reference (scalar) kernels and with ids printed.
"$BIN" run -m "$STORIES" --ids 1 --temp 0 -n 40 --print-ids --quiet --kernels scalar >"$tmp/ids1.txt"
"$BIN" run -m "$STORIES" --ids 1 --temp 0 -n 40 --print-ids --quiet >"$tmp/ids2.txt"
cmp -s "$tmp/ids1.txt" "$tmp/ids2.txt" || fail "scalar and SIMD kernels generate different ids"
[ "$(wc -w <"$tmp/ids1.txt")" = 40 ] || fail "--print-ids printed $(wc -w <"$tmp/ids1.txt") ids, expected 40"

# A fixed seed gives the same sampled text twice; another seed differs.
"$BIN" run -m "$STORIES" -p "Once" --temp 1 --seed 7 -n 60 --quiet >"$tmp/s1.txt"
"$BIN" run -m "$STORIES" -p "Once" --temp 1 --seed 7 -n 60 --quiet >"$tmp/s2.txt"
"$BIN" run -m "$STORIES" -p "Once" --temp 1 --seed 8 -n 60 --quiet >"$tmp/s3.txt"
cmp -s "$tmp/s1.txt" "$tmp/s2.txt" || fail "same seed, different text"
cmp -s "$tmp/s1.txt" "$tmp/s3.txt" && fail "different seeds gave the same 60 tokens"

# Stop strings end generation before the stop text.
"$BIN" run -m "$STORIES" -p "" --temp 0 -n 200 --stop "Lily" --quiet >"$tmp/stop.txt"
[ "$(cat "$tmp/stop.txt")" = "Once upon a time, there was a little girl named " ] || fail "stop string: got '$(cat "$tmp/stop.txt")'"

# logits: [tokens x vocab] float32; the fixture's HF dir and GGUF agree with each other
"$BIN" logits -m "$FIX" --ids 1,392,518,352,977,113,647 -o "$tmp/hf.f32"
[ "$(wc -c <"$tmp/hf.f32")" = $((7 * 1000 * 4)) ] || fail "logits file has the wrong size"
for g in i2_s tq2_0 tq1_0; do
  "$BIN" logits -m "$SHARED/fixtures/bitnet-tiny-gguf/bitnet-tiny-$g.gguf" --ids 1,392,518,352,977,113,647 -o "$tmp/$g.f32"
done
cmp -s "$tmp/i2_s.f32" "$tmp/tq2_0.f32" && cmp -s "$tmp/i2_s.f32" "$tmp/tq1_0.f32" || fail "GGUF variants give different logits"

# The converted .h1b gives bitwise the logits of its source (HF directory and GGUF).
"$BIN" convert "$FIX" -o "$tmp/hf.h1b" 2>/dev/null
"$BIN" convert "$SHARED/fixtures/bitnet-tiny-gguf/bitnet-tiny-tq1_0.gguf" -o "$tmp/tq1.h1b" 2>/dev/null
"$BIN" logits -m "$tmp/hf.h1b" --ids 1,392,518,352,977,113,647 -o "$tmp/hf-h1b.f32"
"$BIN" logits -m "$tmp/tq1.h1b" --ids 1,392,518,352,977,113,647 -o "$tmp/tq1-h1b.f32"
cmp -s "$tmp/hf.f32" "$tmp/hf-h1b.f32" || fail "HF directory and its .h1b give different logits"
cmp -s "$tmp/tq1_0.f32" "$tmp/tq1-h1b.f32" || fail "TQ1_0 GGUF and its .h1b give different logits"
"$BIN" convert "$STORIES" -o "$tmp/stories.h1b" 2>/dev/null
"$BIN" run -m "$tmp/stories.h1b" -p "" --temp 0 -n 256 --quiet >"$tmp/out-h1b.txt"
cmp -s "$tmp/out.txt" "$tmp/out-h1b.txt" || fail "stories260K .h1b greedy output differs from the GGUF's"

# chat: multi-turn over stdin keeps going and answers each turn
printf 'Hello\nTell me a story\n/exit\n' | "$BIN" chat -m "$STORIES" --temp 0 -n 20 >"$tmp/chat.txt" 2>"$tmp/chat.err" || fail "chat: $(cat "$tmp/chat.err")"
[ "$(grep -c . "$tmp/chat.txt")" -ge 2 ] || fail "chat printed fewer than two replies"

# ppl: runs and reports a finite perplexity as JSON
printf 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. %.0s' $(seq 1 30) >"$tmp/text.txt"
"$BIN" ppl -m "$STORIES" -f "$tmp/text.txt" --ctx 64 --json >"$tmp/ppl.json" 2>/dev/null
grep -Eq '"ppl": [0-9]+\.[0-9]+' "$tmp/ppl.json" || fail "ppl JSON: $(cat "$tmp/ppl.json")"
ppl=$(sed -E 's/.*"ppl": ([0-9.]+).*/\1/' "$tmp/ppl.json")
awk -v p="$ppl" 'BEGIN { exit !(p > 1 && p < 3) }' || fail "ppl of a repeated training-style text should be small, got $ppl"

# Bad usage and bad input: one line on stderr, exit 1.
for args in "run" "run -m /nonexistent -p x" "run -m $STORIES --ids 1,99999" "logits -m $FIX --ids x -o $tmp/x" \
            "run -m $STORIES -p x -n abc" "ppl -m $STORIES" "run -m $FIX -p hello"; do
  set +e; $BIN $args >/dev/null 2>"$tmp/e.txt"; rc=$?; set -e
  [ $rc = 1 ] || fail "'1bit $args' exited $rc, expected 1"
  [ "$(wc -l <"$tmp/e.txt")" = 1 ] || fail "'1bit $args' printed $(wc -l <"$tmp/e.txt") lines on stderr: $(cat "$tmp/e.txt")"
done
echo "ok: run, logits, chat, ppl and error paths"
