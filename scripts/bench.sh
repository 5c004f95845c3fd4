#!/usr/bin/env bash
# Load benchmark: aigw (release build) against its own fast mock upstream, beside the same load
# sent straight to the mock. Prints req/s, p50/p99 latency, the latency aigw adds, gateway CPU
# per request and peak RSS, for each scenario at c=1 and c=64.
#
#   scripts/bench.sh                 # all scenarios, 10 s each
#   DURATION=30 scripts/bench.sh chat stream
#   AIGW_SETTINGS='{audit: off}' scripts/bench.sh chat   # with extra aigw: settings
#   PINGORA_CONF=conf/bench-pingora.yaml scripts/bench.sh   # with Pingora settings (-c)
#   SOAK=600 scripts/bench.sh        # soak: chat + stream at c=32 each for 600 s, RSS every 30 s
#   AIGW_BIN=/tmp/aigw-old scripts/bench.sh chat   # another aigw binary (A/B against a saved build)
#   SHARED=both scripts/bench.sh chat   # each scenario twice: counters in process, then in Redis
#   SHARED=redis AIGW_SETTINGS='{audit: off}' scripts/bench.sh chat   # Redis only
#
# With SHARED set, every endpoint gets LIMIT (default: calls and tokens per day, never reached)
# so that each request is admitted against counters: "local" keeps them in aigw's process,
# "redis" starts a redis-server on REDIS_PORT (installed from Debian's packages when missing)
# and adds aigw.shared_state (one Redis round trip per request, one more to settle tokens).
#
# Scenarios: chat (non-streaming chat, openai provider), stream (20-chunk streamed chat),
# embeddings (one 1536-dimension vector), anthropic / anthropic-stream (the same through the
# Anthropic translation), messages / messages-stream (Anthropic's Messages API as the client API,
# translated to the OpenAI mock), responses / responses-stream (OpenAI's Responses API as the
# client API, translated to chat for the OpenAI mock behind the OpenAI-compatible `compat` endpoint), proxy / proxy-stream (the OpenAI body through the
# raw proxy route /gateway/proxy/chat/chat/completions: Pingora's proxy pipeline, no
# translation), nginx / nginx-stream (the same body through a plain nginx reverse proxy in front of
# the same mock: the floor; its CPU is summed over nginx's master and workers). Needs wrk (and
# nginx for the nginx scenarios), installed from Debian's packages when missing.
#
#   scripts/bench.sh chat proxy nginx stream proxy-stream nginx-stream   # the floor comparison
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(chat stream embeddings anthropic anthropic-stream)
UP_PORT=${UP_PORT:-18080}
GW_PORT=${GW_PORT:-18000}
REDIS_PORT=${REDIS_PORT:-18379}
NGINX_PORT=${NGINX_PORT:-18090}
case "${SHARED:-}" in
  "") MODES=(none) ;;
  both) MODES=(local redis) ;;
  local | redis) MODES=("$SHARED") ;;
  *) echo "SHARED must be local, redis or both" >&2; exit 2 ;;
esac
LIMIT=${LIMIT:-"{calls: 1000000000, tokens: 1000000000000, renewal_period: day}"}

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get install -y -qq wrk >/dev/null || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null; }
fi

if [[ " ${SCENARIOS[*]} " == *" nginx"* ]] && ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  echo "installing nginx (Debian package)" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get install -y -qq nginx-light >/dev/null 2>&1 || $SUDO apt-get install -y -qq nginx >/dev/null ||
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq nginx >/dev/null; }
fi

if [[ " ${MODES[*]} " == *" redis "* ]] && ! command -v redis-server >/dev/null; then
  echo "installing redis-server (Debian package)" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get install -y -qq redis-server >/dev/null || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >/dev/null; }
fi

