#!/usr/bin/env bash
# connector-pull benchmark (issue "connectors"): Huitong's full pull of a PostgreSQL table into
# a library, side by side with ConnectorX reading the same table into Arrow and with
# `\copy ... (FORMAT binary)` to /dev/null, in one run on one throwaway cluster; then an
# incremental pull of the rows changed by update.sql.
#
#   benches/connector-pull/run.sh                         # 10M rows, every step
#   ROWS=1000000 benches/connector-pull/run.sh            # 1M rows
#   STEPS="copy_binary connectorx" benches/connector-pull/run.sh
#   HUITONG_BENCH_CMD='target/release/connector-pull' benches/connector-pull/run.sh
#
# Environment:
#   ROWS               rows to generate (default 10000000)
#   CHANGED            rows update.sql changes before the incremental pull (default 100000)
#   STEPS              steps to run, in this order, among:
#                      copy_binary copy_text connectorx huitong_full update huitong_incremental
#                      (default: all six; copy_text is `\copy ... (FORMAT text)`, for context:
#                      the limit for a reader that uses COPY in text format)
#   HUITONG_BENCH_CMD  shell command that runs Huitong's pull and prints, as its last stdout
#                      line, {"rows": N, "seconds": s, "rows_per_s": r}. Unset: the Huitong
#                      steps are skipped. It is run with `bash -c` and these variables:
#                        HUITONG_BENCH_MODE         full | incremental
#                        HUITONG_BENCH_PG_URL       postgres://postgres@127.0.0.1:PORT/postgres
#                        HUITONG_BENCH_TABLE        hukou
#                        HUITONG_BENCH_LIBRARY_DIR  an empty directory for the full pull; the
#                                                   incremental pull gets the same directory,
#                                                   holding the library the full pull built
#                        HUITONG_BENCH_ROWS         rows in the table
#                        HUITONG_BENCH_CHANGED      rows update.sql changed (incremental only)
#                      The command is built beforehand (this script builds nothing).
#   HUITONG_BENCH_INCREMENTAL_CMD  a different command for the incremental step (default:
#                      HUITONG_BENCH_CMD, told apart by HUITONG_BENCH_MODE)
#   RESULTS            also write the Markdown report to this file
#   VERIFY             1 (default): check a 100k-row sample of the generated table (verify.py);
#                      full: check every row in SQL instead (about 2 minutes at 10M rows); 0: none
#   WARMUP             1 (default): one unmeasured `\copy ... (FORMAT binary)` before the steps
#   STEP_TIMEOUT       seconds after which a step is killed (default 3600)
#   BENCH_VENV         the Python venv for ConnectorX (default /var/tmp/huitong-bench-venv)
#   BENCH_WORK_PARENT  where the throwaway cluster lives (default /var/tmp; 10M rows take
#                      about 2.5 GB of disk)
#
# What it does: installs what is missing (PostgreSQL, GNU time and python3-venv from Debian
# packages; ConnectorX and pyarrow from PyPI into the venv, nothing system-wide), starts a
# throwaway PostgreSQL cluster on a free port of 127.0.0.1 (as the postgres user when run as
# root), generates `hukou` (schema.sql, generate.sql), VACUUM ANALYZE, checks a sample, then
# measures each step with /usr/bin/time -v and prints a Markdown table (report.py). The
# cluster is stopped and removed at exit, whatever happens. Exit code: report.py's (non-zero
# when a step failed or, with Huitong measured, a target was missed).
#
# The steps run one after the other on the same machine, never concurrently: each one has the
# machine's 2 cores to itself and its PostgreSQL backend. Keep other work (cargo builds) off
# the machine while measuring: they compete for those cores.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
ROWS=${ROWS:-10000000}
CHANGED=${CHANGED:-100000}
STEPS=${STEPS:-copy_binary copy_text connectorx huitong_full update huitong_incremental}
VERIFY=${VERIFY:-1}
WARMUP=${WARMUP:-1}
STEP_TIMEOUT=${STEP_TIMEOUT:-3600}
VENV=${BENCH_VENV:-/var/tmp/huitong-bench-venv}
WORK_PARENT=${BENCH_WORK_PARENT:-/var/tmp}
# The versions the figures in docs/benchmarks.md were measured with.
CONNECTORX_VERSION=${CONNECTORX_VERSION:-0.4.6}
PYARROW_VERSION=${PYARROW_VERSION:-26.0.1}
# C locale: EPOCHREALTIME has a '.' decimal point, whatever the caller's locale.
export LC_ALL=C
# The client encoding of every psql below (the server's, so no conversion).
export PGCLIENTENCODING=UTF8

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }
# Seconds elapsed since $1 (an EPOCHREALTIME value), with 1 decimal.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

case $ROWS in '' | *[!0-9]*) die "ROWS must be a number, got '$ROWS'" ;; esac
case $CHANGED in '' | *[!0-9]*) die "CHANGED must be a number, got '$CHANGED'" ;; esac
for step in $STEPS; do
  case $step in
    copy_binary | copy_text | connectorx | huitong_full | update | huitong_incremental) ;;
    *) die "unknown step '$step'" ;;
  esac
