-- Steps no longer store a content hash. A step keeps no earlier versions, and nothing outside
-- the upsert names a step's content, so a re-delivered step is compared with the stored one
-- column by column (the struct of its content columns, exact) when it arrives, instead of by
-- an MD5 computed for every step as it lands: about 2.8 CPU-seconds per 1.6M steps
-- (docs/benchmarks.md). Runs keep their row_hash (versions, verdicts and the API name it).
ALTER TABLE steps DROP COLUMN row_hash;
