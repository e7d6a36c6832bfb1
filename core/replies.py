"""What Redis replies hold, as Python values.

Jobcast's clients read bytes (no `decode_responses`), but redis-py types a reply as
`bytes | str` (either setting) and a hash as `dict[bytes | str, bytes | str]`. These read a
reply whichever it is, so the code says once what it expects instead of `.decode()` at every
call, and the type checker can follow it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias, cast

from redis.typing import EncodableT, FieldT

# What a hash reply is typed as, and what HSET's mapping accepts (its key type is invariant, so
# a plain dict[str, str] must be declared as this to be passed).
RawHash: TypeAlias = Mapping[bytes | str, bytes | str]
Fields: TypeAlias = Mapping[FieldT, EncodableT]


def text(value: Any) -> str:
    """A reply value as text (bytes are UTF-8)."""
    if isinstance(value, bytes):
        return value.decode()
    return value if isinstance(value, str) else str(value)


def texts(values: Iterable[Any]) -> list[str]:
    return [text(v) for v in values]


def text_hash(h: Mapping[Any, Any]) -> dict[str, str]:
    """A hash reply with its fields and values as text."""
    return {text(k): text(v) for k, v in h.items()}


def fields(d: Mapping[str, Any]) -> Fields:
    """`d` as HSET's mapping. redis-py types that mapping with an invariant key type, so a
    `dict[str, str]` is refused though every str key is a valid field; this says it once."""
    return cast(Fields, d)
