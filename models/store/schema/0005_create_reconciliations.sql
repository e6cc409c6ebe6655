-- Reconciliations: a wide pull of a sacct source compared with the store before it landed.
-- One row per attempt; `days` is a JSON list of {"day", "source_runs", "store_runs"} (UTC days by
-- end_at, by submit_at for runs that have not ended); `gap_keys` / `changed_keys` list at most
-- the first 1000 run keys of each kind (`gaps` / `changed` count them all).

CREATE SEQUENCE reconciliation_ids START 1;

CREATE TABLE reconciliations (
    reconciliation_id BIGINT PRIMARY KEY,
    source VARCHAR NOT NULL,
    cluster VARCHAR,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    window_end TIMESTAMPTZ NOT NULL,
    status VARCHAR NOT NULL,  -- 'ok' or 'failed'
    error VARCHAR,
    source_runs BIGINT NOT NULL DEFAULT 0,
    store_runs BIGINT NOT NULL DEFAULT 0,
    gaps BIGINT NOT NULL DEFAULT 0,
    changed BIGINT NOT NULL DEFAULT 0,
    quarantined BIGINT NOT NULL DEFAULT 0,
    batch_id BIGINT,
    days VARCHAR NOT NULL DEFAULT '[]',
    gap_keys VARCHAR[] NOT NULL DEFAULT [],
    changed_keys VARCHAR[] NOT NULL DEFAULT []
);
