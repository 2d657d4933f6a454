#!/usr/bin/env bash
# GET records/{key} on an N-row population library with authentication, policy, masking,
# quotas and durable audit on, against a bare actix-web handler returning a constant record
# of the same size: same wrk, same connections, alternating rounds, one run. Then p99 latency
# at half of Huitong's throughput, verify and batch throughput, and the audit chain checked.
#
#   benches/exchange-lookup/run.sh            # 10M rows
#   HUITONG_BENCH_ROWS=1000000 benches/exchange-lookup/run.sh
#
# Needs wrk (apt-get install wrk). Builds the release binaries with cargo first
# (HUITONG_BENCH_BUILD=0: use those already in $CARGO_TARGET_DIR/release).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
rows="${HUITONG_BENCH_ROWS:-10000000}"
data="${HUITONG_BENCH_DIR:-/var/tmp/huitong-bench-exchange-$rows}"
duration="${HUITONG_BENCH_SECONDS:-15}"
connections="${HUITONG_BENCH_CONNECTIONS:-64}"
port=18080
bare_port=18081
target="${CARGO_TARGET_DIR:-$root/target}"
build="${HUITONG_BENCH_BUILD:-1}"
# huitong reads HUITONG_* variables as settings: keep these away from the server.
unset HUITONG_BENCH_ROWS HUITONG_BENCH_DIR HUITONG_BENCH_SECONDS HUITONG_BENCH_CONNECTIONS HUITONG_BENCH_BUILD

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
if [ "$build" = 1 ]; then
  (cd "$root" && cargo build --release -q -p huitong -p huitong-benches --bin huitong --bin exchange-lookup)
fi
huitong="$target/release/huitong"
lookup="$target/release/exchange-lookup"

fresh=0
if [ -f "$data/bench.json" ]; then
  echo "== reusing $data" >&2
else
  echo "== preparing $rows rows in $data" >&2
  "$lookup" prepare --data-dir "$data" --rows "$rows" >&2
  fresh=1
fi
# The library just written may still be on its way to the disk: measure on a quiet one.
sync
key=$(python3 -c "import json,sys; print(json.load(open('$data/bench.json'))['consumer_key'])")
code=$(python3 -c "import json,sys; print(json.load(open('$data/bench.json'))['resource_code'])")
keys="$data/bench-keys.txt"

cat > "$data/bench.toml" <<TOML
listen = "127.0.0.1:$port"
[rate_limit]
requests_per_second = 10000000
burst = 10000000
[sync]
scheduler = false
TOML

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$huitong" --config "$data/bench.toml" --data-dir "$data" serve >"$data/serve.log" 2>&1 &
pids+=($!)
server_pid=$!
# Opening a 10M-row library from a cold page cache took up to 40 s here.
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$port/health" >/dev/null || { echo "huitong did not start:" >&2; cat "$data/serve.log" >&2; exit 1; }
if [ "$fresh" = 1 ]; then
  # A library just written gets its export snapshot (1.6 GB at 10M rows) in the background
  # after the start: let it be written and reach the disk before measuring.
  for _ in $(seq 1 600); do grep -q 'export snapshot.*"population"' "$data/serve.log" && break; sleep 0.5; done
  grep -q 'export snapshot.*"population"' "$data/serve.log" ||
    echo "warning: no export snapshot of the population library logged within 300 s; measuring anyway" >&2
  sync
fi
first=$(head -1 "$keys")
curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$port/api/v1/exchange/$code/records/$first" >"$data/body.json"
echo "== one response: $(wc -c <"$data/body.json") bytes" >&2
"$lookup" bare --port "$bare_port" --body "$data/body.json" >"$data/bare.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$bare_port/api/v1/exchange/x/records/y" >/dev/null && break; sleep 0.2; done

load() { # port seconds connections script args...
  local p=$1 s=$2 c=$3 script=$4; shift 4
  wrk -t2 -c"$c" -d"${s}s" --latency -s "$here/$script" "http://127.0.0.1:$p" -- "$@"
}
rps() { awk '/^Requests\/sec/ {print $2}'; }
non2xx() { awk '/Non-2xx/ {print $5}'; }

