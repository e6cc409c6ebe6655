"""Drop directories: accounting files left in a directory, loaded on a schedule.

Each regular file directly in the directory is parsed with the directory's format, landed as one
batch, then moved to ``done/`` (it landed, even with some lines quarantined) or ``failed/`` (it
could not be read, or no record of it parsed), with ``<name>.reason`` beside it saying what
happened. Files are taken in name order.

A sacct file is read and landed in chunks of ``CHUNK_LINES`` lines (the next parsed while one
lands), as ``fairledger ingest file`` lands it, each chunk its own batch: a year of sacct output
dropped as one file loads in bounded memory. Whether a file failed is decided on its first chunk
(before anything of it lands). Should a later chunk fail to be read or stored, the batches before
it stay, the file stays where it is with the failure recorded, and the next run loads it again:
the landed chunks change nothing the second time.

A file still being written is left alone: names starting with ``.`` or ending in ``.part`` or
``.tmp`` are skipped (write under such a name, then rename into place, which is atomic), and so
is any file modified less than ``settle_s`` seconds ago (for writers that cannot rename).

A file is never loaded twice: it is moved (``os.replace``, atomic within the directory's file
system) only after its batch committed. If the process dies between the commit and the move, the
next run loads the file again, which changes nothing (the upsert keeps identical runs, and a bad
line still open in quarantine from the same file is not quarantined again), and moves it.
Records carry the file's path as dropped as their ``source``.

The directory's state is kept in ``source_state`` under ``dropdir:<path>``: a landed file
advances it (last success), a failed file or an unreadable directory records a failure, so
``/v1/status`` shows the directory degraded until the next file lands.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Generator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

import polars as pl

from ingest.load import (
    CHUNK_LINES,
    ParsedChunk,
    field_order,
    file_observed_at,
    parse_ahead,
    parsed_chunks,
    total_summary,
    write_parsed,
)
from ingest.sources.jobs_jsonl import parse_jobs_jsonl
from ingest.sources.lsf import parse_lsf_accounting
from ingest.sources.pbs import parse_pbs_accounting
from ingest.sources.sacct import SacctBatch, parse_sacct
from ingest.sources.sacct_json import parse_sacct_json
from models.errors import FairledgerError
from models.store import BatchSummary
from models.store.handle import StoreHandle
from models.store.quarantine import ParsedWith
from models.store.sources import record_source_failure

log = logging.getLogger(__name__)

Format = Literal["sacct", "sacct_json", "pbs", "lsf", "jsonl"]
SCHEDULERS: dict[str, str] = {
    "sacct": "slurm",
    "sacct_json": "slurm",
    "pbs": "pbs",
    "lsf": "lsf",
    "jsonl": "push",
}
_WRITING_SUFFIXES = (".part", ".tmp")
_REASON_QUARANTINED_SHOWN = 20


class DropDirSettings(Protocol):
    """``api.settings.DropDir`` has these fields."""

    @property
    def name(self) -> str: ...
    @property
    def path(self) -> Path: ...
    @property
    def format(self) -> Format: ...
    @property
    def cluster(self) -> str | None: ...
    @property
    def fields(self) -> list[str] | None: ...
    @property
    def tz(self) -> str: ...
    @property
    def settle_s(self) -> float: ...
    @property
    def interval_s(self) -> int: ...


@dataclass(frozen=True)
class DropOutcome:
    """What became of one dropped file: ``done`` (``summary`` says what landed) or ``failed``."""

    file: str
    status: Literal["done", "failed"]
    moved_to: Path | None
    summary: BatchSummary | None = None
    reason: str | None = None

    @property
    def changed(self) -> bool:
        s = self.summary
        return s is not None and (s.runs_new + s.runs_changed) > 0


def ready_files(directory: Path, *, now: datetime, settle_s: float) -> list[Path]:
    """Return the files of ``directory`` ready to load, in name order (see the module doc)."""
    ready: list[Path] = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        name = entry.name
        if name.startswith(".") or name.endswith(_WRITING_SUFFIXES):
            continue
        if not entry.is_file(follow_symlinks=False):
            continue
        if entry.stat().st_mtime > now.timestamp() - settle_s:
            continue
        ready.append(Path(entry.path))
    return ready


def parse_dropped(text: str, drop: DropDirSettings, *, source: str) -> SacctBatch:
    """Return the batch of one dropped file's ``text`` in the directory's format."""
    match drop.format:
        case "sacct":
            return parse_sacct(
                text, source=source, fields=drop.fields, cluster=drop.cluster, tz=drop.tz
            )
        case "sacct_json":
            return parse_sacct_json(text, source=source, cluster=drop.cluster)
        case "pbs" | "lsf" if not drop.cluster:
            raise FairledgerError(f"a {drop.format} drop directory needs a cluster")
        case "pbs":
            return parse_pbs_accounting(text, source=source, cluster=drop.cluster or "")
        case "lsf":
            return parse_lsf_accounting(text, source=source, cluster=drop.cluster or "")
        case "jsonl":
            return parse_jobs_jsonl(text, source=source)
    raise FairledgerError(f"unknown drop directory format {drop.format!r}")


def run_drop_dir(
    drop: DropDirSettings,
    store: StoreHandle,
    *,
    now: Callable[[], datetime],
    move: Callable[[Path, Path], None] = os.replace,
    chunk_lines: int = CHUNK_LINES,
) -> list[DropOutcome]:
    """Load every ready file of ``drop`` and move it to done/ or failed/; return what became of
    each. ``move`` is injected so a test can die between a commit and its move; a sacct file
    lands in chunks of ``chunk_lines`` lines."""
    started_at = now()
    directory = Path(drop.path)
    try:
        files = ready_files(directory, now=started_at, settle_s=drop.settle_s)
        for sub in ("done", "failed"):
            (directory / sub).mkdir(exist_ok=True)
    except OSError as exc:
        _record_failure(store, drop, f"cannot read the drop directory: {exc}", started_at)
        return []
    return [
        _load_file(path, drop, store, now=now, move=move, chunk_lines=chunk_lines) for path in files
    ]


def _parsed_pieces(path: Path, drop: DropDirSettings, chunk_lines: int) -> Generator[ParsedChunk]:
    """Yield a dropped file parsed: a sacct file chunk by chunk (the next parsed while the
    caller lands one), a file of another format whole. Close it to stop the parsing."""
    if drop.format == "sacct":
        with path.open("rb") as handle:
            pieces = parsed_chunks(
                handle, source=str(path), cluster=drop.cluster, fields=drop.fields,
                tz=drop.tz, chunk_lines=chunk_lines, universal_newlines=False,
            )  # fmt: skip
            with closing(parse_ahead(pieces)) as ahead:
                yield from ahead
        return
    data = path.read_bytes()
    text = data.decode("utf-8", errors="replace")
    batch = parse_dropped(text, drop, source=str(path))
    yield ParsedChunk(batch, _parsed_with(drop, text), text.count("\n"), len(data))


def _load_file(
    path: Path,
    drop: DropDirSettings,
    store: StoreHandle,
    *,
    now: Callable[[], datetime],
    move: Callable[[Path, Path], None],
    chunk_lines: int,
) -> DropOutcome:
    started_at = now()
    observed_at = file_observed_at(path)
    landed: list[BatchSummary] = []
    quarantined: list[pl.DataFrame] = []
    try:
        with closing(_parsed_pieces(path, drop, chunk_lines)) as pieces:
            for piece in pieces:
                batch = piece.batch
                if not landed and (refusal := _refusal(batch)):
                    return _failed(path, drop, store, refusal, started_at, move)
                try:
                    with store.write() as cur:
                        summary = write_parsed(
                            cur, batch, source=drop.name, scheduler=SCHEDULERS[drop.format],
                            started_at=started_at, parsed_with=piece.parsed_with,
                            advance_watermark=True, observed_at=observed_at,
                        )  # fmt: skip
                except FairledgerError as exc:  # the store refused it: the file stays
                    return _left(path, drop, store, str(exc), started_at, landed)
                landed.append(summary)
                if batch.quarantine.height:
                    quarantined.append(batch.quarantine)
    except (OSError, FairledgerError, ValueError) as exc:
        if landed:  # a later chunk could not be read: what landed stays, the file too
            return _left(path, drop, store, f"unreadable: {exc}", started_at, landed)
        return _failed(path, drop, store, f"unreadable: {exc}", started_at, move)
    summary = total_summary(landed)
    quarantine = pl.concat(quarantined) if quarantined else None
    first, last = landed[0].batch_id, summary.batch_id
    reason = (
        f"landed as batch {last}" if first == last else f"landed as batches {first}-{last}"
    ) + (
        f": {summary.lines_read} lines; runs {summary.runs_new} new, {summary.runs_changed} "
        f"changed, {summary.runs_unchanged} unchanged; {summary.quarantined} quarantined\n"
    )
    if quarantine is not None:
        reason += _quarantine_lines(quarantine)
    moved = _move(path, Path(drop.path) / "done", reason, move)
    log.info("drop %s: %s → %s: %s", drop.name, path.name, moved, reason.splitlines()[0])
    return DropOutcome(path.name, "done", moved, summary, reason)


def _refusal(batch: SacctBatch) -> str | None:
    """Return why a file whose (first) batch is ``batch`` fails as a whole, or None."""
    if batch.lines_read == 0:
        return "empty: no records"
    if batch.runs.is_empty() and batch.quarantine.height:
        return f"no record could be parsed:\n{_quarantine_lines(batch.quarantine)}"
    return None


def _left(
    path: Path,
    drop: DropDirSettings,
    store: StoreHandle,
    error: str,
    started_at: datetime,
    landed: list[BatchSummary],
) -> DropOutcome:
    """Record that ``path`` could not be landed whole and leave it for the next run; the
    batches in ``landed`` (earlier chunks of it) stay stored."""
    if landed:
        error = (
            f"{error} (after batches {landed[0].batch_id}-{landed[-1].batch_id} of the file "
            "landed; the next run loads it again)"
        )
    _record_failure(store, drop, f"{path.name}: {error}", started_at)
    log.warning("drop %s: %s left in place: %s", drop.name, path.name, error)
    summary = total_summary(landed) if landed else None
    return DropOutcome(path.name, "failed", None, summary, reason=error)


def _parsed_with(drop: DropDirSettings, text: str) -> ParsedWith:
    if drop.format == "sacct":
        return ParsedWith("sacct", field_order(text, drop.fields), drop.cluster, drop.tz)
    return ParsedWith(drop.format, None, drop.cluster, None)


def _quarantine_lines(quarantine: pl.DataFrame) -> str:
    rows = quarantine.head(_REASON_QUARANTINED_SHOWN).iter_rows(named=True)
    shown = [f"line {r['line_no']}: {r['field'] or '(record)'}: {r['reason']}\n" for r in rows]
    more = quarantine.height - len(shown)
    return "".join(shown) + (f"... and {more} more\n" if more > 0 else "")


def _failed(
    path: Path,
    drop: DropDirSettings,
    store: StoreHandle,
    reason: str,
    started_at: datetime,
    move: Callable[[Path, Path], None],
) -> DropOutcome:
    _record_failure(store, drop, f"{path.name}: {reason.splitlines()[0]}", started_at)
    moved = _move(path, Path(drop.path) / "failed", reason + "\n", move)
    log.warning("drop %s: %s → %s: %s", drop.name, path.name, moved, reason)
    return DropOutcome(path.name, "failed", moved, reason=reason)


def _record_failure(store: StoreHandle, drop: DropDirSettings, error: str, at: datetime) -> None:
    with store.write() as cur:
        record_source_failure(
            cur, source=drop.name, cluster=drop.cluster, error=error, attempted_at=at
        )


def _move(path: Path, target_dir: Path, reason: str, move: Callable[[Path, Path], None]) -> Path:
    """Move ``path`` into ``target_dir`` (a free name: a later file of the same name gets
    ``.1``, ``.2``...) with its ``.reason`` beside it; return where it went."""
    target = target_dir / path.name
    n = 0
    while target.exists():  # a .reason alone is left by a crash before its move: replaced
        n += 1
        target = target_dir / f"{path.name}.{n}"
    reason_path = target.with_name(target.name + ".reason")
    tmp = target_dir / f".{reason_path.name}.tmp"
    tmp.write_text(reason, encoding="utf-8")
    os.replace(tmp, reason_path)
    move(path, target)
    return target
