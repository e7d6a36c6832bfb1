"""Short random public ids."""

from __future__ import annotations

import secrets

# No 0/o, 1/l/i: ids are read aloud on air and typed from posters.
ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"


def new_id(length: int = 8) -> str:
    """A random id of `length` characters (31**8 ≈ 8.5e11 for the default)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def is_valid_id(value: str, max_length: int = 32) -> bool:
    return 0 < len(value) <= max_length and all(c in ALPHABET for c in value)
