#!/usr/bin/env bash
# CSV export of an N-row population library over HTTP (GET /api/v1/exchange/{code}/export,
# the path the open-data download reuses) against DuckDB's COPY … TO CSV of the same items
# from the library's Delta table: alternating rounds in one run, median quoted. Also the
# Parquet download on both sides, and the server's peak RSS.
#
#   benches/csv-export/run.sh                                # 10M rows
#   HUITONG_BENCH_ROWS=1000000 benches/csv-export/run.sh     # quick run
#
# Needs DuckDB in a Python virtual environment:
#   python3 -m venv .venv-bench && .venv-bench/bin/pip install duckdb==1.5.6
# (HUITONG_BENCH_PYTHON names another interpreter). Builds the release binaries with cargo
# first (HUITONG_BENCH_BUILD=0: use those already in $CARGO_TARGET_DIR/release).
# Exports read the library's export snapshot, which the server writes after it starts: the
# rounds begin once GET /api/v1/libraries/population reports it at the library's version, and
# the report states how long writing it took. HUITONG_BENCH_SNAPSHOTS=0 removes the snapshot
# and turns snapshots off, to measure exports that scan the serving index instead.
# Exits 3 when Huitong's CSV rows/s fall under 0.7× DuckDB's.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
rows="${HUITONG_BENCH_ROWS:-10000000}"
data="${HUITONG_BENCH_DIR:-/var/tmp/huitong-bench-csv-$rows}"
rounds="${HUITONG_BENCH_ROUNDS:-3}"
python="${HUITONG_BENCH_PYTHON:-$root/.venv-bench/bin/python}"
target="${CARGO_TARGET_DIR:-$root/target}"
build="${HUITONG_BENCH_BUILD:-1}"
snapshots="${HUITONG_BENCH_SNAPSHOTS:-1}"
port=18090
# huitong reads HUITONG_* variables as settings: keep these away from the server.
unset HUITONG_BENCH_ROWS HUITONG_BENCH_DIR HUITONG_BENCH_ROUNDS HUITONG_BENCH_PYTHON HUITONG_BENCH_BUILD \
  HUITONG_BENCH_SNAPSHOTS

"$python" -c "import duckdb" 2>/dev/null || {
  echo "DuckDB is missing: python3 -m venv .venv-bench && .venv-bench/bin/pip install duckdb==1.5.6" >&2
  exit 1
}
if [ "$build" = 1 ]; then
  (cd "$root" && cargo build --release -q -p huitong -p huitong-benches --bin huitong --bin csv-export)
fi
huitong="$target/release/huitong"

if [ -f "$data/bench.json" ]; then
  echo "== reusing $data" >&2
else
  echo "== preparing $rows rows in $data" >&2
  "$target/release/csv-export" prepare --data-dir "$data" --rows "$rows" >&2
fi
field() { "$python" -c "import json,sys; v=json.load(open('$data/bench.json'))['$1']; print(','.join(v) if isinstance(v, list) else v)"; }
plain_key=$(field plain_key)
masked_key=$(field masked_key)
code=$(field resource_code)
records=$(field records)
columns=$(field columns)
table=$(field table_dir)

cat > "$data/bench.toml" <<TOML
listen = "127.0.0.1:$port"
[rate_limit]
requests_per_second = 10000000
burst = 10000000
[sync]
scheduler = false
[exchange]
export_snapshots = $([ "$snapshots" = 1 ] && echo true || echo false)
TOML
[ "$snapshots" = 1 ] || rm -rf "$data/libraries/population/export"

