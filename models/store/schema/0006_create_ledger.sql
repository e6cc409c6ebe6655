-- The money ledger (see docs/money.md).
--
-- ledger_lines: the lines of closed periods, frozen when the period closed (charges of the
-- period and the adjustments posted to it). Never updated or deleted: a later change to a
-- closed period's runs is an adjustment line in the first open period.
CREATE TABLE ledger_lines (
    posted_period VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,            -- charge, revision, late run
    refers_period VARCHAR NOT NULL,   -- the period the charge belongs to / the adjustment corrects
    grant_id VARCHAR NOT NULL,
    run_key VARCHAR NOT NULL,
    job_id VARCHAR,
    cluster VARCHAR,
    account VARCHAR,
    "user" VARCHAR,
    partition VARCHAR,
    qos VARCHAR,
    end_at TIMESTAMPTZ,
    resource VARCHAR NOT NULL,        -- cpu, gpu, mem, node, minimum
    gpu_model VARCHAR,
    quantity DOUBLE,
    seconds BIGINT,
    hours DOUBLE,
    rate_card VARCHAR,
    unit_price DECIMAL(38, 6),
    multiplier DECIMAL(38, 6),
    amount DECIMAL(38, 6) NOT NULL,
    reason VARCHAR,
    author VARCHAR,
    posted_at TIMESTAMPTZ
);

-- Refunds and manual adjustments, posted by a person to an open period with a reason.
CREATE SEQUENCE ledger_entry_ids START 1;
CREATE TABLE ledger_entries (
    entry_id BIGINT PRIMARY KEY DEFAULT nextval('ledger_entry_ids'),
    posted_period VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,            -- refund, manual
    refers_period VARCHAR,
    grant_id VARCHAR NOT NULL,
    run_key VARCHAR,
    resource VARCHAR,
    amount DECIMAL(38, 6) NOT NULL,
    reason VARCHAR NOT NULL,
    author VARCHAR NOT NULL,
    posted_at TIMESTAMPTZ NOT NULL
);

-- Closed periods, in order (closing is only ever the month after the last closed one).
CREATE TABLE ledger_periods (
    period VARCHAR PRIMARY KEY,
    closed_at TIMESTAMPTZ NOT NULL,
    closed_by VARCHAR NOT NULL,
    policy_version INTEGER NOT NULL,
    lines BIGINT NOT NULL,
    total DECIMAL(38, 6) NOT NULL
);

-- The SHA-256 of each statement of a closed period, per format, recorded at close.
CREATE TABLE statement_hashes (
    grant_id VARCHAR NOT NULL,
    period VARCHAR NOT NULL,
    format VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    size_bytes BIGINT NOT NULL,
    PRIMARY KEY (grant_id, period, format)
);
