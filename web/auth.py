"""Identities: host accounts and sessions, signed viewer ids, CSRF tokens and Origin checks.

Hosts log in with a password (argon2 hash in Redis) and get a session cookie: a random token,
HMAC-signed, whose session record lives in Redis (so logout and expiry work on every process).
Viewers have no account: a signed random viewer id in a cookie, and a display name they choose.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.asyncio import Redis

from core import keys
from core.errors import Forbidden, Invalid, Unauthorized
from web.settings import Settings

Role = Literal["host", "moderator"]
ROLES: tuple[Role, ...] = ("host", "moderator")
SESSION_COOKIE = "jc_session"
VIEWER_COOKIE = "jc_vid"
CSRF_HEADER = "X-CSRF-Token"
USERNAME_MAX = 64
_hasher = PasswordHasher()


@dataclass(frozen=True)
class HostUser:
    username: str
    role: Role
    csrf: str
    token: str

    @property
    def is_host(self) -> bool:
        return self.role == "host"


class Signer:
    """HMAC-SHA256 over a value, truncated to 128 bits, url-safe hex."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def mac(self, purpose: str, value: str) -> str:
        return hmac.new(self._secret, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()[
            :32
        ]

    def sign(self, purpose: str, value: str) -> str:
        return f"{value}.{self.mac(purpose, value)}"

    def unsign(self, purpose: str, signed: str | None) -> str | None:
        if not signed or "." not in signed or len(signed) > 200:
            return None
        value, _, mac = signed.rpartition(".")
        return value if hmac.compare_digest(mac, self.mac(purpose, value)) else None


# -- host accounts ---------------------------------------------------------------------------


def _check_username(username: str) -> str:
    u = username.strip()
    if not u or len(u) > USERNAME_MAX or not all(c.isalnum() or c in "-_.@" for c in u):
        raise Invalid("bad username", fields={"username": "letters, digits, - _ . @ only"})
    return u


async def add_user(redis: Redis, username: str, password: str, role: Role = "host") -> None:
    """Create or reset a host account."""
    username = _check_username(username)
    if role not in ROLES:
        raise Invalid("bad role", fields={"role": "host or moderator"})
    if len(password) < 8:
        raise Invalid("password too short", fields={"password": "at least 8 characters"})
    await redis.hset(
        keys.user(username),
        mapping={"username": username, "role": role, "hash": _hasher.hash(password)},
    )
    await redis.sadd(keys.USER_INDEX, username)


async def verify_user(redis: Redis, username: str, password: str) -> Role:
    h = await redis.hgetall(keys.user(username[:USERNAME_MAX]))
    if not h:
        # Spend the same time as a real check so usernames can't be probed by timing.
        _hasher.hash(password)
        raise Unauthorized("wrong username or password", code="bad_credentials")
    try:
        _hasher.verify(h[b"hash"].decode(), password)
    except (VerificationError, InvalidHashError):
        raise Unauthorized("wrong username or password", code="bad_credentials") from None
    return h[b"role"].decode()  # type: ignore[return-value]


# -- sessions --------------------------------------------------------------------------------


class Sessions:
    def __init__(self, redis: Redis, signer: Signer, settings: Settings) -> None:
        self.redis = redis
        self.signer = signer
        self.settings = settings

    async def create(self, username: str, role: Role) -> HostUser:
        token = secrets.token_urlsafe(24)
        csrf = secrets.token_urlsafe(24)
        await self.redis.hset(
            keys.session(token),
            mapping={"username": username, "role": role, "csrf": csrf, "at": int(time.time())},
        )
        await self.redis.expire(keys.session(token), self.settings.session_ttl)
        return HostUser(username=username, role=role, csrf=csrf, token=token)

    async def load(self, request: web.Request) -> HostUser | None:
        token = self.signer.unsign("session", request.cookies.get(SESSION_COOKIE))
        if token is None:
            return None
        h = await self.redis.hgetall(keys.session(token))
        if not h:
            return None
        return HostUser(
            username=h[b"username"].decode(),
            role=h[b"role"].decode(),  # type: ignore[arg-type]
            csrf=h[b"csrf"].decode(),
            token=token,
        )

    async def destroy(self, user: HostUser) -> None:
        await self.redis.delete(keys.session(user.token))

    def set_cookie(
        self, request: web.Request, response: web.StreamResponse, user: HostUser
    ) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            self.signer.sign("session", user.token),
            max_age=self.settings.session_ttl,
            httponly=True,
            samesite="Lax",
            secure=is_secure(request, self.settings),
            path="/",
        )

    @staticmethod
    def clear_cookie(response: web.StreamResponse) -> None:
        response.del_cookie(SESSION_COOKIE, path="/")