done
wants() { [[ " $STEPS " == *" $1 "* ]]; }

# --- What the harness needs, installed only when missing -------------------------------------
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || need+=(postgresql)
command -v psql >/dev/null || need+=(postgresql-client)
[ -x /usr/bin/time ] || need+=(time)
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]} (Debian packages)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
if ! "$VENV/bin/python" -c 'import connectorx, pyarrow' 2>/dev/null; then
  log "creating the venv $VENV (connectorx $CONNECTORX_VERSION, pyarrow $PYARROW_VERSION from PyPI)"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "connectorx==$CONNECTORX_VERSION" "pyarrow==$PYARROW_VERSION"
fi
py="$VENV/bin/python"

# --- The throwaway cluster --------------------------------------------------------------------
work=$(mktemp -d "$WORK_PARENT/huitong-connector-pull.XXXXXX")
chmod 755 "$work"
out="$work/results"
mkdir -p "$out" "$work/library"
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  # PostgreSQL refuses to run as root.
  as_pg=(runuser -u postgres --)
  chown postgres "$work"
fi
cleanup() {
  if [ -f "$work/pg/postmaster.pid" ]; then
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# fsync, full_page_writes, synchronous_commit off: a throwaway cluster, durability is not
# measured. autovacuum off: no background vacuum competing for the 2 cores in the middle of a
# step (the table is vacuumed once, explicitly, after the load). jit off: no compilation
# noise; a plain table scan has no expression worth compiling.
pg_settings="fsync=off, full_page_writes=off, synchronous_commit=off, shared_buffers=512MB, autovacuum=off, jit=off"
log "starting a throwaway PostgreSQL ($pg_bin) on 127.0.0.1:$port in $work"
"${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w -t 120 \
  -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
      -c synchronous_commit=off -c shared_buffers=512MB -c autovacuum=off -c jit=off" \
  start >/dev/null
url="postgres://postgres@127.0.0.1:$port/postgres"
psql_() { psql "$url" -X -v ON_ERROR_STOP=1 "$@"; }

# --- The table --------------------------------------------------------------------------------
log "generating $ROWS rows (schema.sql, generate.sql)"
t0=$EPOCHREALTIME
psql_ -q -v rows="$ROWS" -f "$here/schema.sql" -f "$here/generate.sql" >"$work/generate.log" 2>&1 \
  || { cat "$work/generate.log" >&2; die "generation failed"; }
generate_s=$(since "$t0")
log "generated in $generate_s s; VACUUM ANALYZE"
t0=$EPOCHREALTIME
# Sets the hint bits and the visibility map once, so that no measured reader pays for it.
psql_ -q -c "VACUUM (ANALYZE) hukou"
vacuum_s=$(since "$t0")
read -r heap_size index_size < <(psql_ -At -F ' ' -c \
  "SELECT replace(pg_size_pretty(pg_table_size('hukou')), ' ', ''), replace(pg_size_pretty(pg_indexes_size('hukou')), ' ', '')")
verify=""
if [ "$VERIFY" = 1 ]; then
  log "checking a 100k-row sample (verify.py)"
  verify=$("$py" "$here/verify.py" "$url" 100000) || die "sample check failed: $verify"
fi
if [ "$VERIFY" = full ]; then
  # Every row, in SQL: unique and valid ID numbers, consistent sex code, birth date, region.
  log "checking every row (VERIFY=full)"
  t0=$EPOCHREALTIME
  verify=$(psql_ -At -c "SELECT count(*) = count(DISTINCT sfzh)
      AND bool_and(gb11643_valid(sfzh)
                   AND xb = CASE WHEN substr(sfzh, 17, 1)::int % 2 = 1 THEN '1' ELSE '2' END
                   AND to_char(csrq, 'YYYYMMDD') = substr(sfzh, 7, 8)
                   AND hjqh = substr(sfzh, 1, 6))
    FROM hukou")
  [ "$verify" = t ] || die "full check failed"
  verify="every row checked in SQL (unique, valid check character, xb, csrq, hjqh consistent) in $(since "$t0") s"
fi

{
  printf 'rows\t%s\n' "$ROWS"
  printf 'date\t%s\n' "$(date -u +%Y-%m-%d)"
  printf 'machine\t%s cores, %s GiB, %s\n' "$(nproc)" \
    "$(awk '/MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)" \
    "$(. /etc/os-release && echo "$PRETTY_NAME")"
  printf 'loadavg\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'postgres\t%s\n' "$("$pg_bin/postgres" --version)"
  printf 'pg_settings\t%s\n' "$pg_settings"
  printf 'connectorx\t%s\n' "$("$py" -c 'import importlib.metadata as m; print(m.version("connectorx"))')"
  printf 'pyarrow\t%s\n' "$("$py" -c 'import pyarrow; print(pyarrow.__version__)')"
  printf 'python\t%s\n' "$("$py" -c 'import platform; print(platform.python_version())')"
  printf 'generate_s\t%s\n' "$generate_s"
  printf 'vacuum_s\t%s\n' "$vacuum_s"
  printf 'heap_size\t%s\n' "$heap_size"
  printf 'index_size\t%s\n' "$index_size"
  printf 'verify\t%s\n' "$verify"
} >"$out/meta.tsv"

# --- The steps --------------------------------------------------------------------------------
# cpu_counters: one line "MACHINE_BUSY SERVER" of CPU seconds so far: all CPUs of the machine
# busy (user, nice, system, irq, softirq, steal from /proc/stat), and the PostgreSQL cluster
# (the postmaster's own time plus that of its exited children, i.e. the backends that served
# finished connections). The difference of two readings around a step, less the step's own
# client CPU, is what the rest of the machine used meanwhile: it should be about 0, else the
# figures were taken on a busy machine.
clk_tck=$(getconf CLK_TCK)
cpu_counters() {
  local pm
  pm=$(head -n 1 "$work/pg/postmaster.pid")
  awk -v tck="$clk_tck" '
    FILENAME == "/proc/stat" && $1 == "cpu" { busy = $2 + $3 + $4 + $7 + $8 + $9 }
    FILENAME != "/proc/stat" { server = $14 + $15 + $16 + $17 }
    END { printf "%.2f %.2f\n", busy / tck, server / tck }' /proc/stat "/proc/$pm/stat"
}

# measure NAME COMMAND...: runs COMMAND under /usr/bin/time -v (peak RSS and wall time of its
# whole process tree) and `timeout`, keeping stdout, stderr and the exit code for report.py.
measure() {
  local name=$1 rc=0
  shift
  log "step $name"
  sleep 0.3  # lets the postmaster reap the backends of earlier connections (warm-up, checks)
  cpu_counters >"$out/$name.cpu"
  /usr/bin/time -v -o "$out/$name.time" timeout "$STEP_TIMEOUT" "$@" \
    >"$out/$name.out" 2>"$out/$name.err" || rc=$?
  echo "$rc" >"$out/$name.rc"
  sleep 0.3  # lets the postmaster reap the step's backend, so its CPU time is counted
  cpu_counters >>"$out/$name.cpu"
  if [ "$rc" -ne 0 ]; then
    log "$name failed (exit $rc):"
    tail -n 20 "$out/$name.err" >&2
  else
    log "$name: $(grep -E '^(\{|UPDATE )' "$out/$name.out" | tail -n 1)"
  fi
}

if [ "$WARMUP" = 1 ]; then
  # One unmeasured pass over the table, so that the first measured step starts from the same
  # state as the others (run-to-run spread of a step is otherwise about 10%).
  log "warm-up: one unmeasured binary COPY"
  "$here/copy_binary.sh" "$url" hukou binary >/dev/null
fi

huitong_env=(
  HUITONG_BENCH_PG_URL="$url"
  HUITONG_BENCH_TABLE=hukou
  HUITONG_BENCH_LIBRARY_DIR="$work/library"
  HUITONG_BENCH_ROWS="$ROWS"
)
changed_rows=""

for step in $STEPS; do
  case $step in
    copy_binary)
      measure copy_binary "$here/copy_binary.sh" "$url" hukou binary ;;
    copy_text)
      measure copy_text "$here/copy_binary.sh" "$url" hukou text ;;
    connectorx)
      measure connectorx "$py" "$here/connectorx_read.py" "$url" ;;
    huitong_full)
      if [ -n "${HUITONG_BENCH_CMD:-}" ]; then
        measure huitong_full env "${huitong_env[@]}" HUITONG_BENCH_MODE=full \
          bash -c "$HUITONG_BENCH_CMD"
      else
        log "huitong_full skipped: HUITONG_BENCH_CMD is not set"
      fi ;;
    update)
      measure update psql "$url" -X -v ON_ERROR_STOP=1 -v changed="$CHANGED" -f "$here/update.sql"
      changed_rows=$(sed -n 's/^UPDATE \([0-9]*\)$/\1/p' "$out/update.out") ;;
    huitong_incremental)
      if [ -n "${HUITONG_BENCH_CMD:-}${HUITONG_BENCH_INCREMENTAL_CMD:-}" ]; then
        wants update || log "warning: huitong_incremental without the update step: nothing changed"
        measure huitong_incremental env "${huitong_env[@]}" HUITONG_BENCH_MODE=incremental \
          HUITONG_BENCH_CHANGED="${changed_rows:-0}" \
          bash -c "${HUITONG_BENCH_INCREMENTAL_CMD:-$HUITONG_BENCH_CMD}"
      else
        log "huitong_incremental skipped: HUITONG_BENCH_CMD is not set"
      fi ;;
  esac
done

# --- The report -------------------------------------------------------------------------------
rc=0
"$py" "$here/report.py" "$out" >"$out/report.md" || rc=$?
cat "$out/report.md"
if [ -n "${RESULTS:-}" ]; then
  cp "$out/report.md" "$RESULTS"
  log "report written to $RESULTS"
fi
exit "$rc"