server_pid=
cleanup() { [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
"$huitong" --config "$data/bench.toml" --data-dir "$data" serve >"$data/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$port/health" >/dev/null || { echo "huitong did not start:" >&2; cat "$data/serve.log" >&2; exit 1; }
base="http://127.0.0.1:$port/api/v1/exchange/$code/export"
snapshot_s=null
if [ "$snapshots" = 1 ]; then
  echo "== waiting for the export snapshot" >&2
  started=$(date +%s.%N)
  state() { curl -sf -H "Authorization: Bearer $plain_key" "http://127.0.0.1:$port/api/v1/libraries/population" |
    "$python" -c "import json,sys; d=json.load(sys.stdin); print(d['version'], d['snapshot_version'])"; }
  for _ in $(seq 1 3000); do read -r v s <<<"$(state)"; [ "$v" = "$s" ] && break; sleep 0.2; done
  [ "$v" = "$s" ] || { echo "the export snapshot did not catch up: library v$v, snapshot v$s" >&2; exit 1; }
  snapshot_s=$("$python" -c "print(round($(date +%s.%N) - $started, 1))")
  grep "export snapshot written" "$data/serve.log" | grep "library=population" | tail -1 >&2 || true
fi
results="$data/results.jsonl"
: >"$results"

# One download with curl; appends {side, round, bytes, ttfb, seconds} to the results. A
# response other than 200, or a stream the server broke off, fails the run.
download() { # side round key format
  local out status
  out=$(curl -sS -o /dev/null -w '%{http_code} %{size_download} %{time_starttransfer} %{time_total}' \
    -H "Authorization: Bearer $3" "$base?format=$4")
  read -r status bytes ttfb seconds <<<"$out"
  [ "$status" = 200 ] || { echo "$1: HTTP $status" >&2; exit 1; }
  echo "{\"side\": \"$1\", \"round\": $2, \"bytes\": $bytes, \"ttfb\": $ttfb, \"seconds\": $seconds}" >>"$results"
  echo "  $1: ${seconds} s, $bytes bytes, first byte after ${ttfb} s" >&2
}
duck() { # side round format
  local out
  out=$("$python" "$here/duckdb_copy.py" "$table" "$columns" "$3")
  echo "$out" | "$python" -c "import json,sys; d=json.load(sys.stdin); d.update(side='$1', round=$2); print(json.dumps(d))" >>"$results"
  echo "  $1: $out" >&2
}

# Warm-up, which also checks what is compared: Huitong's CSV has the header DuckDB writes and
# one line per record (no value here holds a line break), and both page caches are warm.
echo "== warm-up and checks" >&2
lines=$(curl -sS -H "Authorization: Bearer $plain_key" "$base?format=csv" |
  awk -v out="$data/header" 'NR == 1 {print > out} END {print NR}')
header=$(cat "$data/header")
[ "$header" = "$columns" ] || { echo "CSV header $header, expected $columns" >&2; exit 1; }
[ "$lines" = $((records + 1)) ] || { echo "CSV has $lines lines, expected $((records + 1))" >&2; exit 1; }
duck duckdb-csv 0 csv
opened_hwm=$(awk '/VmHWM/ {print $2}' /proc/$server_pid/status)
# Peak RSS from here on: the exports alone, not opening the library.
echo 5 >/proc/$server_pid/clear_refs
start_rss=$(awk '/VmRSS/ {print $2}' /proc/$server_pid/status)

for round in $(seq 1 "$rounds"); do
  echo "== round $round" >&2
  if [ $((round % 2)) = 1 ]; then
    download huitong-csv "$round" "$plain_key" csv
    duck duckdb-csv "$round" csv
  else
    duck duckdb-csv "$round" csv
    download huitong-csv "$round" "$plain_key" csv
  fi
  download huitong-csv-masked "$round" "$masked_key" csv
  download huitong-parquet "$round" "$plain_key" parquet
  duck duckdb-parquet "$round" parquet
done
peak=$(awk '/VmHWM/ {print $2}' /proc/$server_pid/status)
cleanup; server_pid=

"$python" - "$results" "$records" "$opened_hwm" "$start_rss" "$peak" "$snapshots" "$snapshot_s" \
  "$(du -b "$data"/libraries/population/export/*.arrow 2>/dev/null | awk '{print $1}' | tail -1)" <<'PY'
import json, statistics, sys
path, records, opened, start, peak = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:6])
snapshots, snapshot_s, snapshot_bytes = sys.argv[6] == "1", json.loads(sys.argv[7]), sys.argv[8]
runs = [json.loads(l) for l in open(path)]
def median(side, key="seconds"):
    return statistics.median(r[key] for r in runs if r["side"] == side and r["round"] > 0)
duck_rows = next(r["rows"] for r in runs if r["side"] == "duckdb-csv")
figures = {}
for side in ["huitong-csv", "huitong-csv-masked", "huitong-parquet", "duckdb-csv", "duckdb-parquet"]:
    n = duck_rows if side.startswith("duckdb") else records
    s = median(side)
    figures[side] = {"rows": n, "median_s": round(s, 3), "rows_per_s": round(n / s),
                     "rounds_s": [r["seconds"] for r in runs if r["side"] == side and r["round"] > 0]}
    if side.startswith("huitong"):
        figures[side]["bytes"] = median(side, "bytes")
        figures[side]["first_byte_s"] = median(side, "ttfb")
    else:
        figures[side]["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs if r["side"] == side)
        figures[side]["threads"] = next(r["threads"] for r in runs if r["side"] == side)
        figures[side]["duckdb"] = next(r["duckdb"] for r in runs if r["side"] == side)
ratio = figures["huitong-csv"]["rows_per_s"] / figures["duckdb-csv"]["rows_per_s"]
report = {
    "records": records,
    "exports_read": "export snapshot" if snapshots else "serving index",
    "snapshot_wait_s": snapshot_s,
    "snapshot_bytes": int(snapshot_bytes) if snapshots and snapshot_bytes else None,
    "figures": figures,
    "ratio_csv": round(ratio, 3),
    "ratio_csv_masked": round(figures["huitong-csv-masked"]["rows_per_s"] / figures["duckdb-csv"]["rows_per_s"], 3),
    "ratio_parquet": round(figures["huitong-parquet"]["rows_per_s"] / figures["duckdb-parquet"]["rows_per_s"], 3),
    "server_peak_rss_mib_opening": opened // 1024,
    "server_rss_mib_before_exports": start // 1024,
    "server_peak_rss_mib_exports": peak // 1024,
}
print(json.dumps(report, ensure_ascii=False, indent=1))
if ratio < 0.7:
    print("target missed: CSV ratio %.2f < 0.7" % ratio, file=sys.stderr)
    sys.exit(3)
PY
