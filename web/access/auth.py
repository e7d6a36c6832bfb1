"""Identities: host accounts and sessions, signed viewer ids, CSRF tokens and Origin checks.

Hosts log in with a password (argon2 hash in Redis) and get a session cookie: a random token,
HMAC-signed, whose session record lives in Redis (so logout and expiry work on every process).
Viewers have no account: a signed random viewer id in a cookie, and a display name they choose.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from jobcast.core import keys
from jobcast.core.errors import Forbidden, Invalid, NotFound, RateLimited, Unauthorized, Unavailable
from jobcast.web.runtime.settings import Settings
from redis.asyncio import Redis

Role = Literal["host", "moderator", "recruiter"]
# A recruiter is bound to one employer of its organization (openings/employers.py): it reaches
# that employer's openings and applicants only (web/access/orgs.py `recruiter_allows`).
ROLES: tuple[Role, ...] = ("host", "moderator", "recruiter")
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
    org: str = "default"  # web/access/orgs.py; read from the account with every session load
    employer: str = ""  # a recruiter's employer id, and that employer's name key
    employer_key: str = ""

    @property
    def is_host(self) -> bool:
        return self.role == "host"

    @property
    def is_recruiter(self) -> bool:
        return self.role == "recruiter"


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
#
# An account's sessions carry the account's `epoch`, a random value the account gets anew
# whenever its rights change (add-host: a new password, role or organization; disable;
# remove). A session whose epoch is not the account's, or whose account is disabled or gone,
# is no session: every process sees that on its next read, with nothing to hunt down. Open host
# sockets are closed through the kick channel (`revoke`).

REVOKE_KIND = "staff"  # `kind` of a revocation on keys.CHAT_KICK (bans have none)


def devices_key(username: str) -> str:
    """Hash: device id -> unix ms of its last successful login to the account."""
    return f"{keys.user(username)}:devices"


def throttle_key(username: str) -> str:
    """Hash `n` (attempts counted since the last success), `next` (unix ms before which an
    attempt from an unknown device is refused)."""
    return f"{keys.PREFIX}:login:throttle:{username}"


def device_failures_key(username: str, device: str) -> str:
    return f"{keys.PREFIX}:login:devfail:{username}:{device}"


def _check_username(username: str) -> str:
    u = username.strip()
    if not u or len(u) > USERNAME_MAX or not all(c.isalnum() or c in "-_.@" for c in u):
        raise Invalid("bad username", fields={"username": "letters, digits, - _ . @ only"})
    return u


def _s(raw: bytes | None) -> str:
    return raw.decode() if raw is not None else ""


def token_id(token: str) -> str:
    """A session's name on the kick channel: its token's hash, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


async def revoke(redis: Redis, why: str, *, username: str = "", token: str = "") -> None:
    """Close the open host sockets of `username` (every session) or of one session, on every
    process, through the channel bans use (web/realtime/kicks.py `apply_kick`)."""
    msg = {"kind": REVOKE_KIND, "why": why, "username": username}
    if token:
        msg["session"] = token_id(token)
    await redis.publish(keys.CHAT_KICK, orjson.dumps(msg))


async def add_user(redis: Redis, username: str, password: str, role: Role = "host") -> None:
    """Create or reset a host account: every session of it ends (its rights may have changed).

    A disabled account stays disabled (`jobcast hosts enable`).
    """
    username = _check_username(username)
    if role not in ROLES:
        raise Invalid("bad role", fields={"role": "host, moderator or recruiter"})
    if len(password) < 8:
        raise Invalid("password too short", fields={"password": "at least 8 characters"})
    hashed = await asyncio.to_thread(_hasher.hash, password)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(
            keys.user(username),
            mapping={"username": username, "role": role, "hash": hashed, "epoch": _epoch()},
        )
        pipe.sadd(keys.USER_INDEX, username)
        pipe.delete(devices_key(username), throttle_key(username))
        await pipe.execute()
    await revoke(redis, "account_changed", username=username)


def _epoch() -> str:
    return secrets.token_hex(8)


