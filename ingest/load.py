"""Landing parsed batches in the store, and the summary a person reads afterwards.

``load_sacct_file`` lands a whole file as one batch. With ``chunk_lines`` it reads the file in
chunks of about that many lines instead, each parsed and landed as its own batch (each one
atomic), so a year of sacct output loads in bounded memory. A chunk ends only before a line whose
JobID has no ``.`` (an allocation line, or a header), so the steps of an allocation always land
with it; each chunk is parsed with the file's header line in front, and the line numbers the
parser reports (``source_line``, a quarantined record's ``line_no``) are those of the file.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import polars as pl

from ingest.chunks import file_chunks
from ingest.sources.sacct import KNOWN_FIELDS, SacctBatch, decode_text, is_header, parse_sacct
from models.errors import ParseError
from models.frames import QUARANTINE, empty
from models.store import BatchSummary, Connection, write_batch
from models.store.quarantine import ParsedWith

_KNOWN = frozenset(name.lower() for name in KNOWN_FIELDS)

# Default size of a chunk of a large file: ~190k jobs of sacct's usual 2-3 lines, enough for
# DuckDB to write whole row groups straight to the file (see docs/benchmarks.md); two chunks
# are in memory at once (one landing, the next parsed), ~2.5 GB at the peak.
CHUNK_LINES = 500_000


@dataclass(frozen=True)
class FileLoad:
    """What loading one file did: the stored batch(es) and the records quarantined.

    ``summary`` holds the totals over every batch the file was landed in (its ``batch_id`` is the
    last one); ``batches`` each batch's own summary, in order.
    """

    summary: BatchSummary
    quarantine: pl.DataFrame
    batches: tuple[BatchSummary, ...] = ()

    def describe(self) -> str:
        """Return a one-paragraph summary for the command line."""
        s = self.summary
        if len(self.batches) > 1:
            head = f"{len(self.batches)} batches ({self.batches[0].batch_id}-{s.batch_id})"
        else:
            head = f"batch {s.batch_id}"
        text = (
            f"{head}: {s.lines_read} lines read; "
            f"runs {s.runs_new} new, {s.runs_changed} changed, {s.runs_unchanged} unchanged; "
            f"steps {s.steps_new} new, {s.steps_changed} changed, {s.steps_unchanged} unchanged; "
            f"{s.quarantined} quarantined"
        )
        return text


@dataclass(frozen=True)
class LoadProgress:
    """How far a chunked load is, reported after each landed batch."""

    bytes_done: int
    bytes_total: int
    lines_done: int  # physical lines of the file consumed so far
    batches: int


def load_sacct_file(
    con: Connection,
    path: Path,
    *,
    cluster: str | None = None,
    fields: list[str] | None = None,
    tz: str = "UTC",
    chunk_lines: int | None = None,
    on_progress: Callable[[LoadProgress], None] | None = None,
    observed_at: datetime | None = None,
) -> FileLoad:
    """Parse a ``sacct --parsable2`` file and land it; return what happened.

    ``observed_at`` is when sacct wrote the file (default: its mtime): it orders the file's
    records against other versions of the same runs (``models.store.runs.write_batch``).

    Without ``chunk_lines`` the file lands as one batch. With it, the file is read and landed in
    chunks of at least ``chunk_lines`` lines (see the module's docstring), ``on_progress`` is
    called after each one, and the summary adds up all batches.
    """
    if observed_at is None:
        observed_at = file_observed_at(path)
    if chunk_lines is not None:
        return _load_chunked(
            con,
            path,
            cluster=cluster,
            fields=fields,
            tz=tz,
            chunk_lines=chunk_lines,
            on_progress=on_progress,
            observed_at=observed_at,
        )
    started_at = datetime.now(UTC)
    try:
        # The bytes, not the text: parse_sacct decodes them as Path.read_text would, and a
        # Python string of a large file would cost a copy or two more.
        data = path.read_bytes()
    except OSError as exc:
        raise ParseError(f"cannot read {path}: {exc}") from exc
    source = str(path.resolve())
    batch = parse_sacct(data, source=source, fields=fields, cluster=cluster, tz=tz)
    parsed_with = ParsedWith("sacct", field_order(data, fields), cluster, tz)
    summary = write_parsed(
        con,
        batch,
        source=source,
        scheduler="slurm",
        started_at=started_at,
        parsed_with=parsed_with,
        observed_at=observed_at,
    )
    return FileLoad(summary, batch.quarantine, (summary,))


def write_parsed(
    con: Connection,
    batch: SacctBatch,
    *,
    source: str,
    scheduler: str,
    started_at: datetime,
    parsed_with: ParsedWith,
    advance_watermark: bool = False,
    observed_at: datetime | None = None,
) -> BatchSummary:
    """Land a parsed batch of ``source`` atomically; return what it changed.

    With ``advance_watermark`` the source's watermark moves to ``started_at`` in the same
    transaction (a scheduled pull, a drop directory, a push), so it never runs ahead of the data.
    ``observed_at`` (default ``started_at``) is when the source saw the records.
    """
    return write_batch(
        con,
        source=source,
        scheduler=scheduler,
        runs=batch.runs,
        steps=batch.steps,
        quarantine=batch.quarantine,
        lines_read=batch.lines_read,
        started_at=started_at,
        watermark=(source, started_at) if advance_watermark else None,
        parsed_with=parsed_with,
        observed_at=observed_at,
    )


def file_observed_at(path: Path) -> datetime | None:
    """Return when ``path`` was last written (its mtime, UTC), or None when it cannot be read."""
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return None


@dataclass(frozen=True)
class ParsedChunk:
    """One chunk of a file, parsed: its batch, the field order, and the lines and bytes it
    consumed."""

    batch: SacctBatch
    parsed_with: ParsedWith
    lines: int
    size: int


def parsed_chunks(
    handle: BinaryIO,
    *,
    source: str,
    cluster: str | None,
    fields: list[str] | None,
    tz: str,
    chunk_lines: int,
    universal_newlines: bool = True,
) -> Iterator[ParsedChunk]:
    """Yield the chunks of ``handle`` parsed, line numbers those of the file (see the module's
    docstring); an empty file yields one empty chunk.

    A chunk holding a carriage return is decoded first: with ``universal_newlines`` as
    ``Path.read_text`` does (``decode_text``: a lone ``\\r`` ends a line, as for ``fairledger
    ingest file``), else as UTF-8 only (a ``\\r`` before a newline is dropped by the parser, a
    lone one stays in its field, as a drop directory has always read files).
    """
    header: str | None = None  # the file's header line, put in front of every later chunk
    parsed_with = ParsedWith("sacct", tuple(fields) if fields is not None else None, cluster, tz)
    first_line = 1  # the file's line number of the chunk's first line
    chunks = 0
    for data in file_chunks(handle, chunk_lines, fields):
        # The bytes go to the parser as they are (see load_sacct_file), unless carriage
        # returns need translating first.
        text = None
        if b"\r" in data:
            text = decode_text(data) if universal_newlines else data.decode("utf-8", "replace")
        chunk: str | bytes = data if text is None else text
        if not chunks:
            first = _first_nonblank(chunk)
            header = first if first and is_header(first) else None
            parsed_with = ParsedWith("sacct", field_order(first, fields), cluster, tz)
            offset = 0
        elif header is not None:
            head = header.encode() + b"\n"
            chunk = head + data if text is None else f"{header}\n{text}"
            offset = first_line - 2
        else:
            offset = first_line - 1
        batch = parse_sacct(chunk, source=source, fields=fields, cluster=cluster, tz=tz)
        if offset:
            batch = _shift_lines(batch, offset)
        lines = data.count(b"\n") if text is None else text.count("\n")
        first_line += lines
        chunks += 1
        yield ParsedChunk(batch, parsed_with, lines, len(data))
    if not chunks:  # an empty file still lands (an empty batch), as an unchunked load does
        batch = parse_sacct("", source=source, fields=fields, cluster=cluster, tz=tz)
        yield ParsedChunk(batch, parsed_with, 0, 0)


def parse_ahead(items: Iterator[ParsedChunk]) -> Generator[ParsedChunk]:
    """Yield ``items`` in order, computing the next one in a worker thread while the caller
    handles the current one (polars and DuckDB both release the GIL, so parsing a chunk and
    landing the one before it overlap). An exception raised by ``items`` is raised here, at
    the item it replaces, after every earlier item was handled."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="parse-ahead") as pool:
        pending: Future[ParsedChunk | None] = pool.submit(next, items, None)
        while (item := pending.result()) is not None:
            pending = pool.submit(next, items, None)
            yield item


def _load_chunked(
    con: Connection,
    path: Path,
    *,
    cluster: str | None,
    fields: list[str] | None,
    tz: str,
    chunk_lines: int,
    on_progress: Callable[[LoadProgress], None] | None,
    observed_at: datetime | None,
) -> FileLoad:
    if chunk_lines < 1:
        raise ValueError("chunk_lines must be at least 1")
    source = str(path.resolve())
    try:
        handle = path.open("rb")
        total = path.stat().st_size
    except OSError as exc:
        raise ParseError(f"cannot read {path}: {exc}") from exc
    batches: list[BatchSummary] = []
    quarantined: list[pl.DataFrame] = []
    lines_done = 0
    bytes_done = 0
    parsed = parsed_chunks(
        handle, source=source, cluster=cluster, fields=fields, tz=tz, chunk_lines=chunk_lines
    )
    # The worker stops (closing) before the file closes, also when a batch fails to land.
    with handle, closing(parse_ahead(parsed)) as chunks:
        for chunk in chunks:
            batches.append(
                write_parsed(
                    con, chunk.batch, source=source, scheduler="slurm",
                    started_at=datetime.now(UTC), parsed_with=chunk.parsed_with,
                    observed_at=observed_at,
                )
            )  # fmt: skip
            if chunk.batch.quarantine.height:
                quarantined.append(chunk.batch.quarantine)
            lines_done += chunk.lines
            bytes_done += chunk.size
            if on_progress is not None and chunk.size:
                on_progress(LoadProgress(bytes_done, total, lines_done, len(batches)))
    quarantine = pl.concat(quarantined) if quarantined else empty(QUARANTINE)
    return FileLoad(total_summary(batches), quarantine, tuple(batches))


def _first_nonblank(text: str | bytes) -> str:
    """Return the first non-blank line of ``text`` split at newlines (bytes decoded as
    ``decode_text`` does, line by line), or ""."""
    if isinstance(text, str):
        return next((line for line in text.split("\n") if line.strip()), "")
    start = 0
    while start <= len(text):
        end = text.find(b"\n", start)
        end = len(text) if end < 0 else end
        line = text[start:end].decode("utf-8", errors="replace")
        if line.strip():
            return line
        start = end + 1
    return ""


def _shift_lines(batch: SacctBatch, offset: int) -> SacctBatch:
    """Return ``batch`` with its line numbers moved by ``offset`` (chunk lines -> file lines)."""
    return SacctBatch(
        runs=batch.runs.with_columns(pl.col("source_line") + offset),
        steps=batch.steps.with_columns(pl.col("source_line") + offset),
        quarantine=batch.quarantine.with_columns(pl.col("line_no") + offset),
        lines_read=batch.lines_read,
    )


def total_summary(batches: list[BatchSummary]) -> BatchSummary:
    """Return the sum of the batches' counts, with the last batch's id."""
    if len(batches) == 1:
        return batches[0]
    counts = {
        f.name: sum(getattr(b, f.name) for b in batches)
        for f in dataclass_fields(BatchSummary)
        if f.name != "batch_id"
    }
    return BatchSummary(batch_id=batches[-1].batch_id, **counts)


def field_order(text: str | bytes, fields: list[str] | None) -> tuple[str, ...] | None:
    """Return the field order a quarantined line of ``text`` is parsed again with: the file's
    header when it has one (it wins over ``fields``, as in ``parse_sacct``), else ``fields``.
    Bytes are read as ``decode_text`` reads them."""
    first = _first_line(text)
    names = [n.strip() for n in first.split("|")]
    if len(names) > 1 and names[-1] == "":
        names.pop()
    if fields is None or all(n.lower() in _KNOWN for n in names):
        return tuple(names)
    return tuple(fields)


def _first_line(text: str | bytes) -> str:
    """Return the first non-blank line of ``text`` (as ``str.splitlines`` cuts lines), or "",
    without splitting (or decoding) the whole text."""
    start = 0
    while start < len(text):
        if isinstance(text, bytes):
            end = text.find(b"\n", start)
            end = len(text) if end < 0 else end + 1
            # A newline byte is never inside a UTF-8 sequence: decoding line by line is the same.
            segment = text[start:end].decode("utf-8", errors="replace")
        else:
            end = text.find("\n", start)
            end = len(text) if end < 0 else end + 1
            segment = text[start:end]
        for line in segment.splitlines():
            if line.strip():
                return line
        start = end
    return ""
