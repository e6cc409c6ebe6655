-- Factor snapshots (what each recompute published) and API tokens (stored hashed).

CREATE SEQUENCE snapshot_ids START 1;

-- One row per published snapshot. data_watermark_batch is the highest ingest batch id among the
-- runs the snapshot was computed from (batch ids only grow), data_watermark_at the latest
-- ingested_at among them; both are null when there were no runs. etag is the strong ETag of the
-- JSON representation, content_sha256 the hash of the factors alone (a recompute that gives the
-- same factors as the latest snapshot publishes nothing new).
CREATE TABLE factor_snapshots (
    snapshot_id BIGINT PRIMARY KEY,
    as_of TIMESTAMPTZ NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL,
    policy_version INTEGER NOT NULL,
    algorithm VARCHAR NOT NULL,
    data_watermark_batch BIGINT,
    data_watermark_at TIMESTAMPTZ,
    run_count BIGINT NOT NULL,
    association_count INTEGER NOT NULL,
    content_sha256 VARCHAR NOT NULL,
    etag VARCHAR NOT NULL,
    factors_pruned_at TIMESTAMPTZ
);

-- The factors of a snapshot (FACTORS columns), in sshare's row order (row_no).
CREATE TABLE snapshot_factors (
    snapshot_id BIGINT NOT NULL,
    row_no INTEGER NOT NULL,
    cluster VARCHAR NOT NULL,
    account VARCHAR NOT NULL,
    "user" VARCHAR NOT NULL,
    parent_account VARCHAR,
    depth INTEGER NOT NULL,
    raw_shares BIGINT,
    shares_parent BOOLEAN NOT NULL,
    norm_shares DOUBLE,
    raw_usage DOUBLE,
    norm_usage DOUBLE,
    effective_usage DOUBLE,
    fairshare DOUBLE,
    level_fs DOUBLE
);

-- Bearer tokens: only the SHA-256 of a token is kept. accounts scopes a viewer (null otherwise).
CREATE TABLE api_tokens (
    token_id VARCHAR PRIMARY KEY,
    token_sha256 VARCHAR NOT NULL UNIQUE,
    role VARCHAR NOT NULL,
    accounts VARCHAR[],
    note VARCHAR,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
