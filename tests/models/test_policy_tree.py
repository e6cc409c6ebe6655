"""A policy's associations must form one tree per cluster, refused at load time otherwise
(issue 16: a cycle used to load, then every recompute failed)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.errors import PolicyError
from models.fairshare.tree import build_tree
from models.policy import load_policy_text
from tests.strategies import examples

HEAD = '[[clusters]]\nname = "hpc"\n\n[[clusters]]\nname = "lab"\n'


def _account(name: str, parent: str | None, *, cluster: str = "hpc") -> str:
    line = f'parent = "{parent}"\nshares = 1\n' if parent is not None else ""
    return f'\n[[associations]]\ncluster = "{cluster}"\naccount = "{name}"\n{line}'


def _user(user: str, account: str, *, cluster: str = "hpc") -> str:
    return f'\n[[associations]]\ncluster = "{cluster}"\naccount = "{account}"\nuser = "{user}"\n'


def _policy(*tables: str) -> str:
    return HEAD + _account("root", None) + "".join(tables)


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ((_account("a", "a"),), 'cluster hpc: account "a" is its own parent'),
        (
            (_account("a", "c"), _account("b", "a"), _account("c", "b")),
            "cluster hpc: accounts a -> c -> b -> a form a cycle",
        ),
        (
            (_account("x", "root"), _account("a", "b"), _account("b", "a")),
            "cluster hpc: accounts a -> b -> a form a cycle",
        ),
        (
            (_account("x", "nope"),),
            'cluster hpc: account "x" has parent "nope", which is not an account of the cluster',
        ),
        # a parent of the same name in another cluster is not this cluster's account
        (
            (
                _account("root", None, cluster="lab"),
                _account("x", "root", cluster="lab"),
                _account("y", "x"),
            ),
            'cluster hpc: account "y" has parent "x", which is not an account of the cluster',
        ),
        (
            (_account("a", "root"), _user("alice", "gone")),
            'cluster hpc: user "alice" is in account "gone", '
            "which is not an account of the cluster",
        ),
        (
            (_account("a", "root"), _account("a", "root")),
            'cluster hpc: account "a" is defined twice',
        ),
        (
            (_account("a", "root"), _user("alice", "a"), _user("alice", "a")),
            'cluster hpc: user "alice" in account "a" is defined twice',
        ),
        ((_account("a", None),), 'cluster hpc: account "a" has no parent; only root has none'),
    ],
    ids=[
        "self-parent",
        "cycle",
        "cycle-beside-a-good-branch",
        "orphan",
        "parent-in-another-cluster",
        "user-in-unknown-account",
        "account-twice",
        "user-twice",
        "no-parent",
    ],
)
def test_a_policy_that_is_not_a_tree_is_refused_naming_the_accounts(tables, message):
    with pytest.raises(PolicyError) as refused:
        load_policy_text(_policy(*tables), origin="bad.toml")
    assert str(refused.value) == f"bad.toml: {message}"


def test_the_same_account_names_in_two_clusters_are_two_trees():
    text = _policy(
        _account("a", "root"),
        _account("root", None, cluster="lab"),
        _account("a", "root", cluster="lab"),
        _account("b", "a", cluster="lab"),
        _user("alice", "b", cluster="lab"),
    )
    assert len(load_policy_text(text).associations) == 6


@st.composite
def valid_trees(draw: st.DrawFn) -> list[tuple[str, str]]:
    """Return (account, parent) pairs of a random tree under root, in a random order."""
    size = draw(st.integers(min_value=1, max_value=12))
    edges = [
        (f"a{i}", draw(st.sampled_from(["root", *(f"a{j}" for j in range(i))])))
        for i in range(size)
    ]
    return draw(st.permutations(edges))


def _tree_policy(edges: list[tuple[str, str]]) -> str:
    return _policy(*(_account(a, p) for a, p in edges), *(_user("u", a) for a, _ in edges))


@settings(max_examples=examples(100))
@given(valid_trees())
def test_random_trees_load_and_build(edges):
    policy = load_policy_text(_tree_policy(edges))
    tree = build_tree(policy.association_frame(), "hpc")
    assert len(tree.nodes) == 1 + 2 * len(edges)


@settings(max_examples=examples(100))
@given(valid_trees(), st.data())
def test_a_parent_edge_redirected_into_its_own_subtree_is_refused(edges, data):
    parents = dict(edges)
    child = data.draw(st.sampled_from(sorted(parents)))

    def descends(account: str) -> bool:  # account is child or below it
        while account != "root":
            if account == child:
                return True
            account = parents[account]
        return False

    new_parent = data.draw(st.sampled_from(sorted(a for a in parents if descends(a))))
    redirected = [(a, new_parent if a == child else p) for a, p in edges]
    with pytest.raises(PolicyError) as refused:
        load_policy_text(_tree_policy(redirected))
    detail = str(refused.value)
    if new_parent == child:
        assert detail == f'<policy>: cluster hpc: account "{child}" is its own parent'
    else:
        assert "form a cycle" in detail and f" {child} " in f" {detail} "
        assert f" {new_parent} " in f" {detail} "
