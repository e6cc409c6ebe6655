-- Order-independent run versions and an unambiguous content hash.
--
-- observed_at: when the source saw a content (the latest time, when the same content was seen
-- more than once). A run's current version is its newest one, the greatest (observed_at,
-- lifecycle progress, row_hash), whatever order the records arrived in. Rows stored before
-- this migration take the time they were stored (ingested_at), which keeps every current
-- version current; a batch records the observed_at it was landed with.
ALTER TABLE runs ADD COLUMN observed_at TIMESTAMPTZ;
ALTER TABLE run_history ADD COLUMN observed_at TIMESTAMPTZ;
ALTER TABLE steps ADD COLUMN observed_at TIMESTAMPTZ;
ALTER TABLE ingest_batches ADD COLUMN observed_at TIMESTAMPTZ;
UPDATE runs SET observed_at = ingested_at;
UPDATE run_history SET observed_at = ingested_at;
UPDATE steps SET observed_at = ingested_at;
UPDATE ingest_batches SET observed_at = started_at;

-- row_hash was md5 of the columns cast to text, joined by "\x1f" with "\N" for null: values
-- holding those characters (or lists whose text looks alike) could share a hash. It is now the
-- md5 of a JSON object of the content columns (models.store.runs._hash_sql, times as epoch
-- microseconds), recomputed here for every stored row so that the same record delivered again
-- is still "unchanged".
UPDATE runs SET row_hash = md5(to_json(struct_pack(
    "run_key" := "run_key",
    "scheduler" := "scheduler",
    "cluster" := "cluster",
    "job_id" := "job_id",
    "job_id_raw" := "job_id_raw",
    "array_job_id" := "array_job_id",
    "array_task_id" := "array_task_id",
    "het_job_id" := "het_job_id",
    "het_offset" := "het_offset",
    "user" := "user",
    "account" := "account",
    "partition" := "partition",
    "qos" := "qos",
    "state" := "state",
    "state_by_uid" := "state_by_uid",
    "exit_code" := "exit_code",
    "submit_at" := epoch_us("submit_at"),
    "eligible_at" := epoch_us("eligible_at"),
    "start_at" := epoch_us("start_at"),
    "end_at" := epoch_us("end_at"),
    "elapsed_s" := "elapsed_s",
    "timelimit_s" := "timelimit_s",
    "alloc_nodes" := "alloc_nodes",
    "alloc_cpus" := "alloc_cpus",
    "alloc_mem_mb" := "alloc_mem_mb",
    "alloc_gpus" := "alloc_gpus",
    "gpu_type" := "gpu_type",
    "tres" := "tres",
    "billing" := "billing",
    "nodelist" := "nodelist",
    "nodes" := "nodes",
    "reservation" := "reservation",
    "job_name" := "job_name"
)));
UPDATE run_history SET row_hash = md5(to_json(struct_pack(
    "run_key" := "run_key",
    "scheduler" := "scheduler",
    "cluster" := "cluster",
    "job_id" := "job_id",
    "job_id_raw" := "job_id_raw",
    "array_job_id" := "array_job_id",
    "array_task_id" := "array_task_id",
    "het_job_id" := "het_job_id",
    "het_offset" := "het_offset",
    "user" := "user",
    "account" := "account",
    "partition" := "partition",
    "qos" := "qos",
    "state" := "state",
    "state_by_uid" := "state_by_uid",
    "exit_code" := "exit_code",
    "submit_at" := epoch_us("submit_at"),
    "eligible_at" := epoch_us("eligible_at"),
    "start_at" := epoch_us("start_at"),
    "end_at" := epoch_us("end_at"),
    "elapsed_s" := "elapsed_s",
    "timelimit_s" := "timelimit_s",
    "alloc_nodes" := "alloc_nodes",
    "alloc_cpus" := "alloc_cpus",
    "alloc_mem_mb" := "alloc_mem_mb",
    "alloc_gpus" := "alloc_gpus",
    "gpu_type" := "gpu_type",
    "tres" := "tres",
    "billing" := "billing",
    "nodelist" := "nodelist",
    "nodes" := "nodes",
    "reservation" := "reservation",
    "job_name" := "job_name"
)));
UPDATE steps SET row_hash = md5(to_json(struct_pack(
    "step_key" := "step_key",
    "run_key" := "run_key",
    "cluster" := "cluster",
    "job_id" := "job_id",
    "step_id" := "step_id",
    "state" := "state",
    "exit_code" := "exit_code",
    "start_at" := epoch_us("start_at"),
    "end_at" := epoch_us("end_at"),
    "elapsed_s" := "elapsed_s",
    "alloc_nodes" := "alloc_nodes",
    "alloc_cpus" := "alloc_cpus",
    "tres" := "tres",
    "nodelist" := "nodelist",
    "job_name" := "job_name"
)));

-- A version is a distinct content: a content stored twice (A, B, A) is one version, observed at
-- the latest time it was seen. History rows equal to the current content are dropped (the
-- current row keeps the latest observation); equal history rows keep the first stored one.
UPDATE runs SET observed_at = h.observed_at
FROM (SELECT run_key, row_hash, max(observed_at) AS observed_at FROM run_history GROUP BY ALL) h
WHERE runs.run_key = h.run_key AND runs.row_hash = h.row_hash AND h.observed_at > runs.observed_at;
DELETE FROM run_history USING runs r
WHERE run_history.run_key = r.run_key AND run_history.row_hash = r.row_hash;
UPDATE run_history SET observed_at = m.observed_at
FROM (SELECT run_key, row_hash, max(observed_at) AS observed_at FROM run_history GROUP BY ALL) m
WHERE run_history.run_key = m.run_key AND run_history.row_hash = m.row_hash;
DELETE FROM run_history WHERE rowid IN (
    SELECT rowid FROM (
        SELECT rowid, row_number() OVER (
            PARTITION BY run_key, row_hash ORDER BY batch_id, ingested_at
        ) AS n
        FROM run_history
    )
    WHERE n > 1
);

-- run_versions numbers a run's versions from 1 (oldest) in the same order that picks the
-- current one, so the numbering does not depend on the order of delivery either.
CREATE OR REPLACE VIEW run_versions AS
SELECT
    row_number() OVER (
        PARTITION BY run_key
        ORDER BY observed_at, CASE WHEN end_at IS NOT NULL THEN 2 WHEN start_at IS NOT NULL THEN 1 ELSE 0 END, row_hash
    ) AS version,
    *
FROM (
    SELECT *, false AS is_current FROM run_history
    UNION ALL BY NAME
    SELECT *, NULL::TIMESTAMPTZ AS superseded_at, NULL::BIGINT AS superseded_by_batch,
        true AS is_current
    FROM runs
);
