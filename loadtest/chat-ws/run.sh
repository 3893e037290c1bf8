#!/usr/bin/env bash
# WebSocket chat load run on this machine: builds release binaries, starts the companion
# service (SQLite, in-process limits, the in-tree mock LLM) on 127.0.0.1, signs up users, then
#   1. memory per idle connection   (chat-ws-load idle)
#   2. token deltas per second per core and added latency   (chat-ws-load stream)
#   3. k6: CONNECTIONS (10,000) WebSocket connections, a few of them chatting   (k6), twice:
#      talkers spread over 15 s, then all at the same instant (BURST=0 skips the second)
# Results go to stdout; record them in benches/README.md ("WebSocket chat").
#   loadtest/chat-ws/run.sh                 # everything, 10,000 connections
#   IDLE=2000 CONNECTIONS=2000 loadtest/chat-ws/run.sh   # smaller
#   STORE=postgres loadtest/chat-ws/run.sh   # PostgreSQL + Redis instead of SQLite
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

# Each connection is a file descriptor on both sides: the service and the client each hold
# 10,000 plus their own; raise the soft limit to the hard one.
ulimit -n "$(ulimit -Hn)"
echo "ulimit -n: $(ulimit -n)"

IDLE=${IDLE:-10000}
CONNECTIONS=${CONNECTIONS:-10000}
STREAM_CONNECTIONS=${STREAM_CONNECTIONS:-200}
STREAM_MESSAGES=${STREAM_MESSAGES:-5}
USERS=${USERS:-500}
PORT=${PORT:-18080}
URL="http://127.0.0.1:$PORT"
target=${CARGO_TARGET_DIR:-$root/target}

cargo build --release -p companion -p chat-ws-load -p pipeline --bins
work=$(mktemp -d)
# STORE=postgres: the multi-node configuration (PostgreSQL at 127.0.0.1:5432 in a schema of
# its own, limits in Redis at 127.0.0.1:6379) instead of SQLite and in-process limits.
STORE=${STORE:-sqlite}
schema="chat_load_$$"
database_url="sqlite://$work/load.sqlite?mode=rwc"
redis_url=""
if [ "$STORE" = postgres ]; then
    psql -q -h 127.0.0.1 -U postgres test -c "CREATE SCHEMA $schema"
    database_url="postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3D$schema"
    redis_url="redis://127.0.0.1:6379"
fi
cleanup() {
    kill "${pid:-0}" "${mock:-0}" 2>/dev/null || true
    rm -rf "$work"
    if [ "$STORE" = postgres ]; then
        psql -q -h 127.0.0.1 -U postgres test -c "DROP SCHEMA $schema CASCADE" || true
    fi
}
trap cleanup EXIT

# The mock LLM runs as its own process, as a provider would, so the service's CPU numbers are
# the service's: 30 ms to first token, then one every 5 ms.
MOCK_PORT=${MOCK_PORT:-18089}
RUST_LOG=warn "$target/release/mock-providers" --listen "127.0.0.1:$MOCK_PORT" \
    --ttft-ms 30 --token-interval-ms 5 &
mock=$!

cat >"$work/companion.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"

[log]
filter = "warn"

[control_plane]
database_url = "$database_url"
redis_url = "$redis_url"
redis_key_prefix = "$schema:"
# Tokens must outlive the run; load users are not people.
access_token_ttl_secs = 7200
tier_api_limits = false
rate_limits = [
  { name = "chat", prefix = "/api/chat", limit = 1000000, window_secs = 3600 },
  { name = "auth", prefix = "/api/auth", limit = 1000000, window_secs = 900 },
]

[control_plane.argon2]
memory_kib = 256
iterations = 1
parallelism = 1

[gateway.chat]
heartbeat_interval_secs = 30

[pipeline.llm]
order = ["openai"]

[pipeline.llm.openai]
base_url = "http://127.0.0.1:$MOCK_PORT/v1"
model = "mock-openai"
api_key = "mock-key"
TOML

"$target/release/companion" --config "$work/companion.toml" &
pid=$!
for _ in $(seq 1 100); do
    curl -sf "$URL/healthz" >/dev/null && break
    sleep 0.2
done
curl -sf "$URL/healthz" >/dev/null || { echo "the service did not start"; exit 1; }

load="$target/release/chat-ws-load"
"$load" setup --url "$URL" --users "$USERS" --out "$work/users.json"
"$load" idle --url "$URL" --users "$work/users.json" --connections "$IDLE" --pid "$pid"
"$load" stream --url "$URL" --users "$work/users.json" --connections "$STREAM_CONNECTIONS" \
    --messages "$STREAM_MESSAGES" --pid "$pid" --ttft-ms 30 --token-interval-ms 5
echo "service RSS before k6: $(grep VmRSS /proc/$pid/status)"
k6 run --quiet -e USERS_FILE="$work/users.json" -e BASE_URL="$URL" \
    -e CONNECTIONS="$CONNECTIONS" "$root/loadtest/k6/chat-ws.js"
echo "service RSS after k6: $(grep VmRSS /proc/$pid/status)"
# The same connections with every talker sending at the same instant: the worst case.
if [ "${BURST:-1}" = 1 ]; then
    k6 run --quiet -e USERS_FILE="$work/users.json" -e BASE_URL="$URL" \
        -e CONNECTIONS="$CONNECTIONS" -e TALK_SPREAD_SECS=0 -e FIRST_DELTA_P95_MS=5000 \
        "$root/loadtest/k6/chat-ws.js" || echo "k6 burst run: thresholds crossed (see above)"
fi