async def _existing(redis: Redis, username: str) -> str:
    username = username.strip()
    if not username or not await redis.exists(keys.user(username)):
        raise NotFound(f"no account {username!r}", code="account_not_found")
    return username


async def set_disabled(redis: Redis, username: str, disabled: bool) -> None:
    """Disable (sessions end, logins refused as a wrong password would be) or enable.

    Enabling also lifts the account's login delay, so an operator can let its owner in from a
    new device in the middle of an attack on it.
    """
    username = await _existing(redis, username)
    async with redis.pipeline(transaction=True) as pipe:
        if disabled:
            pipe.hset(keys.user(username), mapping={"disabled": "1", "epoch": _epoch()})
        else:
            pipe.hdel(keys.user(username), "disabled")
            pipe.delete(throttle_key(username))
        await pipe.execute()
    if disabled:
        await revoke(redis, "disabled", username=username)


async def remove_user(redis: Redis, username: str) -> None:
    """Delete the account; its sessions end and its open sockets close."""
    username = await _existing(redis, username)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(keys.user(username), devices_key(username), throttle_key(username))
        pipe.srem(keys.USER_INDEX, username)
        await pipe.execute()
    await revoke(redis, "removed", username=username)


async def list_users(redis: Redis) -> list[dict[str, Any]]:
    """Every account: username, role, organization, disabled, last login (unix ms or None)."""
    names = sorted(_s(n) for n in await redis.smembers(keys.USER_INDEX))
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hmget(keys.user(name), "role", "org", "disabled", "last_login")
        rows = await pipe.execute()
    out = []
    for name, (role, org, disabled, last) in zip(names, rows, strict=True):
        if role is None:
            continue  # removed meanwhile
        out.append(
            {
                "username": name,
                "role": _s(role),
                "org": _s(org) or "default",
                "disabled": disabled is not None,
                "last_login": int(last) if last is not None else None,
            }
        )
    return out


@dataclass(frozen=True)
class Account:
    """A host account whose password was just checked."""

    username: str
    role: Role
    epoch: str


# A login that succeeded: note when, and the device, unless the account was removed meanwhile.
_SUCCEEDED_LUA = """
redis.call('DEL', KEYS[3], KEYS[4])
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'last_login', ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
end
return 0
"""


# -- password checks and the login throttle ----------------------------------------------------

# Per account, attempts from devices that have not logged in to it are let through freely
# `FREE_ATTEMPTS` times; after that each one opens the next after a delay that doubles from
# `DELAY_BASE_MS` up to `login_delay_max`, and an attempt before then is refused without its
# password being looked at. A success resets the count. Devices that logged in to the account
# within `DEVICE_TRUST_DAYS` (a signed cookie naming the device, recorded per account) are
# not delayed, so an attacker can slow down guesses but cannot keep the real host out; a
# known device that fails `DEVICE_FAILURES` times in a row is treated as unknown. All this is
# in Redis, so it holds across processes; the per-address limit still applies before it.
FREE_ATTEMPTS = 5
DELAY_BASE_MS = 1000
DEVICE_TRUST_DAYS = 90
DEVICE_FAILURES = 5
THROTTLE_TTL = 24 * 3600  # an account's count is forgotten a day after its last attempt
DEVICE_COOKIE = "jc_dev"
QUEUE_WAIT = 2.0  # seconds a login waits for a free password check before 503
QUEUE_PER_SLOT = 8  # logins that may wait, per concurrent check

_ADMIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nxt = tonumber(redis.call('HGET', KEYS[1], 'next') or '0')
if now < nxt then
  return nxt - now
