"""Turns the measurements left by run.sh into the Markdown report, and judges the targets.

    python report.py RESULTS_DIR

RESULTS_DIR holds, per step NAME (run.sh writes them):
  NAME.out   the step's stdout; its last line is the JSON {"rows", "seconds", "rows_per_s", ...}
  NAME.time  `/usr/bin/time -v` output for the step's whole process tree
  NAME.rc    the exit code
and meta.tsv (key<TAB>value lines: rows, date, machine, versions, generation time, ...).
A step that was not run has no files.

Exit code: 0 when every step that ran succeeded and, if Huitong was measured, its targets are
met; 1 when a target is missed or a step failed. Without Huitong's figures (HUITONG_BENCH_CMD
unset) only the peers are reported and the exit code reflects their success alone.

Targets (issue "connectors"):
- huitong_full rows/s >= connectorx rows/s (the same table, the same run);
- huitong_full peak RSS < 1 GiB;
- huitong_full and huitong_incremental report the expected row counts.
"""

import json
import re
import sys
from pathlib import Path

STEPS = [
    ("copy_binary", "psql `\\copy hukou TO '/dev/null' (FORMAT binary)`: the physical limit"),
    ("copy_text", "the same in `(FORMAT text)`: the limit for a COPY-text reader (context)"),
    ("connectorx", "ConnectorX `read_sql(..., return_type=\"arrow\")`, 1 partition: read only"),
    ("huitong_full", "Huitong full pull: read, normalize, validate, Delta commit"),
    ("update", "update.sql: change rows in the source"),
    ("huitong_incremental", "Huitong incremental pull of the changed rows"),
]
GIB_MIB = 1024.0


def read_meta(d: Path) -> dict:
    meta = {}
    path = d / "meta.tsv"
    if path.exists():
        for line in path.read_text().splitlines():
            if "\t" in line:
                key, value = line.split("\t", 1)
                meta[key] = value
    return meta


def parse_time_v(text: str) -> dict:
    """Peak RSS (MiB), wall seconds and CPU seconds (user + system) from GNU time's -v output."""
    out = {}
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        out["rss_mib"] = int(m.group(1)) / 1024
    user = re.search(r"User time \(seconds\): ([\d.]+)", text)
    system = re.search(r"System time \(seconds\): ([\d.]+)", text)
    if user and system:
        out["cpu_s"] = float(user.group(1)) + float(system.group(1))
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if m:
        seconds = 0.0
        for part in m.group(1).split(":"):
            seconds = seconds * 60 + float(part)
        out["wall_s"] = seconds
    return out


