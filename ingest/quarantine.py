"""Retrying quarantined records after a parser or policy fix.

Each open record is parsed again, alone, from its raw line with the parser as it is now and
the options it was first parsed with (``ParsedWith``: for sacct text, the field order, the
cluster given and the time zone), or a corrected field order. The records that now parse land
through ``write_batch`` as one new batch per source, and are marked ``resolved`` by that batch
in the same transaction; the others stay ``open`` with the reason found now. Nothing in
quarantine is deleted.

A record is older than anything stored after it was quarantined: when its run (or step) has
since been stored by a later batch, that newer content stays current and the retried record is
resolved without landing (its content stays readable in quarantine).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from ingest.sources.sacct import parse_sacct
from models.errors import ParseError
from models.frames import QUARANTINE, RUNS, STEPS, empty
from models.store import Connection
from models.store.runs import (
    QuarantineRetry,
    list_quarantine,
    read_stored_batches,
    write_batch,
)

RETRYABLE_PARSERS = ("sacct",)


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


def _retry_source(
    con: Connection, source: str, records: pl.DataFrame, *, fields: Sequence[str] | None
) -> RetryOutcome:
    started_at = datetime.now(UTC)
    runs: list[pl.DataFrame] = []
    steps: list[pl.DataFrame] = []
    resolved: list[int] = []
    still_bad: list[tuple[int, str, str]] = []
    skipped: list[str] = []
    for row in records.iter_rows(named=True):
        parser = row["parser"]
        order = list(fields) if fields is not None else row["fields"]
        if parser not in RETRYABLE_PARSERS:
            why = f"parser {parser!r}" if parser else "a record whose parser was not recorded"
            skipped.append(f"record {row['quarantine_id']}: no retry for {why}")
            continue
        if order is None:
            skipped.append(f"record {row['quarantine_id']}: no field order recorded; pass --fields")
            continue
        try:
            batch = parse_sacct(
                row["raw"] or "",
                source=source,
                fields=order,
                cluster=row["parse_cluster"],
                tz=row["parse_tz"] or "UTC",
            )
        except ParseError as exc:
            still_bad.append((row["quarantine_id"], "", str(exc)))
            continue
        if batch.quarantine.height:
            bad = batch.quarantine.row(0, named=True)
            still_bad.append((row["quarantine_id"], bad["field"], bad["reason"]))
            continue
        if batch.runs.height + batch.steps.height == 0:  # an empty or header-only line
            still_bad.append((row["quarantine_id"], "", "no record in the line"))
            continue
        stored = read_stored_batches(
            con,
            run_keys=batch.runs["run_key"].to_list(),
            step_keys=batch.steps["step_key"].to_list(),
        )
        if not any(b > row["batch_id"] for b in stored.values()):
            line = pl.lit(row["line_no"], pl.Int64).alias("source_line")
            runs.append(batch.runs.with_columns(line))
            steps.append(batch.steps.with_columns(line))
        resolved.append(row["quarantine_id"])
    retried = len(resolved) + len(still_bad)
    batch_id = None
    if retried:
        summary = write_batch(
            con,
            source=source,
            scheduler="slurm",
            runs=pl.concat(runs) if runs else empty(RUNS),
            steps=pl.concat(steps) if steps else empty(STEPS),
            quarantine=empty(QUARANTINE),
            lines_read=retried,
            started_at=started_at,
            retry=QuarantineRetry(resolved=resolved, still_bad=still_bad),
        )
        batch_id = summary.batch_id
    return RetryOutcome(source, retried, len(resolved), len(still_bad), batch_id, tuple(skipped))
