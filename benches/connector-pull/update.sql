-- The change between the full and the incremental pull: :changed rows (default 100,000) get a
-- new address and phone number, and updated_at = now(), which is later than every generated
-- updated_at (those are all within 2024), so a watermark-based incremental pull finds exactly
-- these rows.
--
--   psql -v ON_ERROR_STOP=1 [-v changed=100000] -f update.sql
--
-- The rows are spread evenly over the table: every stride-th id with stride = rows / changed,
-- that is `id % 100 = 7` for 10M rows (100,000 rows), `id % 10 = 7` for 1M rows. A table with
-- fewer rows than :changed has all its rows changed. sfzh, and so the row's identity, is kept.

\if :{?changed}
\else
  \set changed 100000
\endif

SELECT greatest(max(id) / :changed, 1) AS stride FROM hukou \gset

\timing on
UPDATE hukou
SET hjdz = substr(hjdz, 1, 6) || '滨江路' || (1 + id % 97)::text || '号' || (1 + id % 13)::text || '栋'
           || (100 * (1 + id % 29) + 2)::text || '室',
    lxdh = '18' || lpad((id * 7919 % 1000000000)::text, 9, '0'),
    updated_at = now()  -- timestamptz, stored as local time in the `timestamp` column
WHERE id % :stride = 7 % :stride
  AND id <= :stride * :changed;
\timing off
