-- Revisions and actionable quarantine.
--
-- run_versions: every distinct content a run has had, numbered per run_key from 1 (oldest) in
-- the order they were stored. The current content is in runs, earlier ones in run_history
-- (moved there by the batch that superseded them). batch_id is the batch that first stored that
-- content (a re-delivery of the same content changes nothing, so it is the first seen batch).
CREATE VIEW run_versions AS
SELECT
    row_number() OVER (PARTITION BY run_key ORDER BY batch_id, ingested_at) AS version,
    *
FROM (
    SELECT *, false AS is_current FROM run_history
    UNION ALL BY NAME
    SELECT *, NULL::TIMESTAMPTZ AS superseded_at, NULL::BIGINT AS superseded_by_batch,
        true AS is_current
    FROM runs
);

-- What a quarantined record needs to be parsed again after a parser or policy fix (the parser
-- and the options it ran with: the field order, the cluster given for the file, the time zone),
-- and what became of it: retries, and the batch that landed it once it parsed (status
-- 'resolved'). first_reason keeps the reason given when it was first quarantined; reason is the
-- latest. Nothing in quarantine is ever deleted.
ALTER TABLE quarantine ADD COLUMN parser VARCHAR;
ALTER TABLE quarantine ADD COLUMN fields VARCHAR[];
ALTER TABLE quarantine ADD COLUMN parse_cluster VARCHAR;
ALTER TABLE quarantine ADD COLUMN parse_tz VARCHAR;
ALTER TABLE quarantine ADD COLUMN first_reason VARCHAR;
ALTER TABLE quarantine ADD COLUMN retries INTEGER DEFAULT 0;
ALTER TABLE quarantine ADD COLUMN last_retry_at TIMESTAMPTZ;
ALTER TABLE quarantine ADD COLUMN resolved_at TIMESTAMPTZ;
ALTER TABLE quarantine ADD COLUMN resolved_by_batch BIGINT;
-- Records quarantined before this migration all came from the sacct text parser.
UPDATE quarantine SET first_reason = reason, retries = 0, parser = 'sacct';
