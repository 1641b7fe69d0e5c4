#!/usr/bin/env bash
# The peer comparison: ProxyGate, LiteLLM proxy, Portkey's gateway and, when a binary is given,
# litellm-rs against the same fake upstream, in one run of the load bench. CI does not run this
# script: it installs the peers from PyPI and npm (network) and takes minutes.
#
# It installs LiteLLM (`pip install 'litellm[proxy]'` into a venv) and Portkey's gateway
# (`npm install @portkey-ai/gateway`, run with node) under target/peers/ (skipped when already
# there; PEERS_REINSTALL=1 installs again), points both at the bench's fake upstream on a fixed
# port, starts them pinned with taskset to the gateway's core (LiteLLM with one worker), waits
# until they answer, runs `cargo bench --bench load` with BENCH_PEERS, BENCH_PEER_PIDS,
# BENCH_PEER_HEADERS_<NAME> (LiteLLM's master key; Portkey's routing headers) and
# BENCH_FAKE_PORT set, and stops them.
#
# litellm-rs (the `gateway` binary of the litellm-rs crate) is a third peer when
# PEERS_LITELLM_RS_BIN names a binary built beforehand; the script neither builds nor installs
# it. It gets a generated config (target/peers/litellm-rs.yaml: its Groq provider at the fake,
# one worker, no auth, guardrails, rate limits, cache or database) and runs pinned like the
# others.
#
#   benches/peers.sh                      # full settings of the load bench
#   BENCH_SECONDS=2 BENCH_STREAMS=100 BENCH_TTFB_SAMPLES=30 benches/peers.sh   # a short pass
#   PEERS_LITELLM_RS_BIN=/path/to/gateway benches/peers.sh                     # with litellm-rs
#
# Every other BENCH_* variable is passed through to the load bench. Ports: PEERS_FAKE_PORT
# (18765), PEERS_LITELLM_PORT (4000), PEERS_PORTKEY_PORT (8787), PEERS_LITELLM_RS_PORT
# (18080). Logs go to target/peers/*.log; results to target/bench-results/load.json (the peers
# under "peers").
set -euo pipefail

# Relative to where the script was started, not to the repository root.
litellm_rs_bin=${PEERS_LITELLM_RS_BIN:+$(realpath -m -- "$PEERS_LITELLM_RS_BIN")}
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
dir=$target/peers
mkdir -p "$dir"

fake_port=${PEERS_FAKE_PORT:-18765}
litellm_port=${PEERS_LITELLM_PORT:-4000}
portkey_port=${PEERS_PORTKEY_PORT:-8787}
litellm_rs_port=${PEERS_LITELLM_RS_PORT:-18080}
core=${BENCH_GATEWAY_CORE:-1}
python=${PYTHON:-python3.11}

ports=("$fake_port" "$litellm_port" "$portkey_port")
if [ -n "$litellm_rs_bin" ]; then
    if [ ! -x "$litellm_rs_bin" ]; then
        echo "PEERS_LITELLM_RS_BIN=$litellm_rs_bin is not an executable file" >&2
        exit 1
    fi
    ports+=("$litellm_rs_port")
fi
for port in "${ports[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use; set PEERS_*_PORT" >&2
        exit 1
    fi
done

pin=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] && [ "${BENCH_PIN:-1}" = 1 ]; then
    pin=(taskset -c "$core")
fi

# --- install ---
if [ ! -x "$dir/venv/bin/litellm" ] || [ "${PEERS_REINSTALL:-0}" = 1 ]; then
    echo "installing litellm[proxy] into $dir/venv" >&2
    "$python" -m venv "$dir/venv"
    "$dir/venv/bin/pip" install -q 'litellm[proxy]'
fi
portkey_js=$dir/portkey/node_modules/@portkey-ai/gateway/build/start-server.js
if [ ! -f "$portkey_js" ] || [ "${PEERS_REINSTALL:-0}" = 1 ]; then
    echo "installing @portkey-ai/gateway into $dir/portkey" >&2
    mkdir -p "$dir/portkey"
    [ -f "$dir/portkey/package.json" ] || echo '{"private": true}' >"$dir/portkey/package.json"
    npm install --prefix "$dir/portkey" --no-audit --no-fund @portkey-ai/gateway >&2
fi
litellm_version=$("$dir/venv/bin/pip" show litellm 2>/dev/null | sed -n 's/^Version: //p')
portkey_version=$(node -p "require('$dir/portkey/node_modules/@portkey-ai/gateway/package.json').version")
litellm_rs_version=
if [ -n "$litellm_rs_bin" ]; then
    litellm_rs_version=", litellm-rs $("$litellm_rs_bin" --version 2>&1 | head -n 1)"
fi
echo "peers: litellm $litellm_version, @portkey-ai/gateway $portkey_version, node $(node --version)$litellm_rs_version" >&2

# Build first, so that the peers are not started while cargo compiles.
cargo bench --bench load --no-run

# --- configure and start ---
cat >"$dir/litellm.yaml" <<EOF
model_list:
  - model_name: groq/llama-3.1-8b-instant
    litellm_params:
      model: openai/llama-3.1-8b-instant
      api_base: http://127.0.0.1:$fake_port/v1
      api_key: sk-bench-not-a-real-key
litellm_settings:
  telemetry: false
EOF

# litellm-rs: its Groq provider at the fake, reached under the bench's model name by an alias
# (the model name alone is not routed). `endpoint_access: private_network` lets it call a
# loopback address. One worker, since it runs on one core; auth, guardrails, rate limits, cache,
# metrics, tracing and the database off; spend is still priced from its bundled price list.
if [ -n "$litellm_rs_bin" ]; then
    cat >"$dir/litellm-rs.yaml" <<EOF
