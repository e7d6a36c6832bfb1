"""Chat-specific outcomes that travel as coded errors to the one viewer they concern."""

from __future__ import annotations

from jobcast.core.errors import JobcastError


class Held(JobcastError):
    """The item was stored but waits for a moderator: the author sees "pending review", the
    room sees nothing until it is approved. Not a failure, but the author must be told."""

    code = "held"
