"""Hypothesis strategies more than one test file draws from, and ``examples``, which scales a
test's own example count by the profile in force (``HYPOTHESIS_PROFILE``, ``tests/conftest.py``).
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st

# Hypothesis's default max_examples, which the ci profile keeps: examples(n) is then n.
_DEFAULT_EXAMPLES = 100


def examples(n: int) -> int:
    """Return ``n`` scaled by the active profile's max_examples against the default 100: ``n``
    under ``ci``, a tenth of it (at least one) under ``dev``."""
    return max(1, n * settings.default.max_examples // _DEFAULT_EXAMPLES)


def utf8_text(*, max_size: int) -> st.SearchStrategy[str]:
    """Strings of any characters UTF-8 can encode (every code point but surrogates)."""
    return st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=max_size
    )


def one_line_text(*, min_size: int = 0, max_size: int | None = None) -> st.SearchStrategy[str]:
    """Strings with no character ``str.splitlines()`` breaks on (Cc, Zl, Zp) nor a surrogate:
    one record of a line-based format."""
    chars = st.characters(exclude_categories=("Cc", "Zl", "Zp", "Cs"))
    return st.text(chars, min_size=min_size, max_size=max_size)


# every float, NaN and the infinities included
any_floats = st.floats(allow_nan=True, allow_infinity=True)
