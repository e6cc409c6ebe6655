"""Slurm hostlists and job-array specs: expansion, compression and their errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.hostlist import (
    MAX_HOSTS,
    compress_hostlist,
    expand_array_indexes,
    expand_hostlist,
)


@pytest.mark.parametrize(
    ("text", "hosts"),
    [
        ("cn[001-004]", ["cn001", "cn002", "cn003", "cn004"]),
        ("gpu07", ["gpu07"]),
        (
            "d09n04s[01-02],d13n[03,05,07-08,16]",
            ["d09n04s01", "d09n04s02", "d13n03", "d13n05", "d13n07", "d13n08", "d13n16"],
        ),
        ("cn[8-10]", ["cn8", "cn9", "cn10"]),
        ("cn[08-10]", ["cn08", "cn09", "cn10"]),
        ("rack[1-2]n[01-02]", ["rack1n01", "rack1n02", "rack2n01", "rack2n02"]),
        ("cpn-k16-35-01,cpn-k16-37-01", ["cpn-k16-35-01", "cpn-k16-37-01"]),
        ("[1-2]x", ["1x", "2x"]),
        ("a[3],b", ["a3", "b"]),
        (" cn1 ", ["cn1"]),
        ("None assigned", []),
        ("", []),
    ],
)
def test_expand(text: str, hosts: list[str]) -> None:
    assert expand_hostlist(text) == hosts


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("cn[01-04", "unbalanced '\\['"),
        ("cn01-04]", "unbalanced '\\]'"),
        ("cn[[1-2]]", "nested"),
        ("cn[5-3]", "descending range '5-3'"),
        ("cn[a-b]", "bad range 'a-b'"),
        ("cn[1-]", "bad range '1-'"),
        ("cn[]", "empty brackets"),
        ("cn1,,cn2", "empty or blank host name"),
        ("cn1,", "empty or blank host name"),
        ("cn 1", "empty or blank host name"),
        (f"cn[0-{MAX_HOSTS}]", "more than"),
        ("a[0-999]b[0-999]c[0-9]", "more than"),
    ],
)
def test_malformed_hostlists_name_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as info:
        expand_hostlist(text)
    assert repr(text.strip()) in str(info.value)


@pytest.mark.parametrize(
    ("nodes", "text"),
    [
        (["cn001", "cn002", "cn003", "cn004"], "cn[001-004]"),
        (["gpu039", "gpu021"], "gpu[021,039]"),
        (["cn101", "cn102", "cn110", "cn111"], "cn[101-102,110-111]"),
        (["cn9", "cn10"], "cn9,cn10"),
        (["login", "cn1", "cn1"], "login,cn1"),
        (["x"], "x"),
        ([], ""),
    ],
)
def test_compress(nodes: list[str], text: str) -> None:
    assert compress_hostlist(nodes) == text


node_names = st.builds(
    lambda prefix, number, width: f"{prefix}{number:0{width}d}" if number >= 0 else prefix,
    st.sampled_from(["cn", "gpu", "d09n04s", "rack1-n", "login"]),
    st.integers(min_value=-1, max_value=300),
    st.integers(min_value=1, max_value=4),
)


@given(st.lists(node_names, max_size=40))
def test_compress_then_expand_gives_the_distinct_nodes(nodes: list[str]) -> None:
    expanded = expand_hostlist(compress_hostlist(nodes))
    assert sorted(expanded) == sorted(set(nodes))


@pytest.mark.parametrize(
    ("text", "indexes"),
    [
        ("[9-11,20]", [9, 10, 11, 20]),
        ("100", [100]),
        ("[1-3%2]", [1, 2, 3]),
        ("[91,100-102]", [91, 100, 101, 102]),
        ("1-9:4", [1, 5, 9]),
        ("[7]", [7]),
    ],
)
def test_array_indexes(text: str, indexes: list[int]) -> None:
    assert expand_array_indexes(text) == indexes


@pytest.mark.parametrize("text", ["[1-3", "5-1", "[]", "x", "[1,,2]", "1-3:0", "%4"])
def test_malformed_array_specs(text: str) -> None:
    with pytest.raises(ValueError, match="array spec"):
        expand_array_indexes(text)


@given(st.sets(st.integers(min_value=0, max_value=500), min_size=1, max_size=30))
def test_array_spec_of_ranges_round_trips(indexes: set[int]) -> None:
    runs: list[list[int]] = []
    for i in sorted(indexes):
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    spec = ",".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)
    assert expand_array_indexes(f"[{spec}%5]") == sorted(indexes)
