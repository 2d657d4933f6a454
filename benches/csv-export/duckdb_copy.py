"""DuckDB's side of the CSV export benchmark: COPY the library's Delta table to /dev/null.

    duckdb_copy.py TABLE_DIR COLUMNS FORMAT [THREADS]

DuckDB reads the Parquet files the Delta log says make up the table's current version (its
`add` actions less its `remove` actions; checkpoint included) with read_parquet, selects
COLUMNS (comma-separated, the export's items in its order) and writes FORMAT (csv: CSV with a
header row; parquet) to /dev/null. It prints one JSON line: rows, seconds (the COPY statement
alone, the interpreter and the import not counted), the number of files, the DuckDB version and
the process's peak RSS.
"""

import json
import os
import resource
import sys
import time

import duckdb


def active_files(table_dir):
    log = os.path.join(table_dir, "_delta_log")
    files, start = set(), -1
    last = os.path.join(log, "_last_checkpoint")
    if os.path.exists(last):
        start = json.load(open(last))["version"]
        checkpoint = os.path.join(log, f"{start:020d}.checkpoint.parquet")
        rows = duckdb.sql(
            f"SELECT add.path FROM read_parquet('{checkpoint}') WHERE add IS NOT NULL"
        ).fetchall()
        files = {r[0] for r in rows}
    for name in sorted(os.listdir(log)):
        if not name.endswith(".json") or int(name.split(".")[0]) <= start:
            continue
        for line in open(os.path.join(log, name)):
            action = json.loads(line)
            if "add" in action:
                files.add(action["add"]["path"])
            elif "remove" in action:
                files.discard(action["remove"]["path"])
    return sorted(os.path.join(table_dir, f) for f in files)


def main():
    table_dir, columns, fmt = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else None
    files = active_files(table_dir)
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {threads}")
    select = ", ".join(f'"{c}"' for c in columns)
    listed = ", ".join(f"'{f}'" for f in files)
    options = "FORMAT CSV, HEADER" if fmt == "csv" else "FORMAT PARQUET"
    started = time.perf_counter()
    rows = con.execute(
        f"COPY (SELECT {select} FROM read_parquet([{listed}])) TO '/dev/null' ({options})"
    ).fetchone()[0]
    seconds = time.perf_counter() - started
    print(json.dumps({
        "rows": rows,
        "seconds": round(seconds, 3),
        "files": len(files),
        "threads": con.execute("SELECT current_setting('threads')").fetchone()[0],
        "duckdb": duckdb.__version__,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }))


if __name__ == "__main__":
    main()
