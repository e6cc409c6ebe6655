-- Core tables: runs (one row per run, the current version), their earlier versions, steps,
-- policy versions with their association trees, ingest batches and quarantined records.

CREATE SEQUENCE batch_ids START 1;
CREATE SEQUENCE quarantine_ids START 1;

CREATE TABLE ingest_batches (
    batch_id BIGINT PRIMARY KEY,
    source VARCHAR NOT NULL,
    scheduler VARCHAR NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    lines_read BIGINT NOT NULL,
    runs_new BIGINT NOT NULL,
    runs_changed BIGINT NOT NULL,
    runs_unchanged BIGINT NOT NULL,
    steps_new BIGINT NOT NULL,
    steps_changed BIGINT NOT NULL,
    steps_unchanged BIGINT NOT NULL,
    quarantined BIGINT NOT NULL
);

CREATE TABLE runs (
    run_key VARCHAR NOT NULL,
    scheduler VARCHAR NOT NULL,
    cluster VARCHAR NOT NULL,
    job_id VARCHAR,
    job_id_raw VARCHAR,
    array_job_id BIGINT,
    array_task_id VARCHAR,
    het_job_id BIGINT,
    het_offset INTEGER,
    "user" VARCHAR,
    account VARCHAR,
    "partition" VARCHAR,
    qos VARCHAR,
    state VARCHAR,
    state_by_uid BIGINT,
    exit_code VARCHAR,
    submit_at TIMESTAMPTZ,
    eligible_at TIMESTAMPTZ,
    start_at TIMESTAMPTZ,
    end_at TIMESTAMPTZ,
    elapsed_s BIGINT,
    timelimit_s BIGINT,
    alloc_nodes INTEGER,
    alloc_cpus INTEGER,
    alloc_mem_mb DOUBLE,
    alloc_gpus INTEGER,
    gpu_type VARCHAR,
    tres STRUCT(name VARCHAR, count DOUBLE)[],
    billing DOUBLE,
    nodelist VARCHAR,
    nodes VARCHAR[],
    reservation VARCHAR,
    job_name VARCHAR,
    source VARCHAR,
    source_line BIGINT,
    row_hash VARCHAR NOT NULL,
    batch_id BIGINT NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL
);

-- A run's earlier contents, kept when a later record of the same run differs.
CREATE TABLE run_history AS SELECT *, NULL::TIMESTAMPTZ AS superseded_at,
    NULL::BIGINT AS superseded_by_batch FROM runs WITH NO DATA;

CREATE TABLE steps (
    step_key VARCHAR NOT NULL,
    run_key VARCHAR NOT NULL,
    cluster VARCHAR NOT NULL,
    job_id VARCHAR,
    step_id VARCHAR,
    state VARCHAR,
    exit_code VARCHAR,
    start_at TIMESTAMPTZ,
    end_at TIMESTAMPTZ,
    elapsed_s BIGINT,
    alloc_nodes INTEGER,
    alloc_cpus INTEGER,
    tres STRUCT(name VARCHAR, count DOUBLE)[],
    nodelist VARCHAR,
    job_name VARCHAR,
    source VARCHAR,
    source_line BIGINT,
    row_hash VARCHAR NOT NULL,
    batch_id BIGINT NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE quarantine (
    quarantine_id BIGINT PRIMARY KEY,
    batch_id BIGINT NOT NULL,
    source VARCHAR NOT NULL,
    line_no BIGINT,
    record_id VARCHAR,
    field VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    raw VARCHAR,
    quarantined_at TIMESTAMPTZ NOT NULL,
    status VARCHAR NOT NULL DEFAULT 'open'
);

CREATE TABLE policy_versions (
    version_id INTEGER PRIMARY KEY,
    sha256 VARCHAR NOT NULL,
    origin VARCHAR NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    policy_toml VARCHAR NOT NULL
);

CREATE TABLE associations (
    version_id INTEGER NOT NULL,
    cluster VARCHAR NOT NULL,
    account VARCHAR NOT NULL,
    "user" VARCHAR NOT NULL,
    parent_account VARCHAR,
    shares BIGINT,
    shares_parent BOOLEAN NOT NULL,
    lft BIGINT
);
