"""The peer of the connector-pull benchmark: ConnectorX reading the whole table into Arrow.

    python connectorx_read.py postgresql://postgres@127.0.0.1:PORT/postgres [QUERY]

Reads QUERY (default `SELECT * FROM hukou`) into a pyarrow Table with `cx.read_sql(...,
return_type="arrow")` and prints one JSON line on stdout:

    {"rows": N, "seconds": s, "rows_per_s": r, "peak_rss_mib": m}

`seconds` covers read_sql only (connect, run the query, receive and decode every row into
Arrow arrays), not the Python start-up and imports; run.sh also measures the whole process with
/usr/bin/time -v. `peak_rss_mib` is this process's own high-water mark (getrusage ru_maxrss,
KiB on Linux): the whole result sits in memory as Arrow arrays, so it grows with the table.

This is a read only: no normalization, no validation, nothing written. It is the yardstick that
Huitong's full pull (read + normalize + validate + Delta commit) has to match.
"""

import json
import resource
import sys
import time

import connectorx as cx


def main() -> int:
    url = sys.argv[1]
    query = sys.argv[2] if len(sys.argv) > 2 else "SELECT * FROM hukou"

    start = time.perf_counter()
    # One partition, on purpose: no partition_on / partition_num. Huitong's connector pulls a
    # table over one PostgreSQL connection, and the machine has 2 cores (shared by the
    # PostgreSQL backend and the reader), so a partitioned read would compare a different
    # thing and mostly measure the server's parallel scan. ConnectorX's default PostgreSQL
    # protocol is "binary" (COPY ... TO STDOUT (FORMAT binary)), its fastest.
    table = cx.read_sql(url, query, return_type="arrow")
    seconds = time.perf_counter() - start

    rows = table.num_rows
    peak_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds) if seconds > 0 else None,
        "peak_rss_mib": round(peak_rss_kib / 1024, 1),
        "arrow_bytes": table.nbytes,
        "columns": table.num_columns,
    }))
    return 0 if rows > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
