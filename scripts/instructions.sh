#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: unlike CPU time on a shared VM, the
# count is the same from run to run, so a change to the request path can be compared A/B even
# on a noisy machine. Counts aigw's user-space instructions only (not the kernel's share).
#
#   scripts/instructions.sh                       # chat, stream, anthropic; target/release/aigw
#   scripts/instructions.sh messages messages-stream responses responses-stream
#   AIGW_BIN=/tmp/aigw-old scripts/instructions.sh chat
#   N=2000 scripts/instructions.sh stream
#   LIMIT='{calls: 1000000000, renewal_period: day}' scripts/instructions.sh chat   # admitted against counters
#   SHARED=redis scripts/instructions.sh chat   # ... kept in a redis-server it starts (aigw.shared_state)
#
# Each scenario runs the gateway under callgrind twice, for N/4 and N sequential keep-alive
# requests against examples/bench_upstream; the difference of the two totals divided by the
# difference of the request counts is the cost of one request (start-up cancels out). Needs
# valgrind (installed from Debian's packages when missing) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-1200}
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(chat stream anthropic)
UP_PORT=${UP_PORT:-18081}
GW_PORT=${GW_PORT:-18001}
REDIS_PORT=${REDIS_PORT:-18380}
# With SHARED=redis, every endpoint is limited (by default calls and tokens per day, never
# reached) and the counters live in Redis.
[ -z "${SHARED:-}" ] || LIMIT=${LIMIT:-"{calls: 1000000000, tokens: 1000000000000, renewal_period: day}"}
LIMIT_LINE=""; [ -z "${LIMIT:-}" ] || LIMIT_LINE="    limit: $LIMIT"
BIN=${AIGW_BIN:-target/release/aigw}

if ! command -v valgrind >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get install -y -qq valgrind >/dev/null || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq valgrind >/dev/null; }
fi
[ -n "${AIGW_BIN:-}" ] || cargo build --release --quiet --bin aigw
cargo build --release --quiet --example bench_upstream

work=$(mktemp -d)
cleanup() { kill "${UP_PID:-}" "${GW_PID:-}" "${REDIS_PID:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cat > "$work/gateway.yaml" <<YAML
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model: {provider: openai, name: gpt-4o-mini, config: {openai_api_key: sk-bench, openai_api_base: "http://127.0.0.1:$UP_PORT/v1"}}
$LIMIT_LINE
  # The same OpenAI chat mock behind an OpenAI-compatible provider: /v1/responses to an openai
  # endpoint goes to OpenAI's own Responses API, to this one it is translated to chat.
  - name: compat
    endpoint_type: llm/v1/chat
    model: {provider: groq, name: gpt-4o-mini, config: {api_key: sk-bench, api_base: "http://127.0.0.1:$UP_PORT/v1"}}
$LIMIT_LINE
  - name: claude
    endpoint_type: llm/v1/chat
    model: {provider: anthropic, name: claude-3-5-haiku-latest, config: {anthropic_api_key: bench, anthropic_api_base: "http://127.0.0.1:$UP_PORT/v1"}}
$LIMIT_LINE
YAML
if [ "${SHARED:-}" = redis ]; then
  if ! command -v redis-server >/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get install -y -qq redis-server >/dev/null || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >/dev/null; }
  fi
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
  REDIS_PID=$!
  # Under valgrind a round trip is slow: a generous timeout.
  echo "aigw: {audit: off, shared_state: {url: 'redis://127.0.0.1:$REDIS_PORT/0', timeout_ms: 5000}}" >> "$work/gateway.yaml"
else
  echo "aigw: {audit: off}" >> "$work/gateway.yaml"
fi
printf -- '---\nversion: 1\nthreads: 1\n' > "$work/pingora.yaml"

cat > "$work/client.py" <<'PY'
import http.client, json, sys
port, n, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
msg = [{"role": "user", "content": "Write one sentence about load testing."}]
text = "Write one sentence about load testing."
path, body = {
    "chat": ("/v1/chat/completions", {"model": "chat", "messages": msg}),
    "stream": ("/v1/chat/completions", {"model": "chat", "stream": True, "messages": msg}),
    "anthropic": ("/v1/chat/completions", {"model": "claude", "messages": msg}),
    "anthropic-stream": ("/v1/chat/completions", {"model": "claude", "stream": True, "messages": msg}),
    "messages": ("/v1/messages", {"model": "chat", "max_tokens": 1024, "messages": msg}),
    "messages-stream": ("/v1/messages", {"model": "chat", "max_tokens": 1024, "stream": True, "messages": msg}),
    "responses": ("/v1/responses", {"model": "compat", "input": text}),
    "responses-stream": ("/v1/responses", {"model": "compat", "stream": True, "input": text}),
}[kind]
data = json.dumps(body).encode()
conn = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    conn.request("POST", path, body=data, headers={"content-type": "application/json"})
    r = conn.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"status {r.status}")
PY

target/release/examples/bench_upstream "127.0.0.1:$UP_PORT" 2>/dev/null &
UP_PID=$!

# total_instructions <scenario> <requests>
total_instructions() {
  local out="$work/cg.out"
  rm -f "$out"
  RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$BIN" --config-path "$work/gateway.yaml" -c "$work/pingora.yaml" --port "$GW_PORT" 2>"$work/vg.log" &
  GW_PID=$!
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$GW_PORT/health" >/dev/null && break; sleep 0.1; done
  python3 "$work/client.py" "$GW_PORT" "$2" "$1"
  kill -INT "$GW_PID"
  wait "$GW_PID" 2>/dev/null || true
  awk '/^summary:/ { print $2 }' "$out"
}

printf '\n%-17s %12s %12s\n' scenario requests "instr/req"
for s in "${SCENARIOS[@]}"; do
  few=$((N / 4))
  a=$(total_instructions "$s" "$few")
  b=$(total_instructions "$s" "$N")
  awk -v s="$s" -v n="$((N - few))" -v a="$a" -v b="$b" 'BEGIN { printf "%-17s %12d %12.0f\n", s, n, (b - a) / n }'
done
echo "aigw $("$BIN" --version 2>/dev/null | head -1) ($BIN), callgrind, one worker thread"
