"""Docs kept in step with the code: every setting and every event type is documented."""

from __future__ import annotations

import re
from pathlib import Path

from jobcast.web.runtime.docs_gen import render
from jobcast.web.runtime.settings import documented

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "openings", "chat", "stream", "web")
# publish(bid, "type", ...) / add_to(pipe, bid, "type", ...), the type a string literal
_CALL = re.compile(
    r"\.(?:publish|add_to)\(\s*(?:[\w.\[\]\"']+,\s*){1,2}\"([a-z_]+(?:\.[a-z_]+)+)\""
)
# events sent to a socket directly: {"type": "name", "data": ...}
_DIRECT = re.compile(r"\{\s*\"type\":\s*\"([a-z_]+(?:\.[a-z_]+)*)\",\s*\"data\"")


def _event_types() -> set[str]:
    found: set[str] = set()
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            found.update(_CALL.findall(text))
            found.update(_DIRECT.findall(text))
    return found


def test_configuration_doc_matches_settings():
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert doc == render(), "run: python -m jobcast.web.runtime.docs_gen"
    for _name, env, *_ in documented():
        assert f"`{env}`" in doc


def test_every_event_type_is_documented():
    doc = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    types = _event_types()
    assert {"broadcast.updated", "hello", "synced", "presence"} <= types
    missing = sorted(t for t in types if f"`{t}`" not in doc)
    assert not missing, f"undocumented event types in docs/protocol.md: {missing}"