# -- viewers ---------------------------------------------------------------------------------


def viewer_id(request: web.Request, signer: Signer) -> str | None:
    return signer.unsign("viewer", request.cookies.get(VIEWER_COOKIE))


def new_viewer_id() -> str:
    return "v" + secrets.token_urlsafe(12)


def set_viewer_cookie(
    request: web.Request,
    response: web.StreamResponse,
    signer: Signer,
    vid: str,
    settings: Settings,
) -> None:
    response.set_cookie(
        VIEWER_COOKIE,
        signer.sign("viewer", vid),
        max_age=400 * 24 * 3600,
        httponly=True,
        samesite="Lax",
        secure=is_secure(request, settings),
        path="/",
    )


def viewer_csrf(signer: Signer, vid: str) -> str:
    return signer.mac("csrf", vid)


# -- request checks --------------------------------------------------------------------------


def is_secure(request: web.Request, settings: Settings) -> bool:
    if settings.cookie_secure == "always":
        return True
    if settings.cookie_secure == "never":
        return False
    if request.secure:
        return True
    return settings.trust_proxy and request.headers.get("X-Forwarded-Proto", "") == "https"


def own_origin(request: web.Request, settings: Settings) -> str:
    scheme = "https" if is_secure(request, settings) else request.scheme
    return f"{scheme}://{request.host}"


def origin_allowed(request: web.Request, settings: Settings) -> bool:
    """True when there is no Origin (not a browser) or it is this site or an allowed one."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    allowed = {o.strip().rstrip("/") for o in settings.allowed_origins.split(",") if o.strip()}
    if settings.public_url:
        from urllib.parse import urlsplit

        u = urlsplit(settings.public_url)
        allowed.add(f"{u.scheme}://{u.netloc}")
    if origin in allowed:
        return True
    # Compare host:port ignoring scheme differences behind a TLS-terminating proxy.
    host = request.host
    return origin in (f"http://{host}", f"https://{host}")


def client_ip(request: web.Request, settings: Settings) -> str:
    """The client's address: the connection's peer, or with `trust_proxy` the address the
    trusted proxies saw.

    Each proxy appends the address it received the request from to `X-Forwarded-For`, so only
    the last `trust_proxy_hops` entries were written by proxies we trust; everything to their
    left came from the client, who can write anything there. The entry `trust_proxy_hops` from
    the right is the address the outermost trusted proxy was connected from. A header with
    fewer entries did not pass through every proxy: the peer address is used.
    """
    if settings.trust_proxy:
        hops = max(1, settings.trust_proxy_hops)
        lines = request.headers.getall("X-Forwarded-For", ())
        entries = [e.strip() for line in lines for e in line.split(",")]
        if len(entries) >= hops and entries[-hops]:
            return entries[-hops][:64]
    return request.remote or "unknown"


def require_role(user: HostUser | None, *, host_only: bool) -> HostUser:
    if user is None:
        raise Unauthorized("host login required", code="login_required")
    if host_only and not user.is_host:
        raise Forbidden("only hosts may do this", code="host_only")
    return user


def check_csrf(token: str | None, expected: str) -> None:
    if not token or not hmac.compare_digest(token, expected):
        raise Forbidden("missing or wrong CSRF token", code="csrf")
