"""Applies chat events to the chat part of a snapshot, as a client does.

The contract (docs/protocol.md): a client that applies every event after a snapshot's seq to
that snapshot holds the same state as a fresh snapshot. Tests check it with this reducer; the
browser client (web/pages/static/chat.js) follows the same rules.
"""

from __future__ import annotations

import copy
from typing import Any


def _sort(questions: list[dict[str, Any]]) -> None:
    questions.sort(key=lambda q: (-q["votes"], int(q["id"])))


def _find(items: list[dict[str, Any]], id_: str) -> int:
    for i, it in enumerate(items):
        if it["id"] == id_:
            return i
    return -1


def apply(state: dict[str, Any], event: dict[str, Any], *, host: bool, recent: int = 200) -> None:
    """Apply one event to `state` (a snapshot's data) in place. Unknown types are ignored."""
    t, d = event["type"], event.get("data", {})
    if t == "chat.messages":
        chat = state.setdefault("chat", [])
        for m in d["messages"]:
            if _find(chat, m["id"]) < 0:
                chat.append(m)
        del chat[:-recent]
    elif t == "chat.hidden":
        chat = state.setdefault("chat", [])
        i = _find(chat, d["id"])
        if i >= 0:
            del chat[i]
    elif t == "chat.settings":
        state.setdefault("chat_settings", {}).update(d)  # only the settings that changed
    elif t == "chat.pinned":
        state["chat_pinned"] = d["message"]
    elif t == "question.updated":
        qs = state.setdefault("questions", [])
        i = _find(qs, d["id"])
        if d["hidden"] and not host:
            if i >= 0:
                del qs[i]
            return
        q = dict(d)
        if host:  # hosts keep who voted from how many addresses (from `question.voters`)
            q["voters"], q["addresses"] = 0, 0
        if i >= 0:
            for k in ("author", "voters", "addresses"):
                if k in qs[i]:
                    q[k] = qs[i][k]
            qs[i] = q
        else:
            qs.append(q)
        _sort(qs)
    elif t == "question.author" and host:
        qs = state.setdefault("questions", [])
        i = _find(qs, d["id"])
        if i >= 0:
            qs[i]["author"] = {"viewer_id": d["viewer_id"], "name": d["name"]}
    elif t == "question.hidden":
        qs = state.setdefault("questions", [])
        i = _find(qs, d["id"])
        if i >= 0:
            if host:
                qs[i]["hidden"] = True
            else:
                del qs[i]
    elif t == "question.votes":
        qs = state.setdefault("questions", [])
        for qid, n in d["votes"].items():
            i = _find(qs, qid)
            if i >= 0:
                qs[i]["votes"] = n
        _sort(qs)
    elif t == "question.voters" and host:
        qs = state.setdefault("questions", [])
        for qid, n in d["voters"].items():
            i = _find(qs, qid)
            if i >= 0:
                qs[i]["voters"], qs[i]["addresses"] = n["voters"], n["addresses"]
    elif t == "question.highlighted":
        state["highlighted_question"] = d["id"]
    elif host and t == "review.added":
        review = state.setdefault("review", [])
        if not any(r["kind"] == d["kind"] and r["id"] == d["id"] for r in review):
            review.append(d)
    elif host and t == "review.removed":
        state["review"] = [
            r
            for r in state.get("review", [])
            if not (r["kind"] == d["kind"] and r["id"] == d["id"])
        ]
    elif host and t.startswith("moderation."):
        mod = state.setdefault("moderation", {"blocked_words": [], "muted": {}, "banned": {}})
        if t == "moderation.muted":
            mod["muted"][d["viewer_id"]] = d["until"]
        elif t == "moderation.unmuted":
            mod["muted"].pop(d["viewer_id"], None)
        elif t == "moderation.banned":
            mod["banned"][d["viewer_id"]] = {"ip_banned": d["ip_banned"]}
        elif t == "moderation.unbanned":
            mod["banned"].pop(d["viewer_id"], None)
        elif t == "moderation.words":
            mod["blocked_words"] = list(d["words"])


def reduce(
    snapshot: dict[str, Any], events: list[dict[str, Any]], *, host: bool, recent: int = 200
) -> dict[str, Any]:
    """A copy of `snapshot` with `events` applied in order."""
    state = copy.deepcopy(snapshot)
    for ev in events:
        apply(state, ev, host=host, recent=recent)
    return state


CHAT_PARTS = ("chat", "chat_settings", "chat_pinned", "questions", "highlighted_question")
HOST_PARTS = (*CHAT_PARTS, "review", "moderation")


def chat_state(snapshot: dict[str, Any], *, host: bool) -> dict[str, Any]:
    """Only the chat parts of a snapshot, for comparing."""
    return {k: snapshot.get(k) for k in (HOST_PARTS if host else CHAT_PARTS)}
