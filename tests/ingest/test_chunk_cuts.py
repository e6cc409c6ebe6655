"""Where a chunked load cuts a file: the block-by-block reader cuts where a line-by-line reading
of the rule does (at least ``chunk_lines`` lines, then before a line whose JobID has no ``.``),
whatever the size of the blocks it reads."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.chunks import file_chunks
from ingest.sources.sacct import is_header
from tests.strategies import examples

FIELDS = ["JobID", "JobIDRaw", "State"]


def cut_line_by_line(data: bytes, chunk_lines: int, fields: list[str] | None) -> list[bytes]:
    """The rule, read one line at a time."""
    chunks: list[bytes] = []
    pending: list[bytes] = []
    job_field: int | None = None
    names: list[str] | None = None
    for raw in io.BytesIO(data):
        if names is None:
            if raw.strip():
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                names = [
                    n.strip().lower()
                    for n in (line.split("|") if is_header(line) else fields or [])
                ]
                job_field = next(
                    (names.index(n) for n in ("jobid", "jobidraw") if n in names), None
                )
        elif len(pending) >= chunk_lines and job_field is not None:
            parts = raw.split(b"|", job_field + 1)
            job_id = parts[job_field].strip() if len(parts) > job_field else b""
            if job_id and b"." not in job_id:
                chunks.append(b"".join(pending))
                pending = []
        pending.append(raw)
    if pending:
        chunks.append(b"".join(pending))
    return chunks


LINES = [
    b"JobID|JobIDRaw|State", b"1|1|COMPLETED", b"1.batch|1.batch|COMPLETED", b"2_3|2|FAILED",
    b" 4 |4|RUNNING", b"5.0|5.0|COMPLETED", b"", b"   ", b"x", b"|", b"6\r", b"\xff|7",
]  # fmt: skip


@settings(max_examples=examples(300), deadline=None)
@given(
    st.lists(st.sampled_from(LINES), max_size=40),
    st.booleans(),
    st.integers(1, 8),
    st.sampled_from([None, FIELDS]),
    st.integers(1, 64),
)
def test_blocks_cut_where_lines_do(
    lines: list[bytes], final_newline: bool, chunk_lines: int, fields: list[str] | None, block: int
) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline else b"")

    got = list(
        file_chunks(io.BufferedReader(io.BytesIO(data)), chunk_lines, fields, block_bytes=block)
    )

    assert got == cut_line_by_line(data, chunk_lines, fields)
    assert b"".join(got) == data


def test_a_chunk_ends_before_an_allocation_line_only() -> None:
    data = b"JobID|JobIDRaw|State\n1|1|R\n1.batch|1.batch|R\n1.0|1.0|R\n2|2|R\n2.batch|2.batch|R\n"

    got = list(file_chunks(io.BufferedReader(io.BytesIO(data)), 2, None, block_bytes=5))

    assert got == [
        b"JobID|JobIDRaw|State\n1|1|R\n1.batch|1.batch|R\n1.0|1.0|R\n",
        b"2|2|R\n2.batch|2.batch|R\n",
    ]
