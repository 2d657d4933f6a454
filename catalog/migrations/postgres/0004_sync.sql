-- Sync runs: deletions counted, and what started the run (manual, schedule, cli).
ALTER TABLE sync_runs ADD COLUMN rows_deleted BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sync_runs ADD COLUMN trigger_kind TEXT NOT NULL DEFAULT 'manual';
ALTER TABLE sync_runs ADD COLUMN attempts BIGINT NOT NULL DEFAULT 1;