end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local free = tonumber(ARGV[1])
if n > free then
  local d = math.min(tonumber(ARGV[3]), tonumber(ARGV[2]) * 2 ^ math.min(n - free - 1, 40))
  redis.call('HSET', KEYS[1], 'next', now + math.floor(d))
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return 0
"""


class LoginGuard:
    """Password checks off the event loop, a bounded number at once, and the per-account delay.

    argon2 takes tens of milliseconds of CPU by design; on the loop, a stream of wrong
    passwords would stall every socket of the process. Checks run in a small thread pool
    (argon2-cffi releases the GIL) behind a semaphore of `login_concurrency`; a login that
    finds them all busy waits up to `QUEUE_WAIT` seconds, and when too many wait already or the
    wait runs out it is answered 503 `login_busy` with Retry-After.

    The counters (`checks`, `peak`, `threads`) say what ran where.
    """

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.concurrency = max(1, settings.login_concurrency)
        self.delay_max_ms = int(max(1.0, settings.login_delay_max) * 1000)
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="jobcast-password")
        self._slots = asyncio.Semaphore(self.concurrency)
        self.waiting = 0
        self.queue_wait = QUEUE_WAIT
        self._admit = redis.register_script(_ADMIT_LUA)
        self._succeeded = redis.register_script(_SUCCEEDED_LUA)
        self.running = 0
        self.peak = 0
        self.checks = 0
        self.threads: set[int] = set()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, fn: Callable[..., object], *args: str) -> object:
        if self.waiting >= self.concurrency * QUEUE_PER_SLOT:
            raise Unavailable("too many logins at once", code="login_busy", retry_after=1)
        self.waiting += 1
        try:
            async with asyncio.timeout(self.queue_wait):
                await self._slots.acquire()
        except TimeoutError:
            raise Unavailable("too many logins at once", code="login_busy", retry_after=1) from None
        finally:
            self.waiting -= 1
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.checks += 1
        try:
            work = asyncio.get_running_loop().run_in_executor(
                self._pool, self._in_thread, fn, *args
            )
        except BaseException:
            self._release()
            raise
        # The slot is freed when the thread is done, not when the request is: a client that
        # hangs up mid-check must not let another check start beside the one still running.
        work.add_done_callback(lambda _: self._release())
        return await asyncio.shield(work)

    def _release(self) -> None:
        self.running -= 1
        self._slots.release()

    def _in_thread(self, fn: Callable[..., object], *args: str) -> object:
        self.threads.add(threading.get_ident())
        return fn(*args)

    async def known_device(self, username: str, device: str | None) -> bool:
        if not device:
            return False
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(devices_key(username), device)
            pipe.get(device_failures_key(username, device))
            last, fails = await pipe.execute()
        if last is None or int(fails or 0) >= DEVICE_FAILURES:
            return False
        return int(last) > (time.time() - DEVICE_TRUST_DAYS * 86400) * 1000

    async def admit(self, username: str) -> None:
        """Count an attempt from an unknown device, or refuse it while the account's delay runs."""
        wait_ms = await self._admit(
            keys=[throttle_key(username)],
            args=[FREE_ATTEMPTS, DELAY_BASE_MS, self.delay_max_ms, THROTTLE_TTL],
        )
        if int(wait_ms) > 0:
            raise RateLimited(
                "too many failed logins to this account: try again later",
                code="login_throttled",
                retry_after=int(wait_ms) / 1000,
            )

    async def verify(self, username: str, password: str) -> Account:
        """The account, if `password` is its password and it is enabled; else `bad_credentials`
        (the same answer, after the same work, for an unknown or disabled account)."""
        h = await self.redis.hgetall(keys.user(username[:USERNAME_MAX]))
        if not h or b"hash" not in h:
            await self.run(_hasher.hash, password)
            raise Unauthorized("wrong username or password", code="bad_credentials")
        try:
            await self.run(_hasher.verify, h[b"hash"].decode(), password)
        except (VerificationError, InvalidHashError):
            raise Unauthorized("wrong username or password", code="bad_credentials") from None
        if b"disabled" in h:
            raise Unauthorized("wrong username or password", code="bad_credentials")
        return Account(
            username=h[b"username"].decode(),
            role=h[b"role"].decode(),  # type: ignore[arg-type]
            epoch=_s(h.get(b"epoch")),
        )

    async def failed(self, username: str, device: str | None) -> None:
        if device:
            key = device_failures_key(username, device)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, THROTTLE_TTL)
                await pipe.execute()

    async def succeeded(self, username: str, device: str) -> None:
        """Reset the account's count and remember this device as one that logs in to it."""
        keys_ = [
            keys.user(username),
            devices_key(username),
            throttle_key(username),
            device_failures_key(username, device),
        ]
        await self._succeeded(keys=keys_, args=[int(time.time() * 1000), device])


