#!/usr/bin/env bash
# The peer comparison: ProxyGate, LiteLLM proxy and Portkey's gateway against
# the same fake upstream, in one run of the load bench. CI does not run this script: it installs
# the peers from PyPI and npm (network) and takes minutes.
#
# It installs LiteLLM (`pip install 'litellm[proxy]'` into a venv) and Portkey's gateway
# (`npm install @portkey-ai/gateway`, run with node) under target/peers/ (skipped when already
# there; PEERS_REINSTALL=1 installs again), points both at the bench's fake upstream on a fixed
# port, starts them pinned with taskset to the gateway's core (LiteLLM with one worker), waits
# until they answer, runs `cargo bench --bench load` with BENCH_PEERS, BENCH_PEER_PIDS,
# BENCH_PEER_HEADERS_<NAME> (LiteLLM's master key; Portkey's routing headers) and
# BENCH_FAKE_PORT set, and stops them.
#
#   benches/peers.sh                      # full settings of the load bench
#   BENCH_SECONDS=2 BENCH_STREAMS=100 BENCH_TTFB_SAMPLES=30 benches/peers.sh   # a short pass
#
# Every other BENCH_* variable is passed through to the load bench. Ports: PEERS_FAKE_PORT
# (18765), PEERS_LITELLM_PORT (4000), PEERS_PORTKEY_PORT (8787). Logs go to target/peers/*.log;
# results to target/bench-results/load.json (the peers under "peers").
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
dir=$target/peers
mkdir -p "$dir"

fake_port=${PEERS_FAKE_PORT:-18765}
litellm_port=${PEERS_LITELLM_PORT:-4000}
portkey_port=${PEERS_PORTKEY_PORT:-8787}
core=${BENCH_GATEWAY_CORE:-1}
python=${PYTHON:-python3.11}

for port in "$fake_port" "$litellm_port" "$portkey_port"; do
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
echo "peers: litellm $litellm_version, @portkey-ai/gateway $portkey_version, node $(node --version)" >&2

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

# --- the run ---
export BENCH_FAKE_PORT=$fake_port
export BENCH_PEERS="litellm=http://127.0.0.1:$litellm_port/v1/chat/completions,portkey=http://127.0.0.1:$portkey_port/v1/chat/completions"
export BENCH_PEER_PIDS="litellm=$litellm_pid,portkey=$portkey_pid"
export BENCH_PEER_HEADERS_LITELLM="authorization: Bearer $litellm_key"
export BENCH_PEER_HEADERS_PORTKEY="x-portkey-provider: openai; x-portkey-custom-host: http://127.0.0.1:$fake_port/v1; authorization: Bearer sk-bench-not-a-real-key"
cargo bench --bench load
