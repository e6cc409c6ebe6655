-- The versions of the distributions that rendered each statement recorded at a period's close
-- ("fairledger 0.1.0, polars 2.2.0, fpdf2 2.8.9, ..."), beside its SHA-256: a PDF or XLSX
-- re-rendered by later releases can differ by a byte, and an auditor comparing it with the
-- recorded hash needs to know which releases made the original. Null for periods closed before.
ALTER TABLE statement_hashes ADD COLUMN made_with VARCHAR;
