"""Chat-specific outcomes that travel as coded errors to the one viewer they concern."""

from __future__ import annotations

from jobcast.core.errors import Conflict, JobcastError


class Held(JobcastError):
    """The item was stored but waits for a moderator: the author sees "pending review", the
    room sees nothing until it is approved. Not a failure, but the author must be told."""

    code = "held"


def chat_closed() -> Conflict:
    """A viewer posts, asks or votes after the broadcast ended, with the room not kept open."""
    return Conflict("the broadcast has ended: chat and questions are closed", code="chat_closed")
