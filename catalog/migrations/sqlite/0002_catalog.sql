-- The catalog in full (GB/T 21063, 国发〔2016〕51号): department hierarchy, resource lifecycle and
-- history, demands (供需对接) and responsibility lists. Keep in step with
-- migrations/postgres/0002_catalog.sql.

ALTER TABLE departments ADD COLUMN level TEXT NOT NULL DEFAULT 'city';

ALTER TABLE resources ADD COLUMN classification TEXT NOT NULL DEFAULT 'department';
ALTER TABLE resources ADD COLUMN class_code TEXT NOT NULL DEFAULT '';
ALTER TABLE resources ADD COLUMN publish_date TEXT;
ALTER TABLE resources ADD COLUMN related_codes TEXT NOT NULL DEFAULT '[]';
ALTER TABLE resources ADD COLUMN connector TEXT;
ALTER TABLE resources ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE resources ADD COLUMN review_comment TEXT;
CREATE INDEX resources_by_class ON resources (class_code);
CREATE INDEX resources_by_provider ON resources (provider_id);

ALTER TABLE data_items ADD COLUMN authoritative INTEGER NOT NULL DEFAULT 0;

CREATE TABLE resource_history (
    id           INTEGER PRIMARY KEY,
    resource_id  INTEGER NOT NULL REFERENCES resources(id),
    version      INTEGER NOT NULL,
    at           TEXT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    changes      TEXT NOT NULL,
    comment      TEXT
);
CREATE INDEX resource_history_by_resource ON resource_history (resource_id, id);

CREATE TABLE demands (
    id                         INTEGER PRIMARY KEY,
    consumer_department_id     INTEGER NOT NULL REFERENCES departments(id),
    resource_id                INTEGER REFERENCES resources(id),
    responsible_department_id  INTEGER NOT NULL REFERENCES departments(id),
    title                      TEXT NOT NULL,
    description                TEXT NOT NULL DEFAULT '',
    purpose                    TEXT NOT NULL,
    legal_basis                TEXT NOT NULL,
    requested_items            TEXT NOT NULL,
    expected_daily_calls       INTEGER NOT NULL DEFAULT 0,
    period_until               TEXT,
    status                     TEXT NOT NULL,
    created_at                 TEXT NOT NULL,
    due_at                     TEXT NOT NULL,
    decided_at                 TEXT,
    decision                   TEXT,
    reject_reason              TEXT,
    objection                  TEXT,
    objected_at                TEXT,
    arbitration                TEXT,
    arbitrated_at              TEXT,
    grant_id                   INTEGER REFERENCES grants(id)
);
CREATE INDEX demands_by_consumer ON demands (consumer_department_id, id);
CREATE INDEX demands_by_responsible ON demands (responsible_department_id, id);

ALTER TABLE grants ADD COLUMN demand_id INTEGER REFERENCES demands(id);
ALTER TABLE grants ADD COLUMN row_filter TEXT;
ALTER TABLE grants ADD COLUMN quota_per_second REAL;
ALTER TABLE grants ADD COLUMN quota_per_day INTEGER;

CREATE TABLE responsibilities (
    id             INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL,
    department_id  INTEGER NOT NULL REFERENCES departments(id),
    resource_id    INTEGER REFERENCES resources(id),
    subject        TEXT NOT NULL,
    due_date       TEXT NOT NULL,
    created_at     TEXT NOT NULL
);
