"""The sacct parser's node-list table: polars expands the common forms, and what it gives is
what ``models.hostlist.expand_hostlist`` gives, node for node and error for error."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.sources.sacct_values import node_table
from models.hostlist import expand_hostlist
from tests.strategies import examples


def reference(text: str) -> tuple[list[str] | None, str | None]:
    try:
        return expand_hostlist(text), None
    except ValueError as exc:
        return None, str(exc)


def table_of(values: list[str]) -> dict[str, tuple[list[str] | None, str | None]]:
    table = node_table(pl.Series(values, dtype=pl.String))
    assert table.height == len(set(values))
    return {
        row["r_nodelist"]: (row["nodes"], row["_node_error"]) for row in table.iter_rows(named=True)
    }


def test_common_and_odd_forms_expand_as_the_hostlist_module_does() -> None:
    values = [
        "cn0001", "cn[0001-0004,0009]", "gv[08-10]", "b[7]", "cn[3-1]", "cn[]", "cn[1-2]x",
        "r[1-2]n[1-2]", "cn[1-2],gv[3]", "None assigned", "None", "(null)", "", " cn1",
        "cn[1-1000001]", "cn[99999999999999999999]", "cn[1-3", "cn]1", "a b",
    ]  # fmt: skip
    got = table_of(values)

    assert got["cn[0001-0004,0009]"] == (["cn0001", "cn0002", "cn0003", "cn0004", "cn0009"], None)
    assert got["gv[08-10]"] == (["gv08", "gv09", "gv10"], None)
    assert got["None assigned"] == ([], None)
    assert got["cn[3-1]"][1] is not None and "descending" in got["cn[3-1]"][1]
    assert {value: reference(value) for value in values} == got


bracket = st.builds(
    lambda lo, span, width, hi_width: (
        f"{lo:0{width}d}" + ("" if span is None else f"-{lo + span:0{hi_width}d}")
    ),
    st.integers(0, 200),
    st.none() | st.integers(-3, 40),
    st.integers(1, 4),
    st.integers(1, 4),
)
host_lists = st.one_of(
    st.builds(
        lambda name, parts: f"{name}[{','.join(parts)}]",
        st.sampled_from(["cn", "g.v", "b-1", "n_"]),
        st.lists(bracket, min_size=1, max_size=4),
    ),
    st.text(alphabet=st.sampled_from(list("cn09[],- .é٣")), max_size=12),
)


@pytest.mark.slow
@settings(max_examples=examples(300), deadline=None)
@given(st.lists(host_lists, min_size=1, max_size=30))
def test_any_node_list_expands_as_the_hostlist_module_does(values: list[str]) -> None:
    assert table_of(values) == {value: reference(value) for value in values}
