"""The record hashes of a batch computed column-wise (polars-hash, sorted in polars) equal the
documented algorithm written with hashlib."""

from __future__ import annotations

import hashlib

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from models.audit.records import (
    EMPTY_SHA256,
    records_sha256,
    records_sha256_frame,
    with_record_sha256,
)
from tests.strategies import examples, utf8_text

lines = utf8_text(max_size=300)


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.tuples(st.text(max_size=8), lines), max_size=40))
def test_column_wise_hashes_equal_hashlib(pairs: list[tuple[str, str]]) -> None:
    frame = pl.DataFrame(
        pairs, schema={"run_key": pl.String, "record_line": pl.String}, orient="row"
    )
    hashed = with_record_sha256(frame)
    expected = [hashlib.sha256(line.encode()).hexdigest() for _, line in pairs]
    assert hashed["record_sha256"].to_list() == expected
    assert hashed.columns == ["run_key", "record_sha256"]
    by_key = list(zip(hashed["run_key"], hashed["record_sha256"], strict=True))
    assert records_sha256_frame(hashed) == records_sha256(by_key)


def test_a_batch_without_run_versions_has_the_hash_of_nothing() -> None:
    empty = pl.DataFrame(schema={"run_key": pl.String, "record_sha256": pl.String})
    assert records_sha256_frame(empty) == EMPTY_SHA256
