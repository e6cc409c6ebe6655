"""Landing parsed batches in the store, and the summary a person reads afterwards."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from ingest.sources.sacct import parse_sacct
from models.errors import ParseError
from models.store import BatchSummary, Connection, write_batch


@dataclass(frozen=True)
class FileLoad:
    """What loading one file did: the stored batch and the records it quarantined."""

    summary: BatchSummary
    quarantine: pl.DataFrame

    def describe(self) -> str:
        """Return a one-paragraph summary for the command line."""
        s = self.summary
        text = (
            f"batch {s.batch_id}: {s.lines_read} lines read; "
            f"runs {s.runs_new} new, {s.runs_changed} changed, {s.runs_unchanged} unchanged; "
            f"steps {s.steps_new} new, {s.steps_changed} changed, {s.steps_unchanged} unchanged; "
            f"{s.quarantined} quarantined"
        )
        return text


def load_sacct_file(
    con: Connection,
    path: Path,
    *,
    cluster: str | None = None,
    fields: list[str] | None = None,
    tz: str = "UTC",
) -> FileLoad:
    """Parse a ``sacct --parsable2`` file and land it as one batch; return what happened."""
    started_at = datetime.now(UTC)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ParseError(f"cannot read {path}: {exc}") from exc
    source = str(path.resolve())
    batch = parse_sacct(text, source=source, fields=fields, cluster=cluster, tz=tz)
    summary = write_batch(
        con,
        source=source,
        scheduler="slurm",
        runs=batch.runs,
        steps=batch.steps,
        quarantine=batch.quarantine,
        lines_read=batch.lines_read,
        started_at=started_at,
    )
    return FileLoad(summary, batch.quarantine)
