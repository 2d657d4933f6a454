-- Foundation schema (SQLite). Keep in step with migrations/postgres/0001_foundation.sql:
-- same tables, columns and meaning; only the dialect differs.
-- Timestamps are RFC 3339 UTC text; flags are 0/1 integers, so one SQL text serves both.

CREATE TABLE departments (
    id          INTEGER PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    parent_id   INTEGER REFERENCES departments(id),
    created_at  TEXT NOT NULL
);

CREATE TABLE resources (
    id                INTEGER PRIMARY KEY,
    code              TEXT NOT NULL UNIQUE,
    name              TEXT NOT NULL,
    provider_id       INTEGER NOT NULL REFERENCES departments(id),
    library           TEXT,
    summary           TEXT NOT NULL DEFAULT '',
    format            TEXT NOT NULL DEFAULT 'database',
    share_type        TEXT NOT NULL,
    share_conditions  TEXT,
    legal_basis       TEXT,
    share_method      TEXT NOT NULL,
    open_type         TEXT NOT NULL,
    update_cycle      TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'published',
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

CREATE TABLE data_items (
    id           INTEGER PRIMARY KEY,
    resource_id  INTEGER NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    name         TEXT NOT NULL,
    label_zh     TEXT NOT NULL,
    data_type    TEXT NOT NULL,
    length       INTEGER,
    sensitivity  TEXT NOT NULL,
    is_key       INTEGER NOT NULL DEFAULT 0,
    UNIQUE (resource_id, name)
);

CREATE TABLE grants (
    id                      INTEGER PRIMARY KEY,
    resource_id             INTEGER NOT NULL REFERENCES resources(id),
    consumer_department_id  INTEGER NOT NULL REFERENCES departments(id),
    items                   TEXT NOT NULL,
    plain_items             TEXT NOT NULL,
    expires_at              TEXT,
    status                  TEXT NOT NULL DEFAULT 'active',
    created_at              TEXT NOT NULL
);
CREATE INDEX grants_by_consumer ON grants (resource_id, consumer_department_id);

CREATE TABLE connectors (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL,
    department_id  INTEGER NOT NULL REFERENCES departments(id),
    resource_id    INTEGER NOT NULL REFERENCES resources(id),
    config         TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

CREATE TABLE sync_runs (
    id               INTEGER PRIMARY KEY,
    connector_id     INTEGER NOT NULL REFERENCES connectors(id),
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    status           TEXT NOT NULL,
    rows_read        INTEGER NOT NULL DEFAULT 0,
    rows_inserted    INTEGER NOT NULL DEFAULT 0,
    rows_updated     INTEGER NOT NULL DEFAULT 0,
    rows_unchanged   INTEGER NOT NULL DEFAULT 0,
    rows_rejected    INTEGER NOT NULL DEFAULT 0,
    library_version  INTEGER,
    error            TEXT
);
CREATE INDEX sync_runs_by_connector ON sync_runs (connector_id, id);

CREATE TABLE quarantine (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES sync_runs(id),
    connector_id  INTEGER NOT NULL REFERENCES connectors(id),
    position      TEXT NOT NULL,
    field         TEXT,
    reason        TEXT NOT NULL,
    raw           TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX quarantine_by_run ON quarantine (run_id);

CREATE TABLE credentials (
    id             INTEGER PRIMARY KEY,
    key_prefix     TEXT NOT NULL UNIQUE,
    key_hash       TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL,
    department_id  INTEGER REFERENCES departments(id),
    created_at     TEXT NOT NULL,
    expires_at     TEXT,
    revoked_at     TEXT
);

CREATE TABLE audit_log (
    seq             INTEGER PRIMARY KEY NOT NULL,
    at              TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    credential_id   INTEGER,
    department      TEXT,
    resource_code   TEXT,
    endpoint        TEXT NOT NULL,
    subject_hash    TEXT,
    status          INTEGER NOT NULL,
    outcome         TEXT NOT NULL,
    items_plain     TEXT NOT NULL,
    items_masked    TEXT NOT NULL,
    grant_id        INTEGER,
    latency_us      INTEGER NOT NULL,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL
);