schema_version: "1.0"
server:
  host: "127.0.0.1"
  port: $litellm_rs_port
  workers: 1
  max_connections: 1024
  dev_mode: false
providers:
  - name: "bench-fake"
    provider_type: "groq"
    api_key: "sk-bench-not-a-real-key"
    base_url: "http://127.0.0.1:$fake_port/v1"
    endpoint_access: private_network
    rpm: 4294967295
    tpm: 4294967295
    max_concurrent_requests: 1024
    timeout: 30
    max_retries: 0
    models: ["llama-3.1-8b-instant"]
    enabled: true
model_aliases:
  "groq/llama-3.1-8b-instant": "llama-3.1-8b-instant"
router:
  strategy: round_robin
  load_balancer:
    health_check_enabled: false
storage:
  database:
    url: "postgresql://127.0.0.1/unused"
    enabled: false
    auto_migrate: false
  redis:
    url: "redis://127.0.0.1:6379"
    enabled: false
auth:
  enable_jwt: false
  enable_api_key: false
  allow_anonymous: true
monitoring:
  metrics:
    enabled: false
  tracing:
    enabled: false
cache:
  enabled: false
rate_limit:
  enabled: false
guardrails:
  enabled: false
ip_access:
  enabled: false
enterprise:
  enabled: false
pricing:
  source: embedded://model_prices_extended
  allow_degraded: false
  unpriced_model_policy: allow_unpriced
  unpriced_fallback_cost_per_1k_tokens: 0.0
EOF
    if ! "$litellm_rs_bin" --config "$dir/litellm-rs.yaml" validate-config >"$dir/litellm-rs.log" 2>&1; then
        echo "litellm-rs rejected $dir/litellm-rs.yaml; see $dir/litellm-rs.log" >&2
        exit 1
    fi
fi

pids=()
stop() { # TERM, then KILL what is still there after 10 s (LiteLLM can hang on shutdown)
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for _ in $(seq 1 20); do
        alive=0
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [ "$alive" = 0 ] && break
        sleep 0.5
    done
    for pid in "${pids[@]}"; do
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap stop EXIT

# LiteLLM refuses to start without a master key; the bench sends it. No model cost map from
# the network, no telemetry; the proxy logs errors only. HF_HUB_OFFLINE: LiteLLM counts tokens
# for a llama-3 model with a Hugging Face tokenizer it downloads; without network it retried the
# download (about 23 s) on every request. Offline it falls back to tiktoken at once (about 2 ms
# a request more than a cached tokenizer would cost, on this machine).
litellm_key=sk-bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
LITELLM_MASTER_KEY=$litellm_key LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR \
    LITELLM_TELEMETRY=False HF_HUB_OFFLINE=1 \
    "${pin[@]}" "$dir/venv/bin/litellm" --config "$dir/litellm.yaml" \
    --host 127.0.0.1 --port "$litellm_port" --num_workers 1 \
    >"$dir/litellm.log" 2>&1 &
litellm_pid=$!
pids+=("$litellm_pid")

NODE_ENV=production "${pin[@]}" node "$portkey_js" --port="$portkey_port" --headless \
    >"$dir/portkey.log" 2>&1 &
portkey_pid=$!
pids+=("$portkey_pid")

if [ -n "$litellm_rs_bin" ]; then
    "${pin[@]}" "$litellm_rs_bin" --config "$dir/litellm-rs.yaml" --log-level error serve \
        >"$dir/litellm-rs.log" 2>&1 &
    litellm_rs_pid=$!
    pids+=("$litellm_rs_pid")
fi

wait_for() { # name pid url
    for _ in $(seq 1 240); do
        if curl -s -o /dev/null --max-time 2 "$3"; then
            return 0
        fi
        if ! kill -0 "$2" 2>/dev/null; then
            echo "$1 exited; see $dir/$1.log" >&2
            exit 1
        fi
        sleep 0.5
    done
    echo "$1 did not answer $3 within 2 minutes; see $dir/$1.log" >&2
    exit 1
}
wait_for litellm "$litellm_pid" "http://127.0.0.1:$litellm_port/health/liveliness"
wait_for portkey "$portkey_pid" "http://127.0.0.1:$portkey_port/"
if [ -n "$litellm_rs_bin" ]; then
    wait_for litellm-rs "$litellm_rs_pid" "http://127.0.0.1:$litellm_rs_port/health"
fi

# --- the run ---
export BENCH_FAKE_PORT=$fake_port
export BENCH_PEERS="litellm=http://127.0.0.1:$litellm_port/v1/chat/completions,portkey=http://127.0.0.1:$portkey_port/v1/chat/completions"
export BENCH_PEER_PIDS="litellm=$litellm_pid,portkey=$portkey_pid"
export BENCH_PEER_HEADERS_LITELLM="authorization: Bearer $litellm_key"
export BENCH_PEER_HEADERS_PORTKEY="x-portkey-provider: openai; x-portkey-custom-host: http://127.0.0.1:$fake_port/v1; authorization: Bearer sk-bench-not-a-real-key"
if [ -n "$litellm_rs_bin" ]; then
    BENCH_PEERS+=",litellm-rs=http://127.0.0.1:$litellm_rs_port/v1/chat/completions"
    BENCH_PEER_PIDS+=",litellm-rs=$litellm_rs_pid"
fi
cargo bench --bench load
