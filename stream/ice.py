"""ICE settings: where the server's candidates live, and which STUN/TURN servers clients get.

The server itself uses no STUN or TURN server (see negotiation.rtc_configuration). Behind a
NAT with a fixed public address, `announce` rewrites the candidates (NAT 1:1); clients behind
hard NATs get TURN servers through `Link` headers (RFC 9725 section 4.6).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import time
from dataclasses import dataclass

from jobcast.stream.aiortc_internals import IcePolicy


@dataclass(frozen=True)
class IceServer:
    url: str
    username: str | None = None
    credential: str | None = None

    def link(self) -> str:
        """This server as a `Link` header value (RFC 9725 section 4.6)."""
        value = f'<{self.url}>; rel="ice-server"'
        if self.username is not None and self.credential is not None:
            value += (
                f'; username="{_quote(self.username)}"'
                f'; credential="{_quote(self.credential)}"'
                '; credential-type="password"'
            )
        return value


def _quote(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_policy(addresses: str, ports: str, announce: str) -> IcePolicy:
    """Build the host-candidate policy from the three settings strings (ValueError if bad).

    addresses: "127.0.0.1,10.0.0.5"; ports: "40000-40100"; announce: "203.0.113.7" (for every
    address) or "10.0.0.5=203.0.113.7,..." (per local address).
    """
    addrs = tuple(str(ipaddress.ip_address(a)) for a in _split(addresses))
    port_range: tuple[int, int] | None = None
    if ports.strip():
        lo_s, sep, hi_s = ports.strip().partition("-")
        lo = int(lo_s)
        hi = int(hi_s) if sep else lo
        if not (1024 <= lo <= hi <= 65535):
            raise ValueError(f"bad UDP port range {ports!r} (use MIN-MAX within 1024-65535)")
        port_range = (lo, hi)
    mapping: dict[str, str] = {}
    for item in _split(announce):
        local, sep, public = item.partition("=")
        if sep:
            mapping[str(ipaddress.ip_address(local.strip()))] = str(
                ipaddress.ip_address(public.strip())
            )
        else:
            mapping["*"] = str(ipaddress.ip_address(local.strip()))
    return IcePolicy(addresses=addrs, ports=port_range, announce=mapping)


@dataclass(frozen=True)
class IceServers:
    """The STUN/TURN servers handed to WHIP and WHEP clients."""

    stun: tuple[str, ...] = ()
    turn: tuple[str, ...] = ()
    turn_username: str = ""
    turn_password: str = ""
    turn_secret: str = ""
    turn_ttl: int = 24 * 3600

    @classmethod
    def from_settings(
        cls,
        stun_urls: str,
        turn_urls: str,
        username: str = "",
        password: str = "",
        secret: str = "",
    ) -> IceServers:
        stun = tuple(_split(stun_urls))
        turn = tuple(_split(turn_urls))
        for url in stun:
            if not url.startswith(("stun:", "stuns:")):
                raise ValueError(f"not a STUN URL: {url!r}")
        for url in turn:
            if not url.startswith(("turn:", "turns:")):
                raise ValueError(f"not a TURN URL: {url!r}")
        return cls(stun, turn, username, password, secret)

    def servers(self, who: str, now: float | None = None) -> list[IceServer]:
        """STUN servers, then TURN servers with credentials for `who`.

        With a shared secret the credentials are the TURN REST ones coturn checks with
        `use-auth-secret`: username "expiry:who", password base64(HMAC-SHA1(secret, username)).
        """
        out = [IceServer(u) for u in self.stun]
        if not self.turn:
            return out
        if self.turn_secret:
            expiry = int((now if now is not None else time.time()) + self.turn_ttl)
            username = f"{expiry}:{who}"
            digest = hmac.new(self.turn_secret.encode(), username.encode(), hashlib.sha1).digest()
            credential = base64.b64encode(digest).decode()
        else:
            username, credential = self.turn_username, self.turn_password
        out.extend(IceServer(u, username, credential) for u in self.turn)
        return out

    def links(self, who: str) -> list[str]:
        return [s.link() for s in self.servers(who)]
