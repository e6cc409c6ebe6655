-- Compliance verdicts (docs/compliance.md). A verdict batch is one computation under one policy
-- version: every run charged to a grant with a regime (scope 'full', when the policy changed) or
-- the runs stored since the previous batch (scope 'incremental'). Rows are only ever inserted:
-- earlier verdicts stay. A run's current verdict is its row in the latest batch computed under
-- the latest batch's policy version whose row_hash is the run's current row_hash.

CREATE SEQUENCE verdict_batch_ids START 1;

CREATE TABLE verdict_batches (
    batch_id BIGINT PRIMARY KEY,
    computed_at TIMESTAMPTZ NOT NULL,
    policy_version INTEGER NOT NULL,
    scope VARCHAR NOT NULL,  -- 'full' or 'incremental'
    runs_watermark BIGINT,  -- the highest ingest batch_id of the runs it read
    runs_checked BIGINT NOT NULL,
    approved BIGINT NOT NULL,
    violation BIGINT NOT NULL,
    unknown BIGINT NOT NULL,
    rows_sha256 VARCHAR NOT NULL,  -- SHA-256 of the batch's rows, canonical form (docs)
    audit_seq BIGINT  -- the audit_log entry that records the batch
);

CREATE TABLE verdicts (
    batch_id BIGINT NOT NULL,
    run_key VARCHAR NOT NULL,
    row_hash VARCHAR,  -- the run content the verdict is about (runs.row_hash)
    grant_id VARCHAR NOT NULL,
    regime VARCHAR NOT NULL,
    verdict VARCHAR NOT NULL,  -- 'approved', 'violation' or 'unknown'
    rule VARCHAR,
    offending_node VARCHAR,
    "at" VARCHAR,  -- 'start' or 'end' for a node rule
    evidence VARCHAR NOT NULL  -- JSON object
);
