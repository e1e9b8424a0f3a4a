#!/usr/bin/env bash
# 1bit convert / info, black box: every fixture (HF directory, the three GGUF
# ternary encodings, stories260K) to .h1b and described correctly; corrupt,
# missing and wrong inputs give exit 1 and exactly one line on stderr.
set -u
cd "$(dirname "$0")/../.."
BIN=${OB_BIN:-build/1bit}
SHARED=${OB_SHARED:-../shared}
HF=$SHARED/fixtures/bitnet-tiny
GG=$SHARED/fixtures/bitnet-tiny-gguf
ST=$SHARED/data/stories260K/stories260K.gguf
. tests/lib.sh
for f in "$HF/config.json" "$GG/bitnet-tiny-i2_s.gguf" "$GG/bitnet-tiny-tq2_0.gguf" "$GG/bitnet-tiny-tq1_0.gguf" "$ST"; do
  [ -f "$f" ] || skip "$f is absent; set OB_SHARED or place shared/ beside the repo"
done
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# Runs "$@", which must fail with status 1 and exactly one line "1bit CMD: ..."
# on stderr, and no sanitizer or crash text.
expect_error() {
  local what=$1; shift
  "$@" > "$tmp/out" 2> "$tmp/err"
  local rc=$? lines
  lines=$(wc -l < "$tmp/err")
  [ "$rc" -eq 1 ] || bad "$what: exit status $rc, expected 1"
  [ "$lines" -eq 1 ] || bad "$what: $lines lines on stderr, expected 1: $(head -c 600 "$tmp/err")"
  grep -q "^1bit [a-z]*: " "$tmp/err" || bad "$what: stderr is not '1bit <cmd>: <message>': $(head -c 300 "$tmp/err")"
  if grep -qiE "sanitizer|segmentation|runtime error|core dumped" "$tmp/err"; then bad "$what: crashed: $(head -c 600 "$tmp/err")"; fi
}

# info must print "key   value" rows; value of one key.
field() { sed -n "s/^$2   *//p" "$1" | head -1; }

