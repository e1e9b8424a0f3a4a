#!/usr/bin/env bash
# A curl-only load driver for machines without node (the GPU hosts): N clients
# each loop over non-streamed /v1/completions for S seconds. Prints requests/s,
# aggregate generated tokens/s, latency percentiles, errors, and the server's
# RSS before and after. tests/server/load.mjs is the fuller tool (streaming, TTFT).
#
#   tests/server/load-curl.sh URL PID CLIENTS SECONDS MAX_TOKENS [PROMPT_JSON]
#   (PROMPT_JSON default: [1,2,...,16], token ids, so tokenizer-less synthetic models work;
#   TEMP=0 in the environment makes the requests greedy, default 0.8; EXTRA=',"key":value'
#   adds fields to every request body)
set -u
url=$1 pid=$2 clients=$3 seconds=$4 max_tokens=$5 prompt=${6:-[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status" 2>/dev/null; }
temp=${TEMP:-0.8}
body() { printf '{"prompt":%s,"max_tokens":%d,"temperature":%s,"seed":%d,"ignore_eos":true%s}' "$prompt" "$max_tokens" "$temp" "$1" "${EXTRA:-}"; }
curl -s -o /dev/null "$url/v1/completions" -d "$(body 0)"   # warm-up
rss0=$(rss "$pid")
t0=$(date +%s%N); deadline=$((t0 + seconds * 1000000000))
for c in $(seq "$clients"); do
  (
    i=0
    while [ "$(date +%s%N)" -lt "$deadline" ]; do
      i=$((i+1))
      curl -s -o "$tmp/r$c" -w '%{http_code} %{time_total}\n' "$url/v1/completions" -d "$(body $((c*100000+i)))" >"$tmp/w$c" || echo "000 0" >"$tmp/w$c"
      read -r code t <"$tmp/w$c"
      n=$(grep -o '"completion_tokens":[0-9]*' "$tmp/r$c" | cut -d: -f2)
      echo "$code $t ${n:-0}" >>"$tmp/log$c"
    done
  ) &
done
wait
t1=$(date +%s%N)
rss1=$(rss "$pid")
el=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print (b - a) / 1e9 }')
cat "$tmp"/log* >"$tmp/all"
awk '$1 == 200 { print $2 * 1000 }' "$tmp/all" | sort -n >"$tmp/lat"
n=$(wc -l <"$tmp/lat")
pct() { [ "$n" -gt 0 ] && sed -n "$(( (n * $1 + 99) / 100 ))p" "$tmp/lat" | cut -d. -f1 || echo -; }
awk -v el="$el" -v c="$clients" -v r0="$rss0" -v r1="$rss1" -v p50="$(pct 50)" -v p90="$(pct 90)" -v p99="$(pct 99)" '
  { if ($1 == 200) { ok++; tok += $3 } else err++ }
  END {
    printf "%d clients, %.1f s: %d requests (%d errors), %.2f req/s, %.1f generated tok/s; latency p50/p90/p99 %s/%s/%s ms; RSS %s -> %s MiB\n",
      c, el, ok + err, err, ok / el, tok / el, p50, p90, p99, r0, r1
  }' "$tmp/all"
