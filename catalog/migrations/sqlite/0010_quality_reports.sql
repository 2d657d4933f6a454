-- Data quality reports (数据质量报告): one row per scoring of a library or a resource, kept as a
-- trend. `dimensions` is the JSON of the five dimensions with their rules and figures.
CREATE TABLE quality_reports (
    id               INTEGER PRIMARY KEY,
    scope            TEXT NOT NULL,
    name             TEXT NOT NULL,
    computed_at      TEXT NOT NULL,
    library_version  INTEGER,
    overall          REAL NOT NULL,
    dimensions       TEXT NOT NULL
);
CREATE INDEX quality_reports_by_subject ON quality_reports (scope, name, id);
