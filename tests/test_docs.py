"""Docs kept in step with the code: every setting and every event type is documented.

The event types come from the registry (core/event_types.py), which the event log enforces:
nothing can be appended that is not registered. docs/protocol.md's event tables (those with an
audience column) must list exactly the registered types, each with its audience and whether it
carries a seq; a scan of the code checks that every type written as a literal is registered,
also on paths no test runs.
"""

from __future__ import annotations

import re
from pathlib import Path

from jobcast.core.event_types import EVENTS
from jobcast.web.runtime.docs_gen import render
from jobcast.web.runtime.settings import documented

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "openings", "chat", "stream", "web")
_TYPE = r"\"([a-z_]+(?:\.[a-z_]+)*)\""
# publish(bid, "type", ...), add_to(pipe, bid, "type", ...), event(bid, "type", ...),
# st.emit("type", ...): the type a string literal
_CALL = re.compile(r"\.(?:publish|add_to|event|emit)\(\s*(?:[\w.\[\]\"']+,\s*){0,2}" + _TYPE)
# frames sent to a socket directly: {"type": "name", "data": ...}
_DIRECT = re.compile(r"\{\s*\"type\":\s*" + _TYPE + r",\s*\"data\"")

# How docs/protocol.md says who gets an event.
_DOC_AUDIENCE = {
    "everyone": "public",
    "hosts": "host",
    "the socket": "socket",
    "everyone, or hosts only while the question is hidden": "either",
}


def _code_types() -> set[str]:
    found: set[str] = set()
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            found.update(_CALL.findall(text))
            found.update(_DIRECT.findall(text))
    return found


def _doc_events() -> list[tuple[str, str, str]]:
    """(type, audience, seq) of every row of the protocol's event tables; seq "yes" where
    the table has no seq column (its text says they all carry one)."""
    rows: list[tuple[str, str, str]] = []
    columns: list[str] | None = None
    for line in (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            columns = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if columns is None:
            columns = cells if "type" in cells and "audience" in cells else []
            continue
        if not columns or set(line) <= set("|- "):
            continue
        row = dict(zip(columns, cells, strict=False))
        name = re.fullmatch(r"`([a-z_.]+)`", row["type"])
        assert name, f"docs/protocol.md: not a type: {row['type']!r}"
        rows.append((name.group(1), row["audience"], row.get("seq", "yes")))
    return rows


def test_configuration_doc_matches_settings():
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert doc == render(), "run: python -m jobcast.web.runtime.docs_gen"
    for _name, env, *_ in documented():
        assert f"`{env}`" in doc


def test_every_event_type_in_the_code_is_registered():
    found = _code_types()
    # The scan sees every way an event is written: State.emit, add_to, publish, Lua scripts'
    # EventLog.event, and the frames written to sockets directly.
    assert {"card.pinned", "application.received", "question.votes", "hello", "presence"} <= found
    assert not sorted(found - set(EVENTS)), "register these in core/event_types.py"


def test_the_protocol_documents_exactly_the_registered_types():
    rows = _doc_events()
    names = [name for name, _, _ in rows]
    assert len(names) == len(set(names)), "a type listed twice in docs/protocol.md"
    assert not sorted(set(EVENTS) - set(names)), "registered but not in docs/protocol.md"
    assert not sorted(set(names) - set(EVENTS)), "in docs/protocol.md but not registered"
    for name, audience, seq in rows:
        t = EVENTS[name]
        assert _DOC_AUDIENCE.get(audience) == t.audience, (name, audience, t.audience)
        assert (seq == "yes") == t.logged, (name, seq, t.logged)
