"""Retrying quarantined records after a parser or policy fix.

Each open record is parsed again, alone, from its raw text with the parser it was first read
with (``quarantine.parser``), as that parser is now, and the options it ran with
(``ParsedWith``: for sacct text the field order, the cluster given and the time zone; for PBS
and LSF the cluster), or a corrected field order for sacct text:

- ``sacct``: the raw line with the recorded (or corrected) field order;
- ``sacct_json`` (and ``slurmrestd``, the same JSON): the raw job, in a one-job document of the
  layout its fields show (``state.current`` a list: data_parser v0.0.39+; a string: the
  openapi/dbv0.0.38 layout). A refused *step* is retried with its job only (load the document
  again); a job cut at the raw limit cannot be retried;
- ``pbs``, ``lsf``, ``jsonl``: the raw line.

A record is resolved only when it parses whole (a JSON job with all its steps). The records that
now parse land through ``write_batch`` as one new batch per source, observed when their first
batch was (so a retried record older than what is stored becomes an older version, never the
current one), and are marked ``resolved`` by that batch in the same transaction; the others
stay ``open`` with the reason found now. Nothing in quarantine is deleted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from ingest.sources.jobs_jsonl import parse_jobs_jsonl
from ingest.sources.lsf import parse_lsf_accounting
from ingest.sources.pbs import parse_pbs_accounting
from ingest.sources.sacct import SacctBatch, parse_sacct
from ingest.sources.sacct_json import LEGACY_PLUGINS, parse_sacct_json
from models.errors import ParseError
from models.frames import QUARANTINE, RUNS, STEPS, UTC_TIME, empty
from models.store import Connection
from models.store.quarantine import QuarantineRetry, list_quarantine, read_observed_at
from models.store.runs import write_batch

# The scheduler each parser's records come from (``ingest_batches.scheduler``).
SCHEDULERS = {"sacct": "slurm", "sacct_json": "slurm", "slurmrestd": "slurm", "pbs": "pbs",
              "lsf": "lsf", "jsonl": "push"}  # fmt: skip
RETRYABLE_PARSERS = tuple(SCHEDULERS)


@dataclass(frozen=True)
class RetryOutcome:
    """What retrying the open records of one source did."""

    source: str
    retried: int
    resolved: int
    still_open: int
    batch_id: int | None  # the batch that landed the resolved ones (None: nothing retried)
    skipped: tuple[str, ...] = ()  # why some records were not retried at all

    def describe(self) -> str:
        """Return one line for the command line."""
        text = (
            f"{self.source}: {self.retried} retried, {self.resolved} resolved"
            f"{f' by batch {self.batch_id}' if self.resolved else ''}, "
            f"{self.still_open} still open"
        )
        return text + "".join(f"; {s}" for s in self.skipped)


def retry_quarantined(
    con: Connection,
    *,
    source: str | None = None,
    ids: Sequence[int] | None = None,
    fields: Sequence[str] | None = None,
) -> list[RetryOutcome]:
    """Parse the open quarantined records again and land those that now parse.

    ``source`` and ``ids`` choose the records (default: every open one); ``fields`` replaces
    the recorded field order (the fix when a headerless file was loaded with a wrong
    ``--fields``). Returns one outcome per source.
    """
    records, _ = list_quarantine(con, source=source, status="open", ids=ids)
    outcomes = []
    for (name,), group in records.group_by(["source"], maintain_order=True):
        outcomes.append(_retry_source(con, str(name), group, fields=fields))
    return outcomes


class _SkipError(ValueError):
    """The record is not retried; the message says why."""


def reparse(row: dict[str, Any], *, source: str, fields: Sequence[str] | None) -> SacctBatch:
    """Return the batch of one quarantined record parsed again (see the module's docstring).

    Raises ``_SkipError`` when the record cannot be retried as it is, ParseError when its text
    cannot be read at all.
    """
    parser, raw, cluster = row["parser"], row["raw"] or "", row["parse_cluster"]
    match parser:
        case "sacct":
            order = list(fields) if fields is not None else row["fields"]
            if order is None:
                raise _SkipError("no field order recorded; pass --fields")
            return parse_sacct(
                raw, source=source, fields=order, cluster=cluster, tz=row["parse_tz"] or "UTC"
            )
        case "sacct_json" | "slurmrestd":
            return parse_sacct_json(_one_job_document(row), source=source, cluster=cluster)
        case "pbs" | "lsf" if not cluster:
            raise _SkipError(f"no cluster recorded for a {parser} record")
        case "pbs":
            return parse_pbs_accounting(raw, source=source, cluster=cluster)
        case "lsf":
            return parse_lsf_accounting(raw, source=source, cluster=cluster)
        case "jsonl":
            return parse_jobs_jsonl(raw, source=source)
    why = f"parser {parser!r}" if parser else "a record whose parser was not recorded"
    raise _SkipError(f"no retry for {why}")


def _one_job_document(row: dict[str, Any]) -> str:
    """Return a ``sacct --json`` document holding the quarantined job alone."""
    if (row["field"] or "").startswith("steps["):
        raise _SkipError("a refused step is retried with its job: load the document again")
    try:
        job = json.loads(row["raw"] or "")
    except json.JSONDecodeError as exc:
        raise ParseError(f"the job kept in quarantine is not whole JSON: {exc}") from exc
    state = job.get("state") if isinstance(job, dict) else None
    if isinstance(state, dict) and isinstance(state.get("current"), list):
        plugin = {"data_parser": "data_parser/v0.0.41"}
    else:
        plugin = {"type": LEGACY_PLUGINS[-1]}
    return json.dumps({"meta": {"plugin": plugin}, "jobs": [job]})


def _retry_source(
    con: Connection, source: str, records: pl.DataFrame, *, fields: Sequence[str] | None
) -> RetryOutcome:
    started_at = datetime.now(UTC)
    runs: list[pl.DataFrame] = []
    steps: list[pl.DataFrame] = []
    resolved: list[int] = []
    still_bad: list[tuple[int, str, str]] = []
    skipped: list[str] = []
    observed = read_observed_at(con, records["quarantine_id"].to_list())
    for row in records.iter_rows(named=True):
        qid = row["quarantine_id"]
        try:
            batch = reparse(row, source=source, fields=fields)
        except _SkipError as exc:
            skipped.append(f"record {qid}: {exc}")
            continue
        except ParseError as exc:
            still_bad.append((qid, "", str(exc)))
            continue
        if batch.quarantine.height:
            bad = batch.quarantine.row(0, named=True)
            still_bad.append((qid, bad["field"], bad["reason"]))
            continue
        if batch.runs.height + batch.steps.height == 0:  # an empty line, another record type
            still_bad.append((qid, "", "no record in the line"))
            continue
        # where it was read, and when its first batch observed it
        provenance = [
            pl.lit(row["line_no"], pl.Int64).alias("source_line"),
            pl.lit(observed.get(qid), UTC_TIME).alias("observed_at"),
        ]
        runs.append(batch.runs.with_columns(provenance))
        steps.append(batch.steps.with_columns(provenance))
        resolved.append(qid)
    retried = len(resolved) + len(still_bad)
    batch_id = None
    if retried:
        parsers = [p for p in records["parser"].unique(maintain_order=True) if p in SCHEDULERS]
        summary = write_batch(
            con,
            source=source,
            scheduler=SCHEDULERS[parsers[0]] if parsers else "slurm",
            runs=pl.concat(runs, how="diagonal_relaxed") if runs else empty(RUNS),
            steps=pl.concat(steps, how="diagonal_relaxed") if steps else empty(STEPS),
            quarantine=empty(QUARANTINE),
            lines_read=retried,
            started_at=started_at,
            retry=QuarantineRetry(resolved=resolved, still_bad=still_bad),
        )
        batch_id = summary.batch_id
    return RetryOutcome(source, retried, len(resolved), len(still_bad), batch_id, tuple(skipped))