cargo build --release --quiet --bin aigw --example bench_upstream
work=$(mktemp -d)
cleanup() { kill "${UP_PID:-}" "${GW_PID:-}" "${REDIS_PID:-}" "${NGINX_PID:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# write_config <mode>: the gateway YAML for none (as configured), local or redis.
write_config() {
  local limit="" settings="${AIGW_SETTINGS:-}"
  [ "$1" = none ] || limit="    limit: $LIMIT"
  cat > "$work/gateway.yaml" <<YAML
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model: {provider: openai, name: gpt-4o-mini, config: {openai_api_key: sk-bench, openai_api_base: "http://127.0.0.1:$UP_PORT/v1"}}
$limit
  - name: embeddings
    endpoint_type: llm/v1/embeddings
    model: {provider: openai, name: text-embedding-3-small, config: {openai_api_key: sk-bench, openai_api_base: "http://127.0.0.1:$UP_PORT/v1"}}
$limit
  # The same OpenAI chat mock behind an OpenAI-compatible provider: /v1/responses to an openai
  # endpoint goes to OpenAI's own Responses API, to this one it is translated to chat.
  - name: compat
    endpoint_type: llm/v1/chat
    model: {provider: groq, name: gpt-4o-mini, config: {api_key: sk-bench, api_base: "http://127.0.0.1:$UP_PORT/v1"}}
$limit
  - name: claude
    endpoint_type: llm/v1/chat
    model: {provider: anthropic, name: claude-3-5-haiku-latest, config: {anthropic_api_key: bench, anthropic_api_base: "http://127.0.0.1:$UP_PORT/v1"}}
$limit
YAML
  if [ "$1" = redis ]; then
    local shared="shared_state: {url: 'redis://127.0.0.1:$REDIS_PORT/0'}"
    # Extra settings and the shared state in one aigw: mapping.
    if [ -n "$settings" ]; then settings="{$shared, ${settings#\{}"; else settings="{$shared}"; fi
  fi
  # Extra gateway settings, e.g. AIGW_SETTINGS='{audit: off}' to measure without the audit log.
  [ -z "$settings" ] || echo "aigw: $settings" >> "$work/gateway.yaml"
}

# start_gateway <mode>
start_gateway() {
  write_config "$1"
  RUST_LOG=warn "${AIGW_BIN:-target/release/aigw}" --config-path "$work/gateway.yaml" --port "$GW_PORT" ${PINGORA_CONF:+-c "$PINGORA_CONF"} 2>"$work/aigw.log" &
  GW_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$GW_PORT/health" >/dev/null && break; sleep 0.1; done
}

stop_gateway() {
  kill "$GW_PID" 2>/dev/null || true
  wait "$GW_PID" 2>/dev/null || true
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$GW_PORT/health" >/dev/null || break; sleep 0.1; done
}

target/release/examples/bench_upstream "127.0.0.1:$UP_PORT" 2>/dev/null &
UP_PID=$!
if [[ " ${MODES[*]} " == *" redis "* ]]; then
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
start_gateway "${MODES[0]}"

if [[ " ${SCENARIOS[*]} " == *" nginx"* ]]; then
  # The floor: nginx as a plain keep-alive reverse proxy in front of the same mock, unbuffered
  # like aigw, no access log (aigw's audit line is its own cost, see AIGW_SETTINGS).
  mkdir -p "$work/nginx"
  cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes $(nproc);
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  upstream mock { server 127.0.0.1:$UP_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
    }
  }
}
NGINX
  NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
  "$NGINX_BIN" -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" &
  NGINX_PID=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/" && break; sleep 0.1; done
fi

