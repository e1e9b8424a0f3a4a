#!/usr/bin/env bash
# Black-box tests of `1bit serve` with real clients: curl, and the official
# openai npm package (tests/server/*.test.mjs) against the stories260K model.
# Starts three servers on free loopback ports: the main one (stories260K, with
# an API key), a small one (one slot, a queue of one) and a slow one (the
# disconnect tests); the last two serve random weights, slow enough for a
# test to act in the middle of a generation. Runs the tests, stops them with
# SIGTERM and checks that they exit cleanly.
set -u
cd "$(dirname "$0")/../.."
OB_BIN=${OB_BIN:-$PWD/build/1bit}
SHARED=${OB_SHARED:-../shared}
MODEL=$SHARED/data/stories260K/stories260K.gguf
. tests/lib.sh

[ -f "$MODEL" ] || skip "$MODEL is absent (set OB_SHARED or place shared/ beside the repo)"
if "$OB_BIN" serve --help 2>&1 | grep -q "built without server support"; then
  skip "1bit was built without server support (civetweb, jansson)"
fi
command -v node >/dev/null && command -v npm >/dev/null || skip "node and npm are needed"
command -v curl >/dev/null || skip "curl is needed"
if [ ! -d tests/server/node_modules/openai ]; then
  (cd tests/server && npm ci --no-audit --no-fund --loglevel=error) >&2 || skip "npm ci failed in tests/server"
fi

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT

# start NAME ARGS...: runs the server, waits for /health, sets URL_<NAME>.
start() {
  local name=$1; shift
  : >"$tmp/$name.log"
  local src=(-m "$MODEL"); [ "$1" = --synthetic ] && src=()
  "$OB_BIN" serve "${src[@]}" --port 0 "$@" >"$tmp/$name.log" 2>&1 &
  local pid=$! port=
  pids+=("$pid")
  eval "PID_$name=$pid"
  for _ in $(seq 300); do
    port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/$name.log")
    [ -n "$port" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")" = 200 ] && break
    kill -0 "$pid" 2>/dev/null || { echo "FAIL: server $name exited:"; cat "$tmp/$name.log"; exit 1; }
    sleep 0.1
  done
  [ -n "$port" ] || { echo "FAIL: server $name did not start"; cat "$tmp/$name.log"; exit 1; }
  eval "URL_$name=http://127.0.0.1:$port"
}

KEY=test-key-$RANDOM$RANDOM
start main --threads 1 --ctx 1024 --slots 8 --queue 64 --max-body 65536 --api-key "$KEY"
# Random weights at a small shape, slow enough (about a millisecond a token)
# for a client to leave in the middle of a 4000-token generation, and for the
# 503 test to hold the one slot of `small` while it fills the queue.
start small --synthetic tiny --threads 1 --ctx 4096 --slots 1 --queue 1
start slow --synthetic tiny --threads 1 --ctx 4096 --slots 2 --queue 4
fails=0
check() { # name, condition already evaluated in $?
  if [ "$1" = 0 ]; then echo "ok   $2"; else echo "FAIL $2"; fails=$((fails+1)); fi
}

# ---- curl -----------------------------------------------------------------
auth=(-H "Authorization: Bearer $KEY")
out=$(curl -s "$URL_main/health"); [ "$out" = '{"status":"ok"}' ]; check $? "curl /health: $out"
out=$(curl -s "$URL_main/v1/models"); echo "$out" | grep -q '"id":"stories260K.gguf"'; check $? "curl /v1/models"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL_main/v1/completions" -d '{"prompt":"x"}'); [ "$code" = 401 ]; check $? "curl without key: $code"
# Greedy text of an empty prompt: a prefix of llama2.c's reference output.
out=$(curl -s "${auth[@]}" "$URL_main/v1/completions" -d '{"prompt":"","max_tokens":30,"temperature":0}')
text=$(printf '%s' "$out" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.parse(s).choices[0].text))')
ref=$(cat "$SHARED/data/stories260K/expected-run-t0-n200.txt")
[ -n "$text" ] && [ "${ref#"$text"}" != "$ref" ]; check $? "curl completion is a prefix of the reference: ${text:0:60}..."
# SSE: data: lines of JSON, ending with data: [DONE] (a token may hold back
# text, e.g. a partial UTF-8 character, but stories260K's pieces are ASCII)
curl -sN "${auth[@]}" "$URL_main/v1/chat/completions" \
  -d '{"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":10,"temperature":0,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}' >"$tmp/sse"
