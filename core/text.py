"""Plain-text hygiene for anything a person types.

Text is stored as sent except for control characters, which are stripped; escaping is the job
of whoever renders it. Lengths are counted in characters (code points), not bytes.
"""

from __future__ import annotations

import re
import unicodedata

from jobcast.core.errors import Invalid

# C0/C1 controls except tab and newline, plus bidi overrides that can disguise text.
_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)


def clean(value: str, *, multiline: bool = False) -> str:
    """Strip control characters (and newlines unless `multiline`) and surrounding space."""
    value = unicodedata.normalize("NFC", value)
    value = _CONTROL.sub("", value)
    if not multiline:
        value = value.replace("\n", " ").replace("\t", " ")
    return value.strip()


def text_field(
    data: dict,
    name: str,
    errors: dict[str, str],
    *,
    max_len: int,
    required: bool = True,
    multiline: bool = False,
    default: str = "",
) -> str:
    """Read, clean and length-check one text field, recording a message in `errors`."""
    raw = data.get(name)
    if raw is None or raw == "":
        if required:
            errors[name] = "required"
        return default
    if not isinstance(raw, str):
        errors[name] = "must be a string"
        return default
    value = clean(raw, multiline=multiline)
    if required and not value:
        errors[name] = "required"
    elif len(value) > max_len:
        errors[name] = f"at most {max_len} characters"
    return value


def raise_if(errors: dict[str, str]) -> None:
    if errors:
        raise Invalid("invalid input: " + ", ".join(sorted(errors)), fields=errors)