# -- sessions --------------------------------------------------------------------------------


class Sessions:
    def __init__(self, redis: Redis, signer: Signer, settings: Settings) -> None:
        self.redis = redis
        self.signer = signer
        self.settings = settings

    async def create(self, account: Account) -> HostUser:
        token = secrets.token_urlsafe(24)
        csrf = secrets.token_urlsafe(24)
        record = {
            "username": account.username,
            "role": account.role,
            "csrf": csrf,
            "epoch": account.epoch,
            "at": int(time.time()),
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.session(token), mapping=record)
            pipe.expire(keys.session(token), self.settings.session_ttl)
            await pipe.execute()
        return HostUser(username=account.username, role=account.role, csrf=csrf, token=token)

    async def load(self, request: web.Request) -> HostUser | None:
        token = self.signer.unsign("session", request.cookies.get(SESSION_COOKIE))
        if token is None:
            return None
        return await self.by_token(token)

    async def by_token(self, token: str) -> HostUser | None:
        """The session, if it is still one: its account exists, is enabled, and has the epoch
        the session was made with. A revoked session's record is deleted."""
        h = await self.redis.hgetall(keys.session(token))
        if not h:
            return None
        username = h[b"username"].decode()
        role, epoch, disabled, org, employer, employer_key = await self.redis.hmget(
            keys.user(username), "role", "epoch", "disabled", "org", "employer", "employer_key"
        )
        if role is None or disabled is not None or _s(epoch) != _s(h.get(b"epoch")):
            await self.redis.delete(keys.session(token))
            return None
        return HostUser(
            username=username,
            role=h[b"role"].decode(),  # type: ignore[arg-type]
            csrf=h[b"csrf"].decode(),
            token=token,
            org=_s(org) or "default",
            employer=_s(employer),
            employer_key=_s(employer_key),
        )

    async def destroy(self, user: HostUser) -> None:
        await self.redis.delete(keys.session(user.token))
        await revoke(self.redis, "logged_out", username=user.username, token=user.token)

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


def device_id(request: web.Request, signer: Signer) -> str | None:
    """The id of this browser for the login throttle (a signed cookie, see `LoginGuard`)."""
    return signer.unsign("device", request.cookies.get(DEVICE_COOKIE))


def set_device_cookie(
    request: web.Request,
    response: web.StreamResponse,
    signer: Signer,
    device: str,
    settings: Settings,
) -> None:
    _set_signed(
        request,
        response,
        signer,
        settings,
        DEVICE_COOKIE,
        "device",
        device,
        samesite="Strict",
        path="/api/login",
    )


def _set_signed(
    request: web.Request,
    response: web.StreamResponse,
    signer: Signer,
    settings: Settings,
    cookie: str,
    purpose: str,
    value: str,
    *,
    samesite: str,
    path: str,
) -> None:
    """A long-lived (400 days, the most browsers keep) signed HttpOnly cookie."""
    response.set_cookie(
        cookie,
        signer.sign(purpose, value),
        max_age=400 * 24 * 3600,
        httponly=True,
        samesite=samesite,
        secure=is_secure(request, settings),
        path=path,
    )


# -- viewers ---------------------------------------------------------------------------------


def viewer_id(request: web.Request, signer: Signer) -> str | None:
    return signer.unsign("viewer", request.cookies.get(VIEWER_COOKIE))


def new_device_id() -> str:
    return "d" + secrets.token_urlsafe(12)


def new_viewer_id() -> str:
    return "v" + secrets.token_urlsafe(12)


def set_viewer_cookie(
    request: web.Request,
    response: web.StreamResponse,
    signer: Signer,
    vid: str,
    settings: Settings,
) -> None:
    _set_signed(
        request, response, signer, settings, VIEWER_COOKIE, "viewer", vid, samesite="Lax", path="/"
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
    if origin in settings.trusted_origins:
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
        hops = settings.trust_proxy_hops  # at least 1 (web/runtime/settings.py)
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
