#!/usr/bin/env bash
# The AArch64 build of 1bit (build-arm/1bit) under qemu-user, end to end with
# each NEON kernel set, on a CPU model with dotprod and on one without:
#  - stories260K greedy text begins byte for byte with llama2.c's, and the
#    greedy ids equal those of the scalar twins;
#  - the bitnet-tiny 7-token prompt meets the parity criterion of
#    ../shared/fixtures/README.md: every row of logits within 1e-4 (relative
#    L2) of the reference logits.f32;
#  - "auto" picks the best set of each CPU model, and asking for neon-dotprod
#    where the CPU lacks it is an error.
# Run by `make test-arm`; ARM_QEMU and ARM_BIN override the emulator and binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
QEMU=${ARM_QEMU:-qemu-aarch64 -L /usr/aarch64-linux-gnu}
BIN=${ARM_BIN:-build-arm/1bit}
SHARED=${OB_SHARED:-../shared}
STORIES=$SHARED/data/stories260K/stories260K.gguf
EXPECTED=$SHARED/data/stories260K/expected-run-t0-n200.txt
FIX=$SHARED/fixtures/bitnet-tiny
if [ ! -f "$STORIES" ] || [ ! -d "$FIX" ]; then
  if [ "${CI:-}" = true ]; then echo "FAIL: $SHARED is missing (CI requires it)"; exit 1; fi
  echo "SKIP: $SHARED is absent"; exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
arm() { local cpu=$1; shift; $QEMU -cpu "$cpu" "$BIN" "$@"; }

# Largest relative L2 error over rows of 1000 float32 logits: file1 vs file2.
max_row_err() {
  paste -d' ' <(od -An -v -t f4 -w4000 "$1") <(od -An -v -t f4 -w4000 "$2") |
    awk '{ n = NF / 2; num = 0; den = 0
           for (i = 1; i <= n; i++) { d = $i - $(i + n); num += d * d; den += $(i + n) * $(i + n) }
           e = sqrt(num / den); if (e > m) m = e }
         END { printf "%.3g\n", m }'
}

IDS=1,392,518,352,977,113,647
head -c $((7 * 1000 * 4)) "$FIX/logits.f32" >"$tmp/ref.f32"
arm max run -m "$STORIES" --ids 1 --temp 0 -n 40 --print-ids --quiet --kernels scalar >"$tmp/ids-scalar.txt"
[ "$(wc -w <"$tmp/ids-scalar.txt")" = 40 ] || fail "scalar run printed no ids"
exp_len=$(wc -c <"$EXPECTED")

for cpu_set in "max neon-dotprod" "max neon" "cortex-a72 neon"; do
  read -r cpu set <<<"$cpu_set"
  arm "$cpu" run -m "$STORIES" -p "" --temp 0 -n 256 --quiet --kernels "$set" >"$tmp/out.txt" 2>"$tmp/err.txt" \
    || fail "$set on $cpu: run stories260K: $(cat "$tmp/err.txt")"
  head -c "$exp_len" "$tmp/out.txt" | cmp -s - "$EXPECTED" || fail "$set on $cpu: stories260K greedy text differs from llama2.c's"
  arm "$cpu" run -m "$STORIES" --ids 1 --temp 0 -n 40 --print-ids --quiet --kernels "$set" >"$tmp/ids.txt"
  cmp -s "$tmp/ids.txt" "$tmp/ids-scalar.txt" || fail "$set on $cpu: greedy ids differ from the scalar twins'"
  arm "$cpu" logits -m "$FIX" --ids "$IDS" -o "$tmp/logits.f32" --kernels "$set"
  err=$(max_row_err "$tmp/logits.f32" "$tmp/ref.f32")
  awk -v e="$err" 'BEGIN { exit !(e <= 1e-4) }' || fail "$set on $cpu: bitnet-tiny prompt 0 row error $err > 1e-4"
  echo "ok: $set on qemu -cpu $cpu: stories260K text and ids, bitnet-tiny prompt 0 max row error $err"
done

# The scalar twins meet the criterion too (so the check above can tell them apart from noise).
arm max logits -m "$FIX" --ids "$IDS" -o "$tmp/logits.f32" --kernels scalar
echo "ok: scalar on qemu -cpu max: bitnet-tiny prompt 0 max row error $(max_row_err "$tmp/logits.f32" "$tmp/ref.f32")"

# Selection: auto is the best set of each model; dotprod is refused where absent.
small="--synthetic tiny --no-probe --json --prompt 8 --contexts 8 --gen 2 --reps 1"
arm max bench $small --head i8 >"$tmp/b1.json" 2>/dev/null
arm cortex-a72 bench $small --head i8 >"$tmp/b2.json" 2>/dev/null
jq -e '.kernels == "neon-dotprod"' "$tmp/b1.json" >/dev/null || fail "auto on -cpu max is $(jq -r .kernels "$tmp/b1.json")"
jq -e '.kernels == "neon"' "$tmp/b2.json" >/dev/null || fail "auto on -cpu cortex-a72 is $(jq -r .kernels "$tmp/b2.json")"
if arm cortex-a72 logits -m "$FIX" --ids "$IDS" -o "$tmp/x.f32" --kernels neon-dotprod 2>"$tmp/err.txt"; then
  fail "neon-dotprod accepted on a CPU without dotprod"
fi
grep -q "neon-dotprod" "$tmp/err.txt" || fail "no clear error for neon-dotprod without dotprod: $(cat "$tmp/err.txt")"
echo "ok: auto is neon-dotprod with dotprod and neon without; neon-dotprod refused without dotprod"
