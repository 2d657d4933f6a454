-- Objections (异议处理): a consumer disputes a record or one field of it; the authoritative
-- department confirms or corrects it, each step an event. The value the consumer saw is not
-- stored (it may be sensitive). Keep in step with migrations/postgres/0009_objections.sql.
CREATE TABLE objections (
    id                       INTEGER PRIMARY KEY,
    resource_id              INTEGER NOT NULL REFERENCES resources(id),
    library                  TEXT NOT NULL,
    record_key               TEXT NOT NULL,
    field                    TEXT,
    claimed_value            TEXT,
    reason                   TEXT NOT NULL,
    raised_by_department_id  INTEGER NOT NULL REFERENCES departments(id),
    raised_by_credential_id  INTEGER NOT NULL REFERENCES credentials(id),
    routed_department_id     INTEGER NOT NULL REFERENCES departments(id),
    routing                  TEXT NOT NULL,
    record_version           INTEGER NOT NULL,
    status                   TEXT NOT NULL,
    created_at               TEXT NOT NULL,
    due_at                   TEXT NOT NULL,
    answered_at              TEXT,
    answer                   TEXT,
    resolution               TEXT,
    corrected_version        INTEGER
);
CREATE INDEX objections_by_raiser ON objections (raised_by_department_id, id);
CREATE INDEX objections_by_routed ON objections (routed_department_id, id);
CREATE INDEX objections_by_status ON objections (status, due_at);

CREATE TABLE objection_events (
    id             INTEGER PRIMARY KEY,
    objection_id   INTEGER NOT NULL REFERENCES objections(id),
    at             TEXT NOT NULL,
    kind           TEXT NOT NULL,
    department_id  INTEGER REFERENCES departments(id),
    actor          TEXT NOT NULL,
    detail         TEXT
);
CREATE INDEX objection_events_by_objection ON objection_events (objection_id, id);
