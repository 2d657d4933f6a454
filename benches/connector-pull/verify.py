"""Checks the generated `hukou` table on a sample of rows, independently of the SQL that made it.

    python verify.py postgresql://postgres@127.0.0.1:PORT/postgres [SAMPLE]

Reads SAMPLE rows (default 100,000) spread evenly over the table (every stride-th id) with
ConnectorX, and checks in Python, without calling the SQL check-character function, that:
- every sfzh is 18 characters, 17 digits and a check character that matches GB 11643
  (weights 2^(17-i) mod 11, i.e. 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2; sum mod 11 indexes
  "10X98765432");
- its region code is one of the ten GB/T 2260 codes used and equals hjqh;
- its birth date is a real date between 1940-01-01 and 2010-12-31 and equals csrq;
- its sequence number is 001..999 and its parity agrees with xb (odd = '1' male);
- every sfzh in the sample is distinct;
- lxdh is 11 digits starting with 13, 15 or 18.
Prints a JSON summary and exits 1 on the first kind of failure found (with examples).
"""

import datetime
import json
import sys

import connectorx as cx

REGIONS = {"110101", "110102", "110105", "310101", "310104",
           "330102", "330106", "440103", "440106", "510104"}
# Weight of the i-th digit (i = 1..17) is 2^(18-i) mod 11; computed, not copied, so that this
# check does not share a typo with schema.sql.
WEIGHTS = [pow(2, 18 - i, 11) for i in range(1, 18)]
CHECK_CHARS = "10X98765432"
FIRST_DAY = datetime.date(1940, 1, 1)
LAST_DAY = datetime.date(2010, 12, 31)


def check_char(body: str) -> str:
    """GB 11643 check character of a 17-digit body."""
    return CHECK_CHARS[sum(int(c) * w for c, w in zip(body, WEIGHTS)) % 11]


def problems_of(row: dict) -> list[str]:
    """Every rule the row breaks, as short messages (empty when the row is fine)."""
    sfzh, out = row["sfzh"], []
    if len(sfzh) != 18 or not sfzh[:17].isdigit() or not sfzh[:17].isascii():
        return [f"malformed sfzh {sfzh!r}"]
    if check_char(sfzh[:17]) != sfzh[17]:
        out.append(f"bad check character in {sfzh} (expected {check_char(sfzh[:17])})")
    if sfzh[:6] not in REGIONS or sfzh[:6] != row["hjqh"]:
        out.append(f"region {sfzh[:6]} vs hjqh {row['hjqh']}")
    try:
        born = datetime.date(int(sfzh[6:10]), int(sfzh[10:12]), int(sfzh[12:14]))
    except ValueError:
        born = None
    if born is None or not FIRST_DAY <= born <= LAST_DAY or born != row["csrq"]:
        out.append(f"birth date {sfzh[6:14]} vs csrq {row['csrq']}")
    seq = int(sfzh[14:17])
    if not 1 <= seq <= 999:
        out.append(f"sequence {sfzh[14:17]}")
    if row["xb"] != ("1" if seq % 2 == 1 else "2"):
        out.append(f"xb {row['xb']} for sequence {seq}")
    lxdh = row["lxdh"]
    if len(lxdh) != 11 or not lxdh.isdigit() or lxdh[:2] not in ("13", "15", "18"):
        out.append(f"phone {lxdh!r}")
    return out


def main() -> int:
    url = sys.argv[1]
    sample = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    total = cx.read_sql(url, "SELECT count(*) AS n FROM hukou", return_type="arrow")
    total = total.column("n")[0].as_py()
    stride = max(total // sample, 1)
    table = cx.read_sql(
        url,
        f"SELECT id, sfzh, xb, csrq, hjqh, lxdh FROM hukou WHERE id % {stride} = 0 "
        f"ORDER BY id LIMIT {sample}",
        return_type="arrow",
    )
    rows = table.to_pylist()
    bad = [(r["id"], p) for r in rows for p in problems_of(r)]
    distinct = len({r["sfzh"] for r in rows})
    summary = {
        "table_rows": total,
        "sample_rows": len(rows),
        "stride": stride,
        "distinct_sfzh": distinct,
        "problems": len(bad),
        "examples": bad[:5],
    }
    print(json.dumps(summary, ensure_ascii=False))
    return 0 if not bad and distinct == len(rows) and rows else 1


if __name__ == "__main__":
    sys.exit(main())
