-- The audit log: append-only and hash-chained (docs/audit.md states the algorithm).
--
-- seq counts from 1 without gaps; payload is the canonical JSON text of the entry's payload,
-- payload_sha256 its SHA-256, prev_sha256 the previous entry's entry_sha256 (64 zeros for the
-- first), entry_sha256 the SHA-256 of the canonical JSON of the entry's header. Only
-- models/store/audit.py writes here, and only by INSERT: no code path updates or deletes a row.

CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    "at" TIMESTAMPTZ NOT NULL,
    kind VARCHAR NOT NULL,
    actor VARCHAR NOT NULL,
    payload VARCHAR NOT NULL,
    payload_sha256 VARCHAR NOT NULL,
    prev_sha256 VARCHAR NOT NULL,
    entry_sha256 VARCHAR NOT NULL
);

-- The record hash of every run version an ingest batch stored (models/audit/records.py), so
-- that verification can name the run whose content no longer matches. The log entry of the
-- batch holds the hash of these rows (ordered by run_key), so altering a row here is caught too.
CREATE TABLE audit_record_hashes (
    batch_id BIGINT NOT NULL,
    run_key VARCHAR NOT NULL,
    record_sha256 VARCHAR NOT NULL
);
