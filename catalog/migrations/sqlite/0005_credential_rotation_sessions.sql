-- Key rotation: the key that replaced this one (its old key works on until its grace ends).
ALTER TABLE credentials ADD COLUMN replaced_by INTEGER REFERENCES credentials(id);

-- Console sessions (web console login): only the SHA-256 of the cookie's token is stored.
CREATE TABLE sessions (
    id             INTEGER PRIMARY KEY,
    token_hash     TEXT NOT NULL UNIQUE,
    credential_id  INTEGER NOT NULL REFERENCES credentials(id),
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL
);
CREATE INDEX sessions_by_credential ON sessions (credential_id);
