"""Frames keep their contract whatever order a source writes struct fields in: ``conform``
matches fields by name at any depth and names the column and field that does not fit."""

from __future__ import annotations

import itertools
from pathlib import Path

import polars as pl
import pytest
from audit_data import build_store, land
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from models.errors import SchemaMismatch
from models.frames import RUNS, conform
from models.store.audit_records import read_record_lines
from tests.strategies import examples

TRES_LISTS = [
    [{"name": "cpu", "count": 4.0}, {"name": "mem", "count": 8000.0}],
    [],
    None,
    [{"name": "gres/gpu:a100", "count": 2.0}, {"name": None, "count": None}],
]


def _runs(order: tuple[str, ...], extra: bool = False) -> pl.DataFrame:
    """Return four runs whose TRES structs are written with their fields in ``order``."""
    rows = []
    for i, tres in enumerate(TRES_LISTS):
        items = None
        if tres is not None:
            items = [
                {field: item[field] for field in order} | ({"unit": "x"} if extra else {})
                for item in tres
            ]
        rows.append({"run_key": f"hpc/{i}/1", "alloc_cpus": 4, "tres": items})
    schema = {"run_key": pl.String, "alloc_cpus": pl.Int64, "tres": _tres_dtype(order, extra)}
    return pl.DataFrame(rows, schema=schema)


def _tres_dtype(order: tuple[str, ...], extra: bool) -> pl.DataType:
    types = {"name": pl.String(), "count": pl.Float64(), "unit": pl.String()}
    fields = {field: types[field] for field in order} | ({"unit": pl.String()} if extra else {})
    return pl.List(pl.Struct(fields))


@pytest.mark.parametrize("extra", [False, True], ids=["exact", "with-an-extra-field"])
@pytest.mark.parametrize("order", list(itertools.permutations(["name", "count"])))
def test_runs_with_tres_fields_in_any_order_conform_to_the_same_frame(
    order: tuple[str, ...], extra: bool
) -> None:
    built = _runs(order, extra)
    struct = built.schema["tres"].inner  # type: ignore[attr-defined]
    assert [f.name for f in struct.fields][:2] == list(order)  # built the order it claims
    conformed = conform(built, RUNS)
    assert_frame_equal(conformed, conform(_runs(("name", "count")), RUNS))
    assert conformed.schema == pl.Schema(RUNS)
    assert conformed["tres"].to_list()[0] == [
        {"name": "cpu", "count": 4.0},
        {"name": "mem", "count": 8000.0},
    ]
    assert conformed["tres"].to_list()[1:3] == [[], None]


@settings(max_examples=examples(40), deadline=None)
@given(
    st.lists(
        st.none()
        | st.lists(
            st.tuples(st.none() | st.text(max_size=5), st.none() | st.integers(-(2**40), 2**40)),
            max_size=4,
        ),
        min_size=1,
        max_size=6,
    ),
    st.permutations(["name", "count"]),
)
def test_any_tres_values_conform_equally_in_either_field_order(
    values: list[list[tuple[str | None, int | None]] | None], order: list[str]
) -> None:
    def frame(fields: list[str]) -> pl.DataFrame:
        rows = [
            None
            if items is None
            else [dict(zip(["name", "count"], item, strict=True)) for item in items]
            for items in values
        ]
        ordered = [
            None if items is None else [{f: item[f] for f in fields} for item in items]
            for items in rows
        ]
        types = {"name": pl.String(), "count": pl.Int64()}
        dtype = pl.List(pl.Struct({f: types[f] for f in fields}))
        return pl.DataFrame({"tres": ordered}, schema={"tres": dtype})

    assert_frame_equal(
        conform(frame(order), RUNS).select("tres"),
        conform(frame(["name", "count"]), RUNS).select("tres"),
    )


@pytest.mark.slow
def test_runs_landed_with_fields_in_another_order_store_the_same_records(tmp_path: Path) -> None:
    tres = [{"name": "cpu", "count": 4.0}, {"name": "gres/gpu:a100", "count": 1.0}]
    reversed_tres = [{"count": item["count"], "name": item["name"]} for item in tres]
    lines = []
    for name, items in [("natural", tres), ("reversed", reversed_tres)]:
        con = build_store(tmp_path / f"{name}.duckdb")
        try:
            land(con, [{"run_key": "hpc/900/1", "tres": items}])
            lines.append(read_record_lines(con, ["hpc/900/1"])["record_line"].to_list())
        finally:
            con.close()
    assert lines[0] == lines[1]
    assert '"tres":[{"name":"cpu","count":4.0}' in lines[0][0]


def test_a_missing_struct_field_names_the_column_and_field() -> None:
    frame = pl.DataFrame({"run_key": ["hpc/1/1"], "tres": [[{"label": "cpu", "count": 1.0}]]})
    with pytest.raises(SchemaMismatch, match=r"tres\[\]\.name: missing .*'label', 'count'"):
        conform(frame, RUNS)


def test_a_value_of_the_wrong_type_names_the_field_and_the_value() -> None:
    frame = pl.DataFrame(
        {
            "run_key": ["a", "b"],
            "tres": [[{"name": "cpu", "count": "4"}], [{"name": "mem", "count": "lots"}]],
        }
    )
    with pytest.raises(SchemaMismatch, match=r"tres\[\]\.count: 'lots' cannot be read as Float64"):
        conform(frame, RUNS)
    with pytest.raises(SchemaMismatch, match=r"alloc_cpus: 'four' cannot be read as Int32"):
        conform(pl.DataFrame({"alloc_cpus": ["4", "four"]}), RUNS)


def test_a_struct_where_a_list_belongs_is_named() -> None:
    frame = pl.DataFrame({"tres": [{"name": "cpu", "count": 1.0}]})
    with pytest.raises(SchemaMismatch, match=r"^tres: is Struct.*not a list of Struct"):
        conform(frame, RUNS)
