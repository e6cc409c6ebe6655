-- Scheduled sources (one row per configured sacct pull): how far the source has been read (the
-- watermark, advanced in the same transaction as the batch it loaded), when it last succeeded
-- and was last tried, and its run of failures (a source with failures > 0 is degraded).

CREATE TABLE source_state (
    source VARCHAR PRIMARY KEY,
    cluster VARCHAR,
    watermark TIMESTAMPTZ,
    last_success_at TIMESTAMPTZ,
    last_attempt_at TIMESTAMPTZ,
    last_error VARCHAR,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_batch_id BIGINT
);
