-- Themed libraries (主题库/专题库): declared as SQL over other libraries, materialized into a
-- library of their own. Keep in step with the other dialect's 0009_themes.sql.
CREATE TABLE themes (
    id                    INTEGER PRIMARY KEY,
    name                  TEXT NOT NULL UNIQUE,
    label_zh              TEXT NOT NULL,
    description           TEXT NOT NULL DEFAULT '',
    sql_text              TEXT NOT NULL,
    key_field             TEXT NOT NULL,
    -- JSON array of {name, label_zh, kind, sensitivity}.
    fields                TEXT NOT NULL,
    -- JSON array of the library names the SQL reads.
    inputs                TEXT NOT NULL,
    -- 'on_change' or an update-cycle code (daily, weekly, ...).
    refresh               TEXT NOT NULL,
    -- The department whose code is the source (_source) of the theme's rows.
    department_id         INTEGER NOT NULL REFERENCES departments(id),
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    last_version          INTEGER,
    last_materialized_at  TEXT
);

CREATE TABLE theme_materializations (
    id               INTEGER PRIMARY KEY,
    theme_id         INTEGER NOT NULL REFERENCES themes(id),
    trigger_kind     TEXT NOT NULL,
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    status           TEXT NOT NULL,
    -- JSON object: input library name -> the version read.
    input_versions   TEXT NOT NULL DEFAULT '{}',
    rows_read        INTEGER NOT NULL DEFAULT 0,
    rows_inserted    INTEGER NOT NULL DEFAULT 0,
    rows_updated     INTEGER NOT NULL DEFAULT 0,
    rows_unchanged   INTEGER NOT NULL DEFAULT 0,
    rows_deleted     INTEGER NOT NULL DEFAULT 0,
    rows_rejected    INTEGER NOT NULL DEFAULT 0,
    -- JSON array of the first rejected rows: {key, field, reason}.
    rejections       TEXT NOT NULL DEFAULT '[]',
    library_version  INTEGER,
    error            TEXT
);
CREATE INDEX theme_materializations_by_theme ON theme_materializations (theme_id, id);
