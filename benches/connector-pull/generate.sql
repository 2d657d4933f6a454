-- Fills `hukou` (created by schema.sql) with :rows synthetic household-register rows, by SQL
-- alone, then adds the primary key and the watermark index.
--
--   psql -v ON_ERROR_STOP=1 -v rows=10000000 -f schema.sql -f generate.sql
--
-- Deterministic: the same :rows gives the same table, byte for byte, on every run, so that
-- figures from different runs read the same data. Every value is derived from `id`:
--
-- * sfzh is unique by construction. (id - 1) is mapped to k = (id - 1) * P mod M, with
--   M = 10 regions * 25,933 birth dates (1940-01-01 .. 2010-12-31) * 999 sequence numbers
--   (001 .. 999) = 259,070,670 and P = 2,654,435,761, a prime that does not divide M, so the
--   map is a bijection on 0 .. M-1. k is then split into (sequence = 1 + k mod 999,
--   region = k / 999 mod 10, birth date = k / 9990): distinct ids give distinct (region,
--   birth date, sequence), hence distinct 17-digit bodies and distinct sfzh. This holds for
--   up to M rows. Multiplying by P scatters neighbouring ids over the whole range (birth
--   dates jump by thousands of days from one id to the next, both sexes interleave).
-- * the other columns take disjoint bit fields of three 64-bit hashes of id
--   (hashint8extended, PostgreSQL's built-in hash for bigint, with seeds 1, 2 and 3), so they
--   vary independently of each other.
-- Operator precedence note: in PostgreSQL `>>` and `&` bind looser than `%` and tighter than
-- `<`, hence the parentheses around every `(h >> n) & mask` that is then reduced with `%`.
--
-- The table is UNLOGGED (see schema.sql): fine for a benchmark source, no WAL written.
-- The primary key and the index are built after the load, which is much faster than
-- maintaining them row by row.

\if :{?rows}
\else
  \set rows 10000000
\endif

\timing on
-- Room for the index builds below (sorting 10M keys in memory, not in temp files).
SET maintenance_work_mem = '1GB';

INSERT INTO hukou (id, sfzh, xm, xb, csrq, mz, hjqh, hjdz, lxdh, whcd, hyzk, updated_at)
SELECT
  id,
  body || gb11643_check_char(body),
  xm, xb, csrq, mz, hjqh, hjdz, lxdh, whcd, hyzk, updated_at
FROM (
  -- Level 2: the column values, and the 17-digit body of the ID number.
  SELECT
    id,
    hjqh || to_char(csrq, 'YYYYMMDD') || lpad(seq::text, 3, '0') AS body,
    -- Name: one surname, then one or (three times in four) two given-name characters.
    ('{王,李,张,刘,陈,杨,黄,赵,吴,周,徐,孙,马,朱,胡,郭,何,高,林,罗}'::text[])[1 + (h1 & 255) % 20]
      || ('{伟,芳,娜,敏,静,丽,强,磊,军,洋,勇,艳,杰,娟,涛,明,超,秀,霞,平,刚,桂,英,华,玉,建,国,文,红,兰}'::text[])[1 + ((h1 >> 8) & 255) % 30]
      || CASE WHEN (h1 >> 16) & 3 = 0 THEN ''
              ELSE ('{伟,芳,娜,敏,静,丽,强,磊,军,洋,勇,艳,杰,娟,涛,明,超,秀,霞,平,刚,桂,英,华,玉,建,国,文,红,兰}'::text[])[1 + ((h1 >> 18) & 255) % 30]
         END AS xm,
    -- GB/T 2261.1 sex code, from the parity of the sequence number (the 17th digit).
    CASE WHEN seq % 2 = 1 THEN '1' ELSE '2' END AS xb,
    csrq,
    -- About 92% 汉族 (235 of 256), the rest spread over seven other ethnic groups.
    CASE WHEN (h1 >> 26) & 255 < 235 THEN '汉族'
         ELSE ('{回族,满族,蒙古族,壮族,苗族,维吾尔族,土家族}'::text[])[1 + ((h1 >> 34) & 255) % 7]
    END AS mz,
    hjqh,
    -- Address, about 20 characters: 北京市东城区 + street + 号 + 栋 + 室.
    region_name
      || ('{建设路,人民路,解放路,中山路,和平街,文化路,胜利街,新华路,光明路,东风路,幸福路,长安街}'::text[])[1 + (h2 & 255) % 12]
      || (1 + ((h2 >> 8) & 1023) % 300)::text || '号'
      || (1 + ((h2 >> 18) & 255) % 20)::text || '栋'
      || (100 * (1 + ((h2 >> 26) & 255) % 30) + 1 + ((h2 >> 34) & 15) % 4)::text || '室' AS hjdz,
    -- Mobile number: 13, 15 or 18, then 9 digits.
    ('{13,15,18}'::text[])[1 + ((h1 >> 42) & 255) % 3]
      || lpad(((h3 & 1073741823) % 1000000000)::text, 9, '0') AS lxdh,
    ('{研究生,大学本科,大学专科,中等专科,高中,初中,小学,文盲或半文盲}'::text[])[1 + ((h1 >> 50) & 255) % 8] AS whcd,
    -- Born in 2000 or later: unmarried; otherwise mostly married.
    CASE WHEN csrq >= DATE '2000-01-01' THEN '未婚'
         WHEN (h2 >> 38) & 255 < 40  THEN '未婚'
         WHEN (h2 >> 38) & 255 < 215 THEN '已婚'
         WHEN (h2 >> 38) & 255 < 240 THEN '离婚'
         ELSE '丧偶'
    END AS hyzk,
    -- Last change: a second within 2024 (a leap year, 31,622,400 seconds).
    TIMESTAMP '2024-01-01 00:00:00'
      + ((h3 >> 30) & 33554431) % 31622400 * INTERVAL '1 second' AS updated_at
  FROM (
    -- Level 1: split the permuted index into region, birth date and sequence; hash id.
    SELECT
      id,
      1 + k % 999 AS seq,
      ('{110101,110102,110105,310101,310104,330102,330106,440103,440106,510104}'::text[])[1 + (k / 999) % 10] AS hjqh,
      ('{北京市东城区,北京市西城区,北京市朝阳区,上海市黄浦区,上海市徐汇区,杭州市上城区,杭州市西湖区,广州市荔湾区,广州市天河区,成都市锦江区}'::text[])[1 + (k / 999) % 10] AS region_name,
      DATE '1940-01-01' + (k / 9990)::int AS csrq,
      h1,
      h2,
      h3
    FROM (
      SELECT
        g.id,
        (g.id - 1) * 2654435761 % 259070670 AS k,
        hashint8extended(g.id, 1) AS h1,
        hashint8extended(g.id, 2) AS h2,
        hashint8extended(g.id, 3) AS h3
      FROM generate_series(1::bigint, :rows::bigint) AS g(id)
      OFFSET 0  -- optimization fence: compute k, h1, h2, h3 once per row, not once per use
    ) AS level0
    OFFSET 0
  ) AS level1
  OFFSET 0  -- `body` is used twice (and 17 times inside the inlined check function)
) AS level2;

ALTER TABLE hukou ADD PRIMARY KEY (id);
-- The watermark column of the incremental pull, indexed as a departmental database with a
-- change-tracking column would have it: 100k changed rows are then found without a full scan.
CREATE INDEX hukou_updated_at ON hukou (updated_at);
\timing off