# Flips byte $2 of file $1 (xor 0xff).
flip() {
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "$(printf '\\%03o' $((b ^ 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# ---- convert and describe every fixture ---------------------------------
# Expected values come from the fixtures' own documentation (README.md, config.json).
check_bitnet() { # info output file, label
  local o=$1 w=$2
  [ "$(field "$o" architecture)" = bitnet ] || bad "$w: architecture '$(field "$o" architecture)'"
  [ "$(field "$o" vocab)" = 1000 ] || bad "$w: vocab '$(field "$o" vocab)'"
  [ "$(field "$o" embedding)" = 512 ] || bad "$w: embedding '$(field "$o" embedding)'"
  [ "$(field "$o" layers)" = 3 ] || bad "$w: layers"
  [ "$(field "$o" feed-forward)" = 1536 ] || bad "$w: feed-forward"
  [ "$(field "$o" heads)" = 4 ] || bad "$w: heads"
  [ "$(field "$o" "kv heads")" = 1 ] || bad "$w: kv heads"
  [ "$(field "$o" "head dim")" = 128 ] || bad "$w: head dim"
  [ "$(field "$o" rope)" = "neox, base 500000" ] || bad "$w: rope '$(field "$o" rope)'"
  [ "$(field "$o" activation)" = relu2 ] || bad "$w: activation"
  [ "$(field "$o" "tied embed")" = yes ] || bad "$w: tied"
  # 3 layers x 7 ternary linears; every one [in, out] of the README's shapes.
  grep -q "^ternary  *21 tensors, 9043968 weights in 2260992 bytes" "$o" || bad "$w: ternary line: $(grep ^ternary "$o")"
  grep -q "^  t2  *21 tensors" "$o" || bad "$w: t2 count"
  grep -q "^special  *bos 1.*eos 2" "$o" || bad "$w: special tokens: $(grep ^special "$o")"
}

i=0
for src in "$HF" "$GG/bitnet-tiny-i2_s.gguf" "$GG/bitnet-tiny-tq2_0.gguf" "$GG/bitnet-tiny-tq1_0.gguf"; do
  i=$((i+1)); out=$tmp/b$i.h1b; w=$(basename "$src")
  "$BIN" convert "$src" -o "$out" 2> "$tmp/cerr" || { bad "convert $w: $(cat "$tmp/cerr")"; continue; }
  [ "$(wc -l < "$tmp/cerr")" -eq 1 ] && grep -q "^1bit convert: wrote .*: 56 tensors" "$tmp/cerr" || bad "convert $w summary: $(cat "$tmp/cerr")"
  [ -f "$out.tmp" ] && bad "convert $w left $out.tmp"
  "$BIN" info -m "$out" --verify --tensors > "$tmp/info$i" 2> "$tmp/ierr" || { bad "info $w: $(cat "$tmp/ierr")"; continue; }
  [ -s "$tmp/ierr" ] && bad "info $w wrote to stderr: $(cat "$tmp/ierr")"
  check_bitnet "$tmp/info$i" "$w.h1b"
  grep -q "^verify  *ok" "$tmp/info$i" || bad "$w: no verify line"
  grep -q "^blk.2.ffn_down.weight  *t2  *\[1536, 512\]  *196608$" "$tmp/info$i" || bad "$w: ffn_down row in --tensors"
  # The source itself, imported in memory, is described the same way.
  "$BIN" info -m "$src" > "$tmp/src$i" 2> "$tmp/ierr" || bad "info on source $w: $(cat "$tmp/ierr")"
  check_bitnet "$tmp/src$i" "$w"
done
# All four encodings hold the same tensors (the HF embedding is bf16, the GGUF ones f16).
table() { sed -n '/^name  *type  *shape/,$p' "$1" | grep -v '^token_embd.weight '; }
[ "$(table "$tmp/info1" | wc -l)" -eq 56 ] || bad "--tensors listed $(table "$tmp/info1" | wc -l) lines, expected a header and 55 tensors"
for j in 2 3 4; do
  diff <(table "$tmp/info1") <(table "$tmp/info$j") > /dev/null || bad "tensor table of b$j.h1b differs from the HF one"
done

"$BIN" convert "$ST" -o "$tmp/st.h1b" --align 4096 2> "$tmp/cerr" || bad "convert stories260K: $(cat "$tmp/cerr")"
if "$BIN" info -m "$tmp/st.h1b" --verify > "$tmp/st" 2> "$tmp/ierr"; then
  [ "$(field "$tmp/st" architecture)" = llama ] || bad "stories: architecture"
  [ "$(field "$tmp/st" vocab)" = 512 ] || bad "stories: vocab"
  [ "$(field "$tmp/st" embedding)" = 64 ] || bad "stories: embedding"
  [ "$(field "$tmp/st" layers)" = 5 ] || bad "stories: layers"
  [ "$(field "$tmp/st" activation)" = silu ] || bad "stories: activation"
  grep -q "4096-byte aligned" "$tmp/st" || bad "stories: --align 4096 not recorded"
  grep -q "^tokenizer  *llama: 512 tokens" "$tmp/st" || bad "stories: tokenizer: $(grep ^tokenizer "$tmp/st")"
  grep -q "^ternary  *none" "$tmp/st" || bad "stories: ternary"
else
  bad "info stories: $(cat "$tmp/ierr")"
fi
# .h1b to .h1b keeps everything, provenance included: the same bytes.
"$BIN" convert "$tmp/b1.h1b" -o "$tmp/again.h1b" 2> /dev/null || bad "convert .h1b to .h1b"
cmp -s "$tmp/b1.h1b" "$tmp/again.h1b" || bad "h1b -> h1b changed the file"
"$BIN" convert "$HF" -o "$tmp/b1-again.h1b" 2> /dev/null && cmp -s "$tmp/b1.h1b" "$tmp/b1-again.h1b" || bad "converting twice gives different bytes"

# ---- corrupt copies ------------------------------------------------------------
good=$tmp/b2.h1b
size=$(stat -c %s "$good")
data=$(od -An -tu8 -j 72 -N8 "$good" | tr -d ' ')   # data_offset (docs/FORMAT.md)
for cut in 0 5 100 127 128 300 $((data - 1)) "$data" $((data + 4096)) $((size / 2)) $((size - 1)); do
  cp "$good" "$tmp/c.h1b"; truncate -s "$cut" "$tmp/c.h1b"
  expect_error "info on file truncated to $cut" "$BIN" info -m "$tmp/c.h1b"
done
for at in 0 8 16 24 30 40 72 90 100 $((128 + 5)) $((128 + 192 * 3 + 130)) $((data - 200)); do
  cp "$good" "$tmp/c.h1b"; flip "$tmp/c.h1b" "$at"
  expect_error "info on file with byte $at flipped" "$BIN" info -m "$tmp/c.h1b"
done
# A flipped data byte is found by --verify (reading it all), and convert refuses the source.
cp "$good" "$tmp/c.h1b"; flip "$tmp/c.h1b" $((data + 1000))
"$BIN" info -m "$tmp/c.h1b" > /dev/null 2>&1 || bad "info without --verify should not read tensor data"
expect_error "info --verify on flipped data" "$BIN" info -m "$tmp/c.h1b" --verify
grep -q "data checksum" "$tmp/err" || bad "verify message: $(cat "$tmp/err")"
cp "$good" "$tmp/c.h1b"; printf 'XXXX' | dd of="$tmp/c.h1b" bs=1 seek=0 conv=notrunc status=none
expect_error "bad magic" "$BIN" info -m "$tmp/c.h1b"
cp "$good" "$tmp/c.bin"; printf 'XXXX' | dd of="$tmp/c.bin" bs=1 seek=0 conv=notrunc status=none
expect_error "unknown file kind" "$BIN" info -m "$tmp/c.bin"
head -c 100000 "$GG/bitnet-tiny-i2_s.gguf" > "$tmp/trunc.gguf"
expect_error "truncated gguf" "$BIN" info -m "$tmp/trunc.gguf"
expect_error "convert of a truncated gguf" "$BIN" convert "$tmp/trunc.gguf" -o "$tmp/never.h1b"
[ -e "$tmp/never.h1b" ] || [ -e "$tmp/never.h1b.tmp" ] && bad "a failed convert left a file"

# ---- wrong inputs --------------------------------------------------------------
expect_error "missing file" "$BIN" info -m "$tmp/does-not-exist.h1b"
expect_error "missing source" "$BIN" convert "$tmp/does-not-exist.gguf" -o "$tmp/x.h1b"
mkdir -p "$tmp/emptydir"
expect_error "directory without config.json" "$BIN" info -m "$tmp/emptydir"
expect_error "no -m" "$BIN" info
expect_error "no -o" "$BIN" convert "$HF"
expect_error "bad --align" "$BIN" convert "$HF" -o "$tmp/x.h1b" --align 100
expect_error "unknown option" "$BIN" info -m "$good" --bogus
expect_error "output directory missing" "$BIN" convert "$HF" -o "$tmp/no/such/dir/x.h1b"
[ -e "$tmp/x.h1b" ] && bad "a refused convert wrote $tmp/x.h1b"

[ "$fail" -eq 0 ] && echo "formats: all checks passed"
exit "$fail"
