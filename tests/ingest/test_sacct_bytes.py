"""parse_sacct given a file's bytes parses what it parses from the text Path.read_text gives."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.load import field_order, load_sacct_file
from ingest.sources.sacct import SACCT_FORMAT, SacctBatch, decode_text, parse_sacct
from ingest.sources.sacct_split import Lines, _read_fields, data_lines, header, split
from models.store import open_store, read_quarantine, read_runs
from tests.strategies import examples

HEADER = "|".join(SACCT_FORMAT)
ALLOC = (
    "7|7|c1|p|normal|acct|alice|2025-01-01T00:00:00|2025-01-01T00:00:00|2025-01-01T00:01:00|"
    "2025-01-01T01:01:00|01:00:00|3600|02:00:00|0:0|COMPLETED|1|4|4G|cpu=4,mem=4G,node=1|"
    "n[01-02]||{name}"
)
STEP = (
    "7.batch|7.batch|c1|||acct||2025-01-01T00:01:00|2025-01-01T00:01:00|2025-01-01T00:01:00|"
    "2025-01-01T01:01:00|01:00:00|3600||0:0|COMPLETED|1|4||cpu=4,mem=4G,node=1|n01||batch"
)


def body(name: str = "job") -> str:
    bad = ALLOC.replace("7|7|", "8|8|").replace("COMPLETED", "EXPLODED").format(name="b")
    return "\n".join([HEADER, ALLOC.format(name=name), STEP, "", "   ", bad]) + "\n"


def same(a: SacctBatch, b: SacctBatch) -> None:
    assert a.lines_read == b.lines_read
    for name in ("runs", "steps", "quarantine"):
        left, right = getattr(a, name), getattr(b, name)
        assert left.schema == right.schema
        assert left.equals(right), name


CASES = {
    "plain": body().encode(),
    "multibyte name and a pipe in it": body("データ|解析").encode(),
    "CRLF": body().replace("\n", "\r\n").encode(),
    "lone CR": body().replace("\n", "\r").encode(),
    "byte-order mark": b"\xef\xbb\xbf" + body().encode(),
    "invalid UTF-8": body("bad\xff").encode("latin-1"),
    "unit separator byte": body("a\x1fb").encode(),
    "no final newline": body().rstrip("\n").encode(),
    "blank lines first": b"\n\n  \n" + body().encode(),
    "empty": b"",
}


@pytest.mark.parametrize("data", CASES.values(), ids=CASES.keys())
def test_bytes_parse_as_the_decoded_text(data: bytes) -> None:
    text = decode_text(data)
    fields = list(SACCT_FORMAT)  # a byte-order mark hides the header: the fields say the order

    same(parse_sacct(data, source="f", fields=fields), parse_sacct(text, source="f", fields=fields))
    assert field_order(data, fields) == field_order(text, fields)


def test_bytes_keep_physical_line_numbers_and_refuse_the_bad_line() -> None:
    batch = parse_sacct(b"\n" + body("x").encode(), source="f")

    assert batch.runs["source_line"].to_list() == [3]
    assert batch.steps["source_line"].to_list() == [4]
    assert batch.quarantine.select("line_no", "field").rows() == [(7, "State")]


def test_a_crlf_file_with_bad_bytes_loads_as_its_text_reads(tmp_path: Path) -> None:
    dump = tmp_path / "dump.txt"
    dump.write_bytes(body("bad\xff").encode("latin-1").replace(b"\n", b"\r\n"))
    con = open_store(tmp_path / "store.duckdb")

    loaded = load_sacct_file(con, dump)

    assert loaded.summary.runs_new == 1 and loaded.summary.steps_new == 1
    assert read_runs(con, columns=("run_key",))["run_key"].to_list() == ["c1/7/1735689600"]
    assert read_quarantine(con)["raw"].to_list() == [
        decode_text(dump.read_bytes()).splitlines()[-1]
    ]


# Lines with more or fewer pieces than fields, in any field order: the bytes are split by
# polars' CSV reader, the text by string expressions (ingest/sources/sacct_split.py).
pieces = st.sampled_from(["", "|", "||", "a|b", "x", "日", " ", "[", "cn[1-2]", "=", "."])


@st.composite
def odd_files(draw: st.DrawFn) -> tuple[str, dict[str, str], bool]:
    """Return a sacct text, {job id: job name} of its jobs whose name holds a ``|``, and
    whether the header has a second free-text field (then such lines are ambiguous)."""
    order = draw(st.permutations(SACCT_FORMAT))
    two_free = draw(st.booleans())
    header = list(order) + (["Comment"] if two_free else [])
    base = dict(zip(SACCT_FORMAT, ALLOC.format(name="job").split("|"), strict=True))
    base["Comment"] = "c"
    lines = ["|".join(header)]
    piped: dict[str, str] = {}
    for job in range(draw(st.integers(1, 12))):
        job_id = str(100 + job)
        values = {**base, "JobID": job_id, "JobIDRaw": job_id}
        match draw(st.sampled_from(["keep", "name", "insert", "truncate", "blank"])):
            case "name":
                values["JobName"] = draw(st.sampled_from(["a|b", "|", "x||y|", "|日|"]))
                piped[job_id] = values["JobName"]
                line = "|".join(values[name] for name in header)
            case "insert":
                line = "|".join(values[name] for name in header)
                cut = draw(st.integers(0, len(line)))
                line = line[:cut] + draw(pieces) + line[cut:]
            case "truncate":
                line = "|".join(values[name] for name in header)
                line = line[: draw(st.integers(0, len(line)))]
            case "blank":
                lines.append(draw(st.sampled_from(["", "  "])))
                line = "|".join(values[name] for name in header)
            case _:
                line = "|".join(values[name] for name in header)
        lines.append(line)
    return "\n".join(lines) + draw(st.sampled_from(["", "\n"])), piped, two_free


@pytest.mark.slow
@settings(max_examples=examples(80), deadline=None)
@given(odd_files())
def test_odd_lines_in_any_field_order_parse_from_bytes_as_from_text(
    case: tuple[str, dict[str, str], bool],
) -> None:
    text, piped, two_free = case
    batch = parse_sacct(text.encode(), source="s")
    same(batch, parse_sacct(text, source="s"))
    runs = {row["job_id"]: row for row in batch.runs.to_dicts()}
    for job_id, name in piped.items():
        if two_free:  # which free-text field holds the extra pieces is ambiguous
            assert job_id not in runs
            continue
        assert runs[job_id]["job_name"] == name
        assert (runs[job_id]["account"], runs[job_id]["state"]) == ("acct", "COMPLETED")
        assert runs[job_id]["alloc_cpus"] == 4 and runs[job_id]["nodes"] == ["n01", "n02"]


def test_when_the_field_reader_disagrees_on_the_lines_the_lines_are_split_as_text() -> None:
    data = body("データ|解析").encode()
    read = data_lines(data)
    names, lines = header(read.frame, None, "f")
    as_text = split(Lines(lines), names)
    assert split(read.with_frame(lines), names).equals(as_text)
    miscounted = Lines(lines, read.data, read.physical + 1)  # the reader found other lines
    assert split(miscounted, names).equals(as_text)
    where = {name: i for i, name in enumerate(names)}
    assert _read_fields(data, names, where, lines["line_no"], read.physical + 1) is None
    assert _read_fields(data, names, where, lines["line_no"], read.physical) is not None
    assert as_text.filter(pl.col("r_jobname") == "データ|解析").height == 1