TCK=$(getconf CLK_TCK)
# The processes a scenario measures: aigw, or nginx's master and workers.
measured_pids() {
  case "$1" in
    nginx*) echo "$NGINX_PID" $(pgrep -P "$NGINX_PID") ;;
    *) echo "$GW_PID" ;;
  esac
}
cpu_ticks() { # user, system summed over the measured processes
  local u=0 s=0 pid
  for pid in $PIDS; do read -r pu ps < <(awk '{print $14, $15}' "/proc/$pid/stat"); u=$((u + pu)); s=$((s + ps)); done
  echo "$u $s"
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$GW_PID/status"; }
# Peak resident memory since the last reset: the kernel keeps it (VmHWM), so nothing polls
# during a run (a sampling loop forking every 100 ms showed up in the p99 latency).
reset_peak_rss() { local pid; for pid in $PIDS; do echo 5 > "/proc/$pid/clear_refs"; done; }
peak_rss_kib() { local t=0 pid; for pid in $PIDS; do t=$((t + $(awk '/^VmHWM/ {print $2}' "/proc/$pid/status"))); done; echo "$t"; }

MSG='"messages":[{"role":"user","content":"Write one sentence about load testing."}]'
scenario() { # name -> gateway path, gateway body, direct path, direct body
  case "$1" in
    chat) echo "/v1/chat/completions|{\"model\":\"chat\",$MSG}|/v1/chat/completions|{\"model\":\"gpt-4o-mini\",\"n\":1,$MSG}" ;;
    stream) echo "/v1/chat/completions|{\"model\":\"chat\",\"stream\":true,$MSG}|/v1/chat/completions|{\"model\":\"gpt-4o-mini\",\"n\":1,\"stream\":true,$MSG}" ;;
    embeddings) echo "/v1/embeddings|{\"model\":\"embeddings\",\"input\":\"load testing\"}|/v1/embeddings|{\"model\":\"text-embedding-3-small\",\"input\":\"load testing\"}" ;;
    anthropic) echo "/v1/chat/completions|{\"model\":\"claude\",$MSG}|/v1/messages|{\"model\":\"claude-3-5-haiku-latest\",\"max_tokens\":8192,$MSG}" ;;
    anthropic-stream) echo "/v1/chat/completions|{\"model\":\"claude\",\"stream\":true,$MSG}|/v1/messages|{\"model\":\"claude-3-5-haiku-latest\",\"max_tokens\":8192,\"stream\":true,$MSG}" ;;
    messages) echo "/v1/messages|{\"model\":\"chat\",\"max_tokens\":1024,$MSG}|/v1/chat/completions|{\"model\":\"gpt-4o-mini\",\"n\":1,$MSG}" ;;
    messages-stream) echo "/v1/messages|{\"model\":\"chat\",\"max_tokens\":1024,\"stream\":true,$MSG}|/v1/chat/completions|{\"model\":\"gpt-4o-mini\",\"n\":1,\"stream\":true,$MSG}" ;;
    responses) echo "/v1/responses|{\"model\":\"compat\",\"input\":\"Write one sentence about load testing.\"}|/v1/chat/completions|{\"model\":\"gpt-4o-mini\",\"n\":1,$MSG}" ;;
    proxy) echo "/gateway/proxy/chat/chat/completions|{\"model\":\"gpt-4o-mini\",\"n\":1,$MSG}|/v1/chat/completions|{\"model\":\"gpt-4o-mini\",\"n\":1,$MSG}" ;;
    proxy-stream) echo "/gateway/proxy/chat/chat/completions|{\"model\":\"gpt-4o-mini\",\"n\":1,\"stream\":true,$MSG}|/v1/chat/completions|{\"model\":\"gpt-4o-mini\",\"n\":1,\"stream\":true,$MSG}" ;;
    nginx) echo "/v1/chat/completions|{\"model\":\"gpt-4o-mini\",\"n\":1,$MSG}|/v1/chat/completions|{\"model\":\"gpt-4o-mini\",\"n\":1,$MSG}" ;;
    nginx-stream) echo "/v1/chat/completions|{\"model\":\"gpt-4o-mini\",\"n\":1,\"stream\":true,$MSG}|/v1/chat/completions|{\"model\":\"gpt-4o-mini\",\"n\":1,\"stream\":true,$MSG}" ;;
    responses-stream) echo "/v1/responses|{\"model\":\"compat\",\"stream\":true,\"input\":\"Write one sentence about load testing.\"}|/v1/chat/completions|{\"model\":\"gpt-4o-mini\",\"n\":1,\"stream\":true,$MSG}" ;;
    *) echo "unknown scenario $1" >&2; exit 2 ;;
  esac
}

# run <url> <body> <connections> <seconds> -> "requests p50_us p99_us failures"
run() {
  local threads=1; [ "$3" -gt 1 ] && threads=2
  BODY="$2" wrk -t"$threads" -c"$3" -d"${4}s" -s benches/wrk/post.lua "$1" 2>&1 |
    awk '/^RESULT/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                     print v["requests"], v["p50_us"], v["p99_us"], v["errors"] + v["non2xx"] }'
}

