-- The audit trail's anchor: the newest record known durable in the journal (审计日志文件), kept
-- outside the data dir's journal so that removing its newest records (the last segment, or the
-- whole directory) is seen at the next start and by `audit verify`. One row.
CREATE TABLE audit_anchor (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);
