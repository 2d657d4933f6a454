-- Open data (数据开放): developer accounts (社会开发者: a credential with the open_data_developer
-- role, plus who is behind it) and their applications for conditionally open datasets
-- (有条件开放: apply, be approved). The audit record of an open call also names the
-- application that allowed it and, for anonymous calls, a keyed hash of the client address.
-- Keep in step with migrations/postgres/0012_open_data.sql.
CREATE TABLE developers (
    credential_id  INTEGER PRIMARY KEY REFERENCES credentials(id),
    name           TEXT NOT NULL,
    email          TEXT NOT NULL UNIQUE,
    organization   TEXT NOT NULL,
    created_at     TEXT NOT NULL
);

CREATE TABLE open_applications (
    id                 INTEGER PRIMARY KEY,
    resource_id        INTEGER NOT NULL REFERENCES resources(id),
    credential_id      INTEGER NOT NULL REFERENCES credentials(id),
    purpose            TEXT NOT NULL,
    status             TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    decided_at         TEXT,
    decided_by         TEXT,
    reason             TEXT,
    expires_at         TEXT
);
CREATE INDEX open_applications_by_applicant ON open_applications (credential_id, resource_id);
CREATE INDEX open_applications_by_resource ON open_applications (resource_id, status);

ALTER TABLE audit_log ADD COLUMN client_hash TEXT;
ALTER TABLE audit_log ADD COLUMN application_id BIGINT;
