#!/usr/bin/env bash
# 1bit tokenize / detokenize, black box: the 46 llama.cpp LLaMA-3 vectors
# (ids computed by HF tokenizers) through the CLI with both tokenizer files,
# byte-exact round trips, --special, --bos, and one-line errors.
set -u
BIN=${OB_BIN:-build/1bit}
SHARED=${OB_SHARED:-../shared}
T=$SHARED/data/llama3-tokenizer
. "$(dirname "$0")/../lib.sh"
[ -f "$T/tokenizer.json" ] && [ -f "$T/ggml-vocab-llama-bpe.gguf.inp" ] ||
  skip "$T is absent; set OB_SHARED or place shared/ beside the repo"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# Split the .inp cases (separated by "\n__ggml_vocab_test__\n") into files, bytes exact.
awk -v dir="$tmp" 'BEGIN { RS = "\n__ggml_vocab_test__\n"; ORS = "" }
  { f = sprintf("%s/case%02d", dir, NR); printf "%s", $0 > f; close(f) }' "$T/ggml-vocab-llama-bpe.gguf.inp"
n_out=$(wc -l < "$T/ggml-vocab-llama-bpe.gguf.out")
[ "$n_out" -eq 46 ] || bad "expected 46 lines in the .out file, found $n_out"
# Every case with tokenizer.model; every fifth with tokenizer.json too (the
# unit tests run all of them from both files in-process, which is faster).
: > "$tmp/all_ids"; : > "$tmp/all_text"
for i in $(seq 1 "$n_out"); do
  case=$(printf "%s/case%02d" "$tmp" "$i")
  [ -f "$case" ] || { bad "case $i missing after splitting"; continue; }
  want=$(sed -n "${i}p" "$T/ggml-vocab-llama-bpe.gguf.out" | sed 's/^ *//')
  toks="$T/tokenizer.model"
  [ $((i % 5)) -eq 1 ] && toks="$toks $T/tokenizer.json"
  for tok in $toks; do
    got=$("$BIN" tokenize --tokenizer "$tok" -f "$case") || { bad "tokenize failed on case $i"; continue; }
    [ "$got" = "$want" ] || bad "$(basename "$tok") case $i: got '$got', want '$want'"
  done
  printf ' %s' "$got" >> "$tmp/all_ids"
  cat "$case" >> "$tmp/all_text"
done
# Round trip: detokenizing all the ids gives all the cases' bytes back.
"$BIN" detokenize --tokenizer "$T/tokenizer.model" --ids "$(cat "$tmp/all_ids")" > "$tmp/back" || bad "detokenize failed"
cmp -s "$tmp/all_text" "$tmp/back" || bad "the cases do not round-trip through detokenize"

J=$T/tokenizer.json
# Special tokens only with --special; BOS only with --bos.
got=$("$BIN" tokenize --tokenizer "$J" -p "<|eot_id|>")
case " $got " in *" 128009 "*) bad "<|eot_id|> became 128009 without --special";; esac
[ "$("$BIN" tokenize --tokenizer "$J" --special -p "<|eot_id|>")" = "128009" ] || bad "--special did not give 128009"
[ "$("$BIN" tokenize --tokenizer "$J" --bos -p "Hello world")" = "128000 9906 1917" ] || bad "--bos"
# --pieces: one id<TAB>text line per token.
printf '9906\tHello\n1917\t world\n' > "$tmp/want_pieces"
"$BIN" tokenize --tokenizer "$J" --pieces -p "Hello world" > "$tmp/pieces" && cmp -s "$tmp/pieces" "$tmp/want_pieces" || bad "--pieces output"
[ "$("$BIN" detokenize --tokenizer "$J" --ids 128000,9906,1917)" = "<|begin_of_text|>Hello world" ] || bad "detokenize with BOS"

# Errors: exit 1 with one line on stderr.
expect_error() { # description, command...
  local d=$1; shift
  if "$@" > /dev/null 2> "$tmp/err"; then bad "$d: succeeded"; return; fi
  [ "$(wc -l < "$tmp/err")" -eq 1 ] || bad "$d: stderr is not one line: $(cat "$tmp/err")"
  grep -q '^1bit ' "$tmp/err" || bad "$d: stderr does not start with '1bit '"
}
expect_error "no tokenizer" "$BIN" tokenize -p hi
expect_error "missing file" "$BIN" tokenize --tokenizer "$tmp/nope.json" -p hi
expect_error "not a tokenizer" "$BIN" tokenize --tokenizer "$T/SOURCES.md" -p hi
expect_error "both -p and -f" "$BIN" tokenize --tokenizer "$J" -p hi -f "$T/SOURCES.md"
expect_error "id out of range" "$BIN" detokenize --tokenizer "$J" --ids 1,128256
expect_error "bad id list" "$BIN" detokenize --tokenizer "$J" --ids 1,x
expect_error "no ids" "$BIN" detokenize --tokenizer "$J"
printf '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ' > "$tmp/broken.json"
expect_error "truncated tokenizer.json" "$BIN" tokenize --tokenizer "$tmp/broken.json" -p hi
exit $fail
