"""Cutting a large sacct file into chunks of whole jobs, block by block (bytes in, bytes out).

A chunk ends only before a line whose JobID has no ``.`` (an allocation line, or a header), so
the steps of an allocation always stay in its chunk (``ingest.load`` parses and lands each).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from ingest.sources.sacct import is_header

# Bytes read from a file at a time when cutting it into chunks.
_BLOCK_BYTES = 1 << 23


def file_chunks(
    handle: BinaryIO,
    chunk_lines: int,
    fields: list[str] | None,
    *,
    block_bytes: int = _BLOCK_BYTES,
) -> Iterator[bytes]:
    """Yield chunks of at least ``chunk_lines`` lines (the last may be shorter), each cut before
    a line whose JobID has no ``.``: steps stay in their allocation's chunk.

    The file is read in blocks; only the lines where a chunk may end are looked at one by one.
    """
    pending: list[bytes] = []  # the current chunk, in pieces
    count = 0  # its lines
    job_field: int | None = None  # position of JobID, known once the first line is seen
    for raw in handle:  # up to the first line that is not blank: a header, or data
        pending.append(raw)
        count += 1
        if raw.strip():
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            header = is_header(line)
            names = [n.strip().lower() for n in (line.split("|") if header else fields or [])]
            job_field = _job_field(names)
            break
    rest = b""
    while True:
        block = handle.read(block_bytes)
        data = rest + block
        if block:  # whole lines only; the partial last one waits for the next block
            cut = data.rfind(b"\n") + 1
            data, rest = data[:cut], data[cut:]
        pos, end = 0, len(data)
        while pos < end:
            if job_field is None or count < chunk_lines:
                take = _lines_in(data, pos)
                if job_field is None or count + take <= chunk_lines:
                    pending.append(data[pos:])
                    count += take
                    break
                stop = pos
                for _ in range(chunk_lines - count):
                    stop = data.index(b"\n", stop) + 1
                pending.append(data[pos:stop])
                count, pos = chunk_lines, stop
                continue
            line_end = data.find(b"\n", pos)
            line_end = end if line_end < 0 else line_end + 1
            raw = data[pos:line_end]
            if _starts_job(raw, job_field):
                yield b"".join(pending)
                pending, count = [], 0
                continue  # the line starts the next chunk
            pending.append(raw)
            count += 1
            pos = line_end
        if not block:
            break
    if pending:
        yield b"".join(pending)


def _lines_in(data: bytes, pos: int) -> int:
    """Return how many lines ``data[pos:]`` holds (the last one may lack its newline)."""
    if pos >= len(data):
        return 0
    return data.count(b"\n", pos) + (0 if data.endswith(b"\n") else 1)


def _job_field(names: list[str]) -> int | None:
    for name in ("jobid", "jobidraw"):
        if name in names:
            return names.index(name)
    return None


def _starts_job(raw: bytes, job_field: int) -> bool:
    """Return whether ``raw`` may start a chunk: its JobID is there and has no ``.``."""
    parts = raw.split(b"|", job_field + 1)
    if len(parts) <= job_field:
        return False
    job_id = parts[job_field].strip()
    return bool(job_id) and b"." not in job_id
