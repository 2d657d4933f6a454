#!/usr/bin/env bash
# The physical limit of the connector-pull benchmark: PostgreSQL sending the whole table in its
# binary COPY format over one connection to a client that throws it away.
#
#   ./copy_binary.sh postgresql://postgres@127.0.0.1:PORT/postgres [TABLE [FORMAT]]
#
# Runs `\copy TABLE TO '/dev/null' (FORMAT binary)` in psql (server-side scan and encoding, the
# bytes cross the loopback socket, psql writes them to /dev/null) and prints one JSON line:
#   {"rows": N, "seconds": s, "rows_per_s": r}
# No reader can pull the table faster over one connection than this.
# FORMAT (default binary) may be `text` instead, COPY's default format: the same limit for a
# reader that uses COPY text (run.sh's copy_text step, for context).
set -euo pipefail

url=${1:?usage: copy_binary.sh POSTGRES_URL [TABLE [FORMAT]]}
table=${2:-hukou}
format=${3:-binary}
case $format in binary | text | csv) ;; *) echo "copy_binary: unknown format $format" >&2; exit 2 ;; esac

# C locale: EPOCHREALTIME then has a '.' decimal point whatever the caller's locale.
export LC_ALL=C
# Text values are sent in the client encoding even in binary COPY; UTF8 is the server's
# encoding, so no conversion happens, as for ConnectorX and Huitong (without this, psql would
# derive the client encoding from the locale).
export PGCLIENTENCODING=UTF8

# EPOCHREALTIME (bash 5) is the wall clock in microseconds, without forking `date`.
start=$EPOCHREALTIME
# psql prints "COPY <rows>" when the copy is done.
out=$(psql "$url" -X -v ON_ERROR_STOP=1 -c "\\copy $table TO '/dev/null' (FORMAT $format)")
end=$EPOCHREALTIME

rows=${out##* }
case $rows in
  '' | *[!0-9]*) echo "copy_binary: unexpected psql output: $out" >&2; exit 1 ;;
esac
# bash has no floating point: let awk do the division.
awk -v rows="$rows" -v start="$start" -v end="$end" 'BEGIN {
  s = end - start
  printf "{\"rows\": %d, \"seconds\": %.3f, \"rows_per_s\": %d}\n", rows, s, (s > 0 ? rows / s : 0)
}'
