-- The audit record of a call also says how many records it returned and which demand
-- (供需对接) its grant answers.
ALTER TABLE audit_log ADD COLUMN row_count BIGINT;
ALTER TABLE audit_log ADD COLUMN demand_id BIGINT;
