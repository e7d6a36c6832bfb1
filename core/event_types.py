"""Every type of frame the server sends on a socket, with who gets it and what it says.

The event log (core/events.py) appends only types registered here, and only to the audience
each allows, so that an event nobody documented, or a host-only one sent to everyone, fails
where it is written instead of reaching viewers. docs/protocol.md lists the same types with
the same audiences; tests/test_docs.py holds the two to each other.

Audiences:
    public  everyone watching the broadcast (the public stream and channel)
    host    hosts and moderators only (the host stream and channel)
    either  everyone, or hosts only, as the service decides per event (a question while it
            is hidden goes to hosts only)
    socket  one socket: the reply to its joining or to its own action, never logged

`logged` types go through the event log and carry a `seq`; the others are written to sockets
directly (`presence` is counted per process and has no history).

`model` is the slot for the pydantic model of an event's `data`; it stays None until that
model is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from pydantic import BaseModel

TypeAudience = Literal["public", "host", "either", "socket"]


class UnregisteredEvent(LookupError):
    """An event type that is not in the registry (a mistake in the code, not in a request)."""


@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    audience: TypeAudience
    description: str
    logged: bool = True
    model: type[BaseModel] | None = None


def _types(*items: EventType) -> Mapping[str, EventType]:
    out: dict[str, EventType] = {}
    for t in items:
        if t.name in out:
            raise ValueError(f"event type {t.name} registered twice")
        out[t.name] = t
    return MappingProxyType(out)


def _socket(name: str, description: str) -> EventType:
    return EventType(name, "socket", description, logged=False)


# The product's event types, in the order docs/protocol.md lists them.
EVENTS: Mapping[str, EventType] = _types(
    # -- joining and the socket (web/realtime) --
    _socket("hello", "who the socket is: viewer_id, name, role; its first frame"),
    _socket("snapshot", "the broadcast's whole state at its own seq, when no replay covers"),
    _socket("synced", "caught up after joining: mode replay or snapshot"),
    EventType(
        "presence", "public", "live viewer count across every process, when it changed", False
    ),
    _socket("ack", "the reply to one of the socket's actions"),
    _socket("pong", "the reply to a ping"),
    _socket("error", "a refused action, or why the server is about to close the socket"),
    _socket("application.mine", "one of this viewer's own applications changed (to them only)"),
    _socket("interview.mine", "their own interview invitation or booking changed (to them only)"),
    # -- broadcasts (core/broadcasts.py) --
    EventType("broadcast.updated", "public", "the broadcast's fields after any change"),
    # -- media (stream/service.py) --
    EventType("stream.live", "public", "a publisher's first frame arrived: the stream is on"),
    EventType("stream.ended", "public", "the stream stopped, with why; WHEP sessions close"),
    EventType("stream.hls", "host", "HLS writing stopped (disk full) or works again"),
    # -- chat, questions and moderation (chat/) --
    EventType("chat.messages", "public", "new approved messages, one batch per process"),
    EventType("chat.hidden", "public", "a message was hidden: remove it"),
    EventType("chat.settings", "public", "the room's settings that changed"),
    EventType("chat.pinned", "public", "the message pinned above the chat, or none"),
    EventType("question.updated", "either", "a question approved, answered or restored"),
    EventType("question.author", "host", "who asked a question, anonymous ones too"),
    EventType("question.hidden", "public", "a question was hidden"),
    EventType("question.votes", "public", "current vote counts of the questions that changed"),
    EventType("question.voters", "host", "voters and their addresses per changed question"),
    EventType("question.highlighted", "public", "the question to show on every screen, or none"),
    EventType("review.added", "host", "an item was held for review"),
    EventType("review.removed", "host", "a held item was approved, rejected or expired"),
    EventType("moderation.muted", "host", "a viewer was timed out"),
    EventType("moderation.unmuted", "host", "a viewer's time-out was lifted"),
    EventType("moderation.banned", "host", "a viewer (and maybe its address) was banned"),
    EventType("moderation.unbanned", "host", "a viewer's ban was lifted"),
    EventType("moderation.words", "host", "the whole blocked-words list after a change"),
    # -- polls (chat/polls.py) --
    EventType("poll.opened", "public", "a host started a poll: the whole poll, totals zero"),
    EventType("poll.results", "public", "a poll's current totals (at most two per interval)"),
    EventType("poll.closed", "public", "voting stopped: the poll with its final totals"),
    EventType("poll.removed", "public", "the poll was taken off every screen"),
    # -- openings and applications (openings/) --
    EventType("card.pinned", "public", "the card being presented now (also after an edit)"),
    EventType("card.unpinned", "public", "the presented card was taken down"),
    EventType("opening.updated", "public", "a published card was created or changed"),
    EventType("opening.removed", "public", "a card viewers should drop"),
    EventType("openings.added", "public", "the published cards of one CSV import"),
    EventType("lineup.updated", "public", "the published openings in presentation order"),
    EventType("opening.saved", "host", "any opening (every status) created or changed"),
    EventType("opening.deleted", "host", "an opening was deleted"),
    EventType("openings.imported", "host", "every opening one CSV import created"),
    EventType("lineup.saved", "host", "every opening in presentation order"),
    EventType("application.received", "host", "an application was stored: ids and counts"),
    EventType("application.status", "host", "an application's status changed"),
    EventType("application.deleted", "host", "an application was deleted: ids and counts"),
    EventType("report.received", "host", "a viewer reported a card: its counts and reasons"),
    # -- the event report (web/api/report.py) --
    EventType("audience.sample", "host", "viewers now, distinct viewers so far: once a minute"),
    # -- interviews (openings/interviews.py) --
    EventType("interview.slot_saved", "host", "an interview slot was added or changed"),
    EventType("interview.slot_deleted", "host", "an interview slot was deleted"),
    EventType("interview.invited", "host", "an application was invited to choose a slot"),
    EventType("interview.booked", "host", "an applicant booked or moved to a slot: ids, counts"),
    EventType("interview.cancelled", "host", "an interview booking was cancelled: ids, counts"),
)

_extra: dict[str, EventType] = {}
_families: dict[str, EventType] = {}  # "test." -> the type of every "test.*"


def register(name: str, audience: TypeAudience, description: str) -> EventType:
    """Add a logged type that only tests or benchmarks publish (never documented); a name
    ending in `.*` registers every type under that prefix ("test.*")."""
    t = EventType(name, audience, description)
    table, key = (_families, name[:-1]) if name.endswith(".*") else (_extra, name)
    if name in EVENTS or any(n.startswith(key) for n in EVENTS) or table.get(key, t) != t:
        raise ValueError(f"event type {name} is already registered")
    table[key] = t
    return t


def lookup(name: str) -> EventType:
    """The registered type `name`, or UnregisteredEvent."""
    t = EVENTS.get(name) or _extra.get(name)
    if t is None:
        t = next((f for p, f in _families.items() if name.startswith(p)), None)
    if t is None:
        raise UnregisteredEvent(
            f"event type {name!r} is not registered: add it to core/event_types.py "
            "and docs/protocol.md"
        )
    return t