# role chunk, content chunks (text of several tokens may share one), finish
# chunk, usage chunk, [DONE]
[ "$(grep '^data: ' "$tmp/sse" | tail -1)" = "data: [DONE]" ] &&
  grep '^data: ' "$tmp/sse" | grep -v '\[DONE\]' | sed 's/^data: //' | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const ev = s.trim().split("\n").map((l) => JSON.parse(l));
      const ok = ev[0].choices[0].delta.role === "assistant" && ev.length >= 4 &&
        ev.at(-2).choices[0].finish_reason === "length" && ev.at(-1).choices.length === 0 &&
        ev.at(-1).usage.completion_tokens === 10 && new Set(ev.map((e) => e.id)).size === 1;
      process.exit(ok ? 0 : 1);
    })'
check $? "curl SSE stream: $(grep -c '^data: ' "$tmp/sse") events, valid JSON, ends with [DONE]"
code=$(curl -s -o "$tmp/err" -w '%{http_code}' "${auth[@]}" "$URL_main/v1/chat/completions" -d '{"messages": [')
[ "$code" = 400 ] && grep -q '"error":{"message":' "$tmp/err"; check $? "curl malformed JSON: $code $(cat "$tmp/err")"

# ---- the openai client ----------------------------------------------------------
export OB_SERVER_URL=$URL_main OB_SERVER_SMALL_URL=$URL_small OB_SERVER_SLOW_URL=$URL_slow OB_API_KEY=$KEY OB_SHARED=$SHARED
for t in api errors concurrency disconnect; do
  if node --test "tests/server/$t.test.mjs" >"$tmp/$t.out" 2>&1; then
    echo "ok   node $t: $(grep -E '^# pass' "$tmp/$t.out")"
    grep -hE '^ *# slot freed' "$tmp/$t.out" | sed 's/^ *#/     /'
  else
    echo "FAIL node $t"; cat "$tmp/$t.out"; fails=$((fails+1))
  fi
done

# ---- /health while loading ----------------------------------------------------
# A synthetic model at BitNet 2B-4T shapes takes seconds to build: the listener
# is up first, /health answers 503 until the model is ready, /v1/models at once.
"$OB_BIN" serve --synthetic 2b4t --port 0 --ctx 64 --slots 1 --threads 1 >"$tmp/loading.log" 2>&1 &
pid_loading=$!; pids+=("$pid_loading")
for _ in $(seq 100); do grep -q "listening on" "$tmp/loading.log" && break; sleep 0.05; done
url_loading=$(sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$tmp/loading.log")
out=$(curl -s -w ' %{http_code}' "$url_loading/health")
case "$out" in *'"code":"model_loading"'*' 503') ! grep -q ready "$tmp/loading.log";; *) false;; esac
check $? "/health while loading: $out"
out=$(curl -s -w ' %{http_code}' "$url_loading/v1/models"); case "$out" in *synthetic-2b4t*' 200') true;; *) false;; esac
check $? "/v1/models while loading: $out"
kill -TERM "$pid_loading"  # a stop during the load waits for it, then exits cleanly
for _ in $(seq 600); do kill -0 "$pid_loading" 2>/dev/null || break; sleep 0.1; done
wait "$pid_loading"; rc=$?; [ $rc = 0 ]; check $? "server stopped during its load (exit $rc)"

# ---- clean shutdown -------------------------------------------------------------
for name in main small slow; do
  eval "pid=\$PID_$name"
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then echo "FAIL server $name did not stop on SIGTERM"; fails=$((fails+1));
  else wait "$pid"; rc=$?; [ $rc = 0 ]; check $? "server $name stopped on SIGTERM (exit $rc)"; fi
  if grep -qE "ERROR: AddressSanitizer|runtime error:|LeakSanitizer" "$tmp/$name.log"; then
    echo "FAIL sanitizer report from $name:"; cat "$tmp/$name.log"; fails=$((fails+1))
  fi
done
[ "$fails" = 0 ] || { echo "$fails server checks failed"; exit 1; }
echo "all server checks passed"
