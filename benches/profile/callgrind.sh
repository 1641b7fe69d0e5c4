#!/usr/bin/env bash
# Instruction profile of the gateway per request (callgrind counts instructions, so the figure
# does not depend on what else the machine does). Prints the total per request and the top
# functions. usage: benches/profile/callgrind.sh [requests (2000)] [stream]
# CALLGRIND_ENV adds settings to the gateway's environment (space-separated KEY=VALUE words),
# for example CALLGRIND_ENV='OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9' for tracing on
# with no collector there. FAKE_SHAPE=lean makes the fake upstream leave `refusal` out of its
# answers (see fake_and_load.py). CALLGRIND_OPTS adds valgrind options (`--cache-sim=yes`
# counts simulated cache misses beside the instructions). PROFILE_TARGET=bare or floor profiles
# the load bench's bare or floor proxy instead of the gateway (the same fake and client), for
# instruction ratios that do not depend on the machine; LOAD_BIN names the bench binary (else
# cargo builds it).
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-2000}
stream=${2:-}
bin=${PROXYGATE_BIN:-}
target=${PROFILE_TARGET:-gateway}
if [ "$target" = gateway ] && [ -z "$bin" ]; then cargo build --profile profiling --bin proxygate >&2; bin="$PWD/target/profiling/proxygate"; fi
if [ "$target" != gateway ] && [ -z "${LOAD_BIN:-}" ]; then
  LOAD_BIN=$(cargo bench --bench load --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable")][-1])')
fi
dir=$(mktemp -d)
fake_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
gw_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 benches/profile/fake_and_load.py fake "$fake_port" & fake_pid=$!
if [ "$target" = gateway ]; then
  (cd "$dir" && exec env -i PATH="$PATH" PORT="$gw_port" GROQ_API_KEY=gsk_profile GROQ_BASE_URL="http://127.0.0.1:$fake_port/openai/v1" ${CALLGRIND_ENV:-} \
    valgrind --tool=callgrind ${CALLGRIND_OPTS:-} --callgrind-out-file="$dir/cg.out" \
    "$bin" >/dev/null 2>"$dir/vg.log") & gw_pid=$!
else
  (cd "$dir" && exec env -i PATH="$PATH" BENCH_SERVE="$target" BENCH_UPSTREAM="127.0.0.1:$fake_port" \
    valgrind --tool=callgrind ${CALLGRIND_OPTS:-} --callgrind-out-file="$dir/cg.out" \
    "$LOAD_BIN" >"$dir/serve.out" 2>"$dir/vg.log") & gw_pid=$!
  for _ in $(seq 300); do grep -q "listening on" "$dir/serve.out" 2>/dev/null && break; kill -0 "$gw_pid" 2>/dev/null || break; sleep 0.2; done
  gw_port=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$dir/serve.out")
  [ -n "$gw_port" ] || { echo "the $target proxy did not start:" >&2; cat "$dir/serve.out" "$dir/vg.log" >&2; kill "$fake_pid"; exit 1; }
fi
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$gw_port/health" >/dev/null 2>&1 && break; sleep 0.2; done
python3 benches/profile/fake_and_load.py load "http://127.0.0.1:$gw_port" 200 $stream   # warm up
callgrind_control -z "$gw_pid" >/dev/null 2>&1 || true
python3 benches/profile/fake_and_load.py load "http://127.0.0.1:$gw_port" "$n" $stream
callgrind_control -d "$gw_pid" >/dev/null 2>&1 || true
kill -TERM "$gw_pid"; wait "$gw_pid" || true
kill "$fake_pid" 2>/dev/null || true
last="$dir/cg.out.1"   # the dump taken right after the measured requests
total=$(callgrind_annotate "$last" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1; exit}')
echo "instructions per request: $(( total / n ))   (profile: $last)"
# With more events than instructions (cache simulation), each of them per request.
callgrind_annotate "$last" 2>/dev/null | awk -v n="$n" '/^Events shown:/ {sub(/^Events shown: */, ""); k = split($0, ev, " +")}
  /PROGRAM TOTALS/ {if (k > 1) {out = "per request:"; for (i = 1; i <= k; i++) {v = $(2 * i - 1); gsub(",", "", v); out = out sprintf(" %s %d", ev[i], v / n)}; print out}; exit}'
callgrind_annotate --inclusive=no "$last" 2>/dev/null | sed -n '1,60p' | tail -40
