-- Schema of the connector-pull benchmark: a departmental household register (户籍) table
-- `hukou` with 12 columns, and the GB 11643 check-character function used to fill it.
--
--   psql -v ON_ERROR_STOP=1 -f schema.sql
--
-- The table is UNLOGGED: it is a throwaway benchmark source, so skipping WAL makes the bulk load
-- faster and changes nothing for the readers (COPY, ConnectorX and Huitong read the same heap
-- pages whether the table is logged or not). There is no need for `ALTER TABLE ... SET LOGGED`.

DROP TABLE IF EXISTS hukou;

-- Check character of a GB 11643-1999 citizen identity number.
-- `body` is the first 17 characters (all ASCII digits): 6-digit region code, 8-digit birth
-- date YYYYMMDD, 3-digit sequence (odd = male). Each digit is weighted by
-- 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2 (that is 2^(17-i) mod 11), the weighted sum is taken
-- mod 11, and the result indexes "10X98765432" (0 -> '1', 1 -> '0', 2 -> 'X', ...).
--
-- Written as one SQL expression (no FROM, no aggregate) so that the planner can inline it into
-- the calling query: at 10 million rows an out-of-line call per row would dominate the load.
-- ascii(...) - 48 turns a digit character into its value without a text-to-int cast.
CREATE OR REPLACE FUNCTION gb11643_check_char(body text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT substr('10X98765432',
    ((ascii(substr(body,  1, 1)) - 48) *  7 +
     (ascii(substr(body,  2, 1)) - 48) *  9 +
     (ascii(substr(body,  3, 1)) - 48) * 10 +
     (ascii(substr(body,  4, 1)) - 48) *  5 +
     (ascii(substr(body,  5, 1)) - 48) *  8 +
     (ascii(substr(body,  6, 1)) - 48) *  4 +
     (ascii(substr(body,  7, 1)) - 48) *  2 +
     (ascii(substr(body,  8, 1)) - 48) *  1 +
     (ascii(substr(body,  9, 1)) - 48) *  6 +
     (ascii(substr(body, 10, 1)) - 48) *  3 +
     (ascii(substr(body, 11, 1)) - 48) *  7 +
     (ascii(substr(body, 12, 1)) - 48) *  9 +
     (ascii(substr(body, 13, 1)) - 48) * 10 +
     (ascii(substr(body, 14, 1)) - 48) *  5 +
     (ascii(substr(body, 15, 1)) - 48) *  8 +
     (ascii(substr(body, 16, 1)) - 48) *  4 +
     (ascii(substr(body, 17, 1)) - 48) *  2) % 11 + 1,
    1)
$$;

-- True when `sfzh` is an 18-character GB 11643 number whose check character matches.
-- Used by the self-check in generate.sql; not needed by the readers.
CREATE OR REPLACE FUNCTION gb11643_valid(sfzh text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT sfzh ~ '^[0-9]{17}[0-9X]$' AND gb11643_check_char(substr(sfzh, 1, 17)) = substr(sfzh, 18, 1)
$$;

CREATE UNLOGGED TABLE hukou (
  id         bigint    NOT NULL,  -- primary key, added after the bulk load (generate.sql)
  sfzh       text      NOT NULL,  -- 公民身份号码, 18 characters, GB 11643
  xm         text      NOT NULL,  -- 姓名
  xb         text      NOT NULL,  -- 性别: '1' male, '2' female (GB/T 2261.1), from the 17th digit
  csrq       date      NOT NULL,  -- 出生日期, the birth date inside sfzh
  mz         text      NOT NULL,  -- 民族
  hjqh       text      NOT NULL,  -- 户籍区划: GB/T 2260 county code, the first 6 digits of sfzh
  hjdz       text      NOT NULL,  -- 户籍地址
  lxdh       text      NOT NULL,  -- 联系电话: 11-digit mobile number
  whcd       text      NOT NULL,  -- 文化程度
  hyzk       text      NOT NULL,  -- 婚姻状况
  updated_at timestamp NOT NULL   -- last change; the incremental sync's watermark column
);
