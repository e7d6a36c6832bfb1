"""Hypothesis strategies for hostile input: any JSON value, awkward text and numbers."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Values that broke or nearly broke parsers before: digits int() refuses, huge and negative
# numbers, control and bidi characters, empty and blank strings, very long strings.
AWKWARD_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "\u202e",
        "²",
        "٣٤",
        "１２",
        "9" * 5000,
        "-1",
        "0",
        "1e309",
        "NaN",
        "true",
        "null",
        "[]",
        "{}",
        "'; DROP TABLE x; --",
        "<script>alert(1)</script>",
        "\ud7ff\ue000\U0010ffff",
        "a\r\nb",
        "字" * 301,
    ]
)
TEXT = st.one_of(st.text(max_size=40), AWKWARD_TEXT)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from([2**64, -(2**63) - 1, 10**30, 0, -1, 1]),
    st.floats(allow_nan=False, allow_infinity=False),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value, nested a few levels."""
    return st.recursive(
        SCALARS,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(TEXT, children, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def deeply_nested(depth: int) -> Any:
    """A list nested `depth` deep (past what a JSON encoder may recurse into)."""
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value