def read_step(d: Path, name: str) -> dict | None:
    """The step's figures, or None when it was not run."""
    rc_file = d / f"{name}.rc"
    if not rc_file.exists():
        return None
    step = {"rc": int(rc_file.read_text().strip() or "1")}
    out_file, time_file = d / f"{name}.out", d / f"{name}.time"
    cpu_file = d / f"{name}.cpu"
    if cpu_file.exists():
        readings = [line.split() for line in cpu_file.read_text().splitlines() if line.strip()]
        if len(readings) == 2:
            (busy0, server0), (busy1, server1) = [(float(a), float(b)) for a, b in readings]
            step["server_cpu_s"] = server1 - server0
            step["machine_cpu_s"] = busy1 - busy0
    if time_file.exists():
        step.update(parse_time_v(time_file.read_text()))
    lines = out_file.read_text().strip().splitlines() if out_file.exists() else []
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{"):
            try:
                step["json"] = json.loads(line)
            except ValueError:
                pass
            break
    # update.sql prints "UPDATE n" then psql's "Time: t ms" rather than JSON.
    for i, line in enumerate(lines):
        m = re.match(r"UPDATE (\d+)$", line.strip())
        if m:
            step["json"] = {"rows": int(m.group(1))}
            for later in lines[i + 1:]:
                t = re.match(r"Time: ([\d.]+) ms", later.strip())
                if t:
                    step["json"]["seconds"] = float(t.group(1)) / 1000
                    break
    if step["rc"] == 0 and "json" not in step and name != "update":
        step["rc"] = -1  # succeeded but printed no figures: treated as a failure
    if "machine_cpu_s" in step and "cpu_s" in step:
        step["other_cpu_s"] = max(step["machine_cpu_s"] - step["cpu_s"] - step["server_cpu_s"], 0.0)
    return step


def cpu_cells(step: dict) -> str:
    return " | ".join(fmt_f(step.get(k)) for k in ("cpu_s", "server_cpu_s", "other_cpu_s"))


def fmt_int(v) -> str:
    return f"{int(round(v)):,}" if isinstance(v, (int, float)) else "–"


def fmt_f(v, digits=2) -> str:
    return f"{v:.{digits}f}" if isinstance(v, (int, float)) else "–"


def rate(step: dict | None):
    """rows/s of a step: the one it reports, else rows / seconds."""
    if not step or step["rc"] != 0:
        return None
    j = step.get("json", {})
    if j.get("rows_per_s"):
        return float(j["rows_per_s"])
    if j.get("rows") and j.get("seconds"):
        return j["rows"] / j["seconds"]
    return None


def main() -> int:
    d = Path(sys.argv[1])
    meta = read_meta(d)
    steps = {name: read_step(d, name) for name, _ in STEPS}
    lines = []
    rows = int(meta.get("rows", "0"))
    lines.append(f"## connector-pull: {rows:,} rows × 12 columns (`hukou`), {meta.get('date', '')}")
    lines.append("")
    lines.append(f"- Machine: {meta.get('machine', '?')}; load average before the run: "
                 f"{meta.get('loadavg', '?')}")
    lines.append(f"- Source: {meta.get('postgres', '?')}, throwaway cluster on 127.0.0.1 "
                 f"({meta.get('pg_settings', '')}); UNLOGGED table")
    lines.append(f"- Peers: ConnectorX {meta.get('connectorx', '?')}, pyarrow "
                 f"{meta.get('pyarrow', '?')}, Python {meta.get('python', '?')}")
    lines.append(f"- Generation (INSERT … SELECT, primary key, updated_at index): "
                 f"{meta.get('generate_s', '?')} s; VACUUM ANALYZE: {meta.get('vacuum_s', '?')} s; "
                 f"heap {meta.get('heap_size', '?')}, indexes {meta.get('index_size', '?')}")
    if meta.get("verify"):
        lines.append(f"- Data check: {meta['verify']}")
    lines.append("")
    lines.append("| step | what | rows | seconds | rows/s | process wall s | peak RSS MiB "
                 "| client CPU s | server CPU s | other CPU s |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    failed = []
    for name, what in STEPS:
        s = steps[name]
        if s is None:
            note = "not run" + (" (HUITONG_BENCH_CMD unset)" if name.startswith("huitong") else "")
            lines.append(f"| {name} | {what} | {note} | | | | | | | |")
            continue
        if s["rc"] != 0:
            failed.append(name)
            lines.append(f"| {name} | {what} | **failed** (exit {s['rc']}, see {name}.err) | | | "
                         f"{fmt_f(s.get('wall_s'))} | {fmt_int(s.get('rss_mib'))} | "
                         f"{cpu_cells(s)} |")
            continue
        j = s.get("json", {})
        lines.append(f"| {name} | {what} | {fmt_int(j.get('rows'))} | {fmt_f(j.get('seconds'))} | "
                     f"{fmt_int(rate(s))} | {fmt_f(s.get('wall_s'))} | {fmt_int(s.get('rss_mib'))} | "
                     f"{cpu_cells(s)} |")
    lines.append("")
    lines.append("`seconds` and `rows/s` are what each step reports for its own work; `process wall "
                 "s`, `peak RSS` and `client CPU s` (user + system) are `/usr/bin/time -v` over the "
                 "step's whole process (start-up and imports included; the PostgreSQL server not "
                 "counted). `server CPU s` is the PostgreSQL cluster's CPU time during the step. "
                 "`other CPU s` is what the rest of the machine used meanwhile: near 0 on a quiet "
                 "machine; a few seconds or more means something else (a build) competed for the "
                 "2 cores and the step's figures are pessimistic.")
    lines.append("")

    cx, cp, hf = rate(steps["connectorx"]), rate(steps["copy_binary"]), rate(steps["huitong_full"])
    hi = steps["huitong_incremental"]
    missed = []
    lines.append("| ratio | value | target |")
    lines.append("|---|---:|---|")

    def ratio(a, b):
        return a / b if a is not None and b else None

    lines.append(f"| connectorx / copy_binary (rows/s) | {fmt_f(ratio(cx, cp))} | context |")
    ct = rate(steps["copy_text"])
    if ct is not None:
        lines.append(f"| copy_text / copy_binary (rows/s) | {fmt_f(ratio(ct, cp))} | context |")
    if steps["huitong_full"] is not None:
        r = ratio(hf, cx)
        lines.append(f"| huitong_full / connectorx (rows/s) | {fmt_f(r)} | ≥ 1.00 |")
        if r is None or r < 1.0:
            missed.append("huitong_full slower than connectorx")
        lines.append(f"| huitong_full / copy_binary (rows/s) | {fmt_f(ratio(hf, cp))} | "
                     f"share of the physical limit |")
        rss = steps["huitong_full"].get("rss_mib")
        lines.append(f"| huitong_full peak RSS (MiB) | {fmt_int(rss)} | < 1,024 |")
        if rss is None or rss >= GIB_MIB:
            missed.append("huitong_full peak RSS not under 1 GiB")
        full_rows = steps["huitong_full"].get("json", {}).get("rows")
        if steps["huitong_full"]["rc"] == 0 and full_rows != rows:
            missed.append(f"huitong_full reported {full_rows} rows, the table has {rows}")
    if hi is not None:
        hf_s = (steps["huitong_full"] or {}).get("json", {}).get("seconds")
        hi_s = hi.get("json", {}).get("seconds") if hi["rc"] == 0 else None
        lines.append(f"| huitong_incremental / huitong_full (seconds) | {fmt_f(ratio(hi_s, hf_s), 3)} "
                     f"| reported (incremental: {fmt_f(hi_s)} s) |")
        rss = hi.get("rss_mib")
        lines.append(f"| huitong_incremental peak RSS (MiB) | {fmt_int(rss)} | < 1,024 |")
        if rss is not None and rss >= GIB_MIB:
            missed.append("huitong_incremental peak RSS not under 1 GiB")
        changed = (steps["update"] or {}).get("json", {}).get("rows")
        inc_rows = hi.get("json", {}).get("rows")
        # An incremental run reads every changed row, plus the rows sitting exactly at the old
        # watermark (re-read on purpose so rows committed later with the same update time are
        # not lost; they count as unchanged). Fewer than the changed rows means rows were lost.
        if hi["rc"] == 0 and changed is not None and inc_rows is not None:
            if inc_rows < changed:
                missed.append(f"huitong_incremental reported {inc_rows} rows, {changed} were changed")
            else:
                lines.append(f"| huitong_incremental rows re-read at the old watermark | {inc_rows - changed} "
                             f"| reported |")
    lines.append("")
    if failed:
        lines.append(f"**Failed steps:** {', '.join(failed)}")
    if steps["huitong_full"] is None:
        lines.append("Huitong not measured (set HUITONG_BENCH_CMD): no target judged.")
    elif missed:
        lines.append("**Targets missed:** " + "; ".join(missed))
    else:
        lines.append("Targets met.")
    print("\n".join(lines))
    return 1 if failed or missed else 0


if __name__ == "__main__":
    sys.exit(main())
