"""What every test folder shares: the Hypothesis profiles, the ``--update-golden`` flag and a
store on a DuckDB file in ``tmp_path``. Builders are in ``tests/kit.py``, shared strategies in
``tests/strategies.py``.

Profiles, chosen by ``HYPOTHESIS_PROFILE`` (or pytest's ``--hypothesis-profile``):

- ``ci`` (the default): each test's own settings, as written; no deadline for the others (a
  test asserts outcomes, not timings: timings are for ``bench/``).
- ``dev``: a tenth of the examples (``tests.strategies.examples``), for a quick local run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from models.store.handle import StoreHandle
from tests.kit import store_handle

settings.register_profile("ci", deadline=None)
settings.register_profile("dev", max_examples=10, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite the golden files from the code instead of comparing (then read the diff)",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """Whether ``--update-golden`` was given: a golden test writes its file instead of
    comparing with it."""
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreHandle]:
    """A handle on a migrated, empty store in ``tmp_path``, closed after the test."""
    with store_handle(tmp_path / "store.duckdb") as handle:
        yield handle
