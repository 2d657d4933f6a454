-- Calls counted against daily quotas (per credential, per grant), saved every few seconds so
-- that a restart does not hand out a fresh day's allowance.
CREATE TABLE quota_usage (
    day     BIGINT NOT NULL,
    subject TEXT NOT NULL,
    used    BIGINT NOT NULL,
    PRIMARY KEY (day, subject)
);
