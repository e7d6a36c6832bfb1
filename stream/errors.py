"""Media errors that have no class in core.errors.

`BadSdp` answers 400 (web.errors' status for a JobcastError it has no entry for): the body is
not an SDP offer we can use at all, which is a client bug rather than a field to correct.
"""

from __future__ import annotations

from jobcast.core.errors import JobcastError


class BadSdp(JobcastError):
    """Malformed SDP, or an offer without ICE credentials, DTLS fingerprint or media."""

    code = "bad_sdp"
