"""Landing parsed batches in the store, and the summary a person reads afterwards."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from ingest.sources.sacct import KNOWN_FIELDS, parse_sacct
from models.errors import ParseError
from models.store import BatchSummary, Connection, write_batch
from models.store.runs import ParsedWith

_KNOWN = frozenset(name.lower() for name in KNOWN_FIELDS)


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
        parsed_with=ParsedWith("sacct", field_order(text, fields), cluster, tz),
    )
    return FileLoad(summary, batch.quarantine)


def field_order(text: str, fields: list[str] | None) -> tuple[str, ...] | None:
    """Return the field order a quarantined line of ``text`` is parsed again with: the file's
    header when it has one (it wins over ``fields``, as in ``parse_sacct``), else ``fields``."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    names = [n.strip() for n in first.split("|")]
    if len(names) > 1 and names[-1] == "":
        names.pop()
    if fields is None or all(n.lower() in _KNOWN for n in names):
        return tuple(names)
    return tuple(fields)