echo "== warm-up" >&2
load $bare_port 5 "$connections" lookup.lua "$keys" "$key" "$code" >/dev/null
load $port 5 "$connections" lookup.lua "$keys" "$key" "$code" >/dev/null

bare_runs=(); huitong_runs=()
for round in 1 2 3; do
  out=$(load $bare_port "$duration" "$connections" lookup.lua "$keys" "$key" "$code")
  bare_runs+=("$(echo "$out" | rps)")
  out=$(load $port "$duration" "$connections" lookup.lua "$keys" "$key" "$code")
  bad=$(echo "$out" | non2xx)
  [ -z "$bad" ] || { echo "Huitong answered $bad non-2xx responses; see $data/serve.log" >&2; exit 1; }
  huitong_runs+=("$(echo "$out" | rps)")
  echo "round $round: bare ${bare_runs[-1]} req/s, huitong ${huitong_runs[-1]} req/s" >&2
done
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
bare_rps=$(median "${bare_runs[@]}")
huitong_rps=$(median "${huitong_runs[@]}")

# p99 at half of Huitong's throughput. wrk paces each connection with a delay between an answer
# and the next request, so a connection's period is delay + latency: a 5 s calibration run
# measures the latency at the target rate, and the delay is shortened by it.
half=$(python3 -c "print(int(float('$huitong_rps') / 2))")
paced_connections=128
period_ms=$(python3 -c "print($paced_connections * 1000 / $half)")
avg_ms() { awk '$1 == "Latency" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else {sub(/s$/,"",v); v*=1000}; print v; exit}'; }
latency() { # port delay_ms seconds
  load "$1" "$3" $paced_connections lookup_paced.lua "$keys" "$key" "$code" "$2"
}
calibrated_delay() { # port
  local first avg
  first=$(python3 -c "print(round($period_ms, 3))")
  avg=$(latency "$1" "$first" 5 | avg_ms)
  python3 -c "print(max(0.5, round($period_ms - $avg, 3)))"
}
delay_ms=$(calibrated_delay $port)
out=$(latency $port "$delay_ms" "$duration")
p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
paced_rps=$(echo "$out" | rps)
out=$(latency $bare_port "$(calibrated_delay $bare_port)" "$duration")
bare_p99=$(echo "$out" | awk '$1 == "99%" {print $2}')

verify_rps=$(load $port "$duration" "$connections" post.lua "$keys" "$key" "$code" verify 1 | rps)
batch_rps=$(load $port "$duration" 16 post.lua "$keys" "$key" "$code" records:batch 100 | rps)

rss_mib=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' /proc/$server_pid/status)
cleanup; pids=()
audit=$("$huitong" --config "$data/bench.toml" --data-dir "$data" audit verify 2>&1 | tail -1)

python3 - "$rows" "$bare_rps" "$huitong_rps" "$half" "$paced_rps" "$p99" "$bare_p99" "$verify_rps" "$batch_rps" "$rss_mib" "$audit" <<'PY'
import json, sys
rows, bare, hui, half, paced, p99, bare_p99, verify, batch, rss, audit = sys.argv[1:]
print(json.dumps({
    "rows": int(rows),
    "bare_rps": float(bare), "huitong_rps": float(hui), "ratio": round(float(hui) / float(bare), 3),
    "half_load_target_rps": int(half), "half_load_achieved_rps": float(paced),
    "p99_at_half_load": p99, "bare_p99_at_same_rate": bare_p99,
    "verify_rps": float(verify), "batch_100_keys_rps": float(batch), "batch_keys_per_s": float(batch) * 100,
    "server_peak_rss_mib": int(rss), "audit_verify": audit,
}, ensure_ascii=False))
ratio = float(hui) / float(bare)
p99_ms = float(p99[:-2]) / (1000 if p99.endswith("us") else 1) if p99.endswith("s") else float("inf")
missed = [m for m, bad in [("throughput ratio %.2f < 0.5" % ratio, ratio < 0.5),
                           ("p99 %s >= 5 ms" % p99, p99_ms >= 5.0),
                           ("audit chain not intact", "intact" not in audit)] if bad]
if missed:
    print("target missed: " + "; ".join(missed), file=sys.stderr)
    sys.exit(3)
PY