if [ -n "${SOAK:-}" ]; then
  # Soak: non-streaming and streaming chat side by side at c=32 each; resident memory must stay flat.
  IFS='|' read -r cpath cbody _ _ <<<"$(scenario chat)"
  IFS='|' read -r spath sbody _ _ <<<"$(scenario stream)"
  run "http://127.0.0.1:$GW_PORT$cpath" "$cbody" 32 "$SOAK" > "$work/soak-chat" &
  CHAT_PID=$!
  run "http://127.0.0.1:$GW_PORT$spath" "$sbody" 32 "$SOAK" > "$work/soak-stream" &
  STREAM_PID=$!
  printf '\n%8s %9s\n' "elapsed" "RSS MiB"
  for ((t = 0; t <= SOAK; t += 30)); do
    awk -v t="$t" -v r="$(rss_kib)" 'BEGIN { printf "%7ds %9.1f\n", t, r / 1024 }'
    if [ "$t" -lt "$SOAK" ]; then sleep 30; fi
  done
  wait "$CHAT_PID" "$STREAM_PID"
  read -r creq _ _ cfail < "$work/soak-chat"
  read -r sreq _ _ sfail < "$work/soak-stream"
  echo "chat: $creq requests, $cfail failed; stream: $sreq requests, $sfail failed"
  echo "aigw ${AIGW_BIN:-$(git describe --always --dirty 2>/dev/null)}, $(nproc) CPUs, soak ${SOAK}s"
  [ "$cfail" = 0 ] && [ "$sfail" = 0 ]
  exit
fi

printf '\n%-17s %5s %4s | %9s %8s %8s | %9s %8s %8s | %8s %8s | %9s %8s %8s | %8s\n' \
  scenario counts c "direct/s" "p50 ms" "p99 ms" "aigw/s" "p50 ms" "p99 ms" "+p50 ms" "+p99 ms" "CPU µs/rq" "usr µs" "sys µs" "RSS MiB"
for ((m = 0; m < ${#MODES[@]}; m++)); do
mode=${MODES[$m]}
if [ "$m" -gt 0 ]; then stop_gateway; start_gateway "$mode"; fi
for s in "${SCENARIOS[@]}"; do
  IFS='|' read -r gpath gbody dpath dbody <<<"$(scenario "$s")"
  PIDS=$(measured_pids "$s")
  gport=$GW_PORT; [[ "$s" != nginx* ]] || gport=$NGINX_PORT
  for c in 1 64; do
    run "http://127.0.0.1:$UP_PORT$dpath" "$dbody" "$c" "$WARMUP" >/dev/null
    read -r dreq dp50 dp99 dfail <<<"$(run "http://127.0.0.1:$UP_PORT$dpath" "$dbody" "$c" "$DURATION")"
    run "http://127.0.0.1:$gport$gpath" "$gbody" "$c" "$WARMUP" >/dev/null
    reset_peak_rss
    read -r u0 s0 <<<"$(cpu_ticks)"
    read -r greq gp50 gp99 gfail <<<"$(run "http://127.0.0.1:$gport$gpath" "$gbody" "$c" "$DURATION")"
    read -r u1 s1 <<<"$(cpu_ticks)"
    peak=$(peak_rss_kib)
    if [ "$dfail" != 0 ] || [ "$gfail" != 0 ]; then
      echo "FAILED requests in $s c=$c: direct $dfail, aigw $gfail (see $work/aigw.log)" >&2; tail -5 "$work/aigw.log" >&2; exit 1
    fi
    awk -v s="$s" -v mode="$mode" -v c="$c" -v d="$DURATION" -v dr="$dreq" -v dp50="$dp50" -v dp99="$dp99" \
        -v gr="$greq" -v gp50="$gp50" -v gp99="$gp99" -v du="$((u1 - u0))" -v ds="$((s1 - s0))" -v tck="$TCK" -v rss="$peak" 'BEGIN {
      printf "%-17s %5s %4d | %9.0f %8.3f %8.3f | %9.0f %8.3f %8.3f | %8.3f %8.3f | %9.1f %8.1f %8.1f | %8.1f\n",
        s, mode, c, dr / d, dp50 / 1000, dp99 / 1000, gr / d, gp50 / 1000, gp99 / 1000,
        (gp50 - dp50) / 1000, (gp99 - dp99) / 1000, (du + ds) * 1e6 / tck / gr, du * 1e6 / tck / gr, ds * 1e6 / tck / gr, rss / 1024 }'
  done
done
done
echo
echo "aigw ${AIGW_BIN:-$(git describe --always --dirty 2>/dev/null)}, $(nproc) CPUs, ${DURATION}s per run, wrk $(wrk --version 2>&1 | head -1 | awk '{print $2}')"
