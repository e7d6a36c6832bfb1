"""The notifier: delivers the outbox of notices (core/notices.py, keys.NOTICES) as a signed
webhook to the employment center's gateway, which sends the SMS or WeChat message.

Every process runs one delivery task. It reads the outbox with a consumer group
(XREADGROUP), so each notice goes to one process; a notice a process read and never answered
(it crashed) is taken over by another after `notifier_claim_after` seconds (XAUTOCLAIM). A
failed attempt (a status other than 2xx, a timeout, a connection error) is acknowledged in
the outbox and scheduled again in a sorted set of due times, with exponential backoff and
jitter; after `notifier_max_attempts` the notice goes to the dead letters, a capped list that
hosts read and retry (web/api/notifier.py). Every state change of a notice is one MULTI.

Never sent twice by us: a delivered id is remembered for DONE_TTL, and a lock per notice keeps
two processes from sending one notice at the same time (an outbox entry taken over while its
first reader still waits for the answer). An answer can still be lost on the way back, and
the notice is then sent again: the receiver deduplicates by `X-Jobcast-Id`.

Logs carry the notice id, kind, attempt and status only: never the phone, the name or the
text. The contract is in docs/protocol.md, "Notifier".
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import orjson
from jobcast.core import keys, tasks
from jobcast.core.errors import NotFound
from jobcast.web.runtime.notice_text import render
from jobcast.web.runtime.settings import Settings
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError, WatchError

log = logging.getLogger("jobcast.notifier")

GROUP = "notifier"
DONE_TTL = 7 * 24 * 3600  # seconds a delivered id is remembered
DEAD_MAX = 1000  # dead letters kept (the oldest fall off)
BATCH = 16  # notices read (and sent concurrently) at once
POLL_MS = 1000  # longest a read blocks: how soon a host's retry or a due retry is seen
RESPONSE_READ = 4096  # bytes of a receiver's answer read (and discarded)
USER_AGENT = "Jobcast-Notifier/1"
STALE_CONSUMER_MS = 24 * 3600 * 1000  # an idle consumer with nothing pending is forgotten

# KEYS: 1 retry zset. ARGV: 1 now ms, 2 lease end ms, 3 count. The due ids, each moved to the
# end of its lease so that no other process takes it meanwhile.
_TAKE_DUE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
"""

Result = Literal["delivered", "done", "busy", "failed"]


@dataclass(frozen=True)
class Config:
    url: str
    secret: bytes
    timeout: float = 10.0
    max_attempts: int = 8
    backoff_base: float = 2.0
    backoff_max: float = 600.0
    claim_after: float = 60.0
    max_age: float = 172800.0

    @classmethod
    def from_settings(cls, s: Settings) -> Config:
        return cls(
            url=s.notifier_url,
            secret=s.notifier_secret.encode(),
            timeout=s.notifier_timeout,
            max_attempts=s.notifier_max_attempts,
            backoff_base=s.notifier_backoff_base,
            backoff_max=s.notifier_backoff_max,
            claim_after=s.notifier_claim_after,
            max_age=s.notifier_max_age,
        )

    @property
    def lease(self) -> float:
        """Seconds one attempt holds its notice: far past the request's own timeout."""
        return 2 * self.timeout + 5


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """`X-Jobcast-Signature`: sha256= and the hex HMAC-SHA256 of "timestamp.body"."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def public(entry: dict[str, Any]) -> dict[str, Any]:
    """A dead letter as hosts see it: what and why, without the phone, the name or the text."""
    n = entry.get("notice") or {}
    to = n.get("to") or {}
    return {
        "id": n.get("id"),
        "kind": n.get("kind"),
        "broadcast_id": n.get("broadcast_id"),
        "application_id": to.get("application_id"),
        "lang": n.get("lang"),
        "created_at": n.get("created_at"),
        "attempts": entry.get("attempts", 0),
        "error": entry.get("error", ""),
        "failed_at": entry.get("failed_at"),
    }


class Notifier:
    """Delivers notices from the outbox; also lists and retries the dead letters.

    `clock` (seconds, like time.time) decides when retries fall due and stamps the
    signature; `rand` (0..1) draws the jitter. Tests pass their own and call `run_once`."""

    def __init__(
        self,
        redis: Redis,
        config: Config,
        *,
        consumer: str,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.redis = redis
        self.config = config
        self.consumer = consumer
        self.clock = clock
        self.rand = rand
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._cursor = "0-0"
        self._take_due = redis.register_script(_TAKE_DUE)

    @property
    def enabled(self) -> bool:
        return bool(self.config.url)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- running -------------------------------------------------------------------------------

    async def open(self) -> None:
        """The HTTP client and the consumer group (created at the outbox's start, so notices
        queued while the notifier was off are delivered)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
                headers={"User-Agent": USER_AGENT},
            )
        await self._ensure_group()
        await self.forget_idle_consumers()

    async def forget_idle_consumers(self, idle_ms: int = STALE_CONSUMER_MS) -> int:
        """Remove from the group the consumers (processes gone, each start names a new one)
        holding nothing and idle for `idle_ms`; returns how many."""
        gone = 0
        for c in await self.redis.xinfo_consumers(keys.NOTICES, GROUP):
            name = c["name"].decode() if isinstance(c["name"], bytes) else str(c["name"])
            if name != self.consumer and c["pending"] == 0 and c["idle"] >= idle_ms:
                # DELCONSUMER drops its pending entries too: it has none (checked just now,
                # and an idle consumer reads nothing new)
                await self.redis.xgroup_delconsumer(keys.NOTICES, GROUP, name)
                gone += 1
        return gone

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(keys.NOTICES, GROUP, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="notifier")

    async def close(self) -> None:
        task, self._task = self._task, None
        await tasks.stop(task)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        await self.open()
        pause = 0.5
        while True:
            try:
                await self.run_once(await self._block_ms())
                pause = 0.5
            except asyncio.CancelledError:
                raise
            except ResponseError as e:
                if "NOGROUP" in str(e):  # the outbox was deleted: start it again
                    await self._ensure_group()
                    continue
                log.warning("notifier: redis refused: %s", type(e).__name__)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 10.0)
            except RedisError as e:
                log.warning("notifier: redis unavailable: %s", type(e).__name__)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 10.0)
            except Exception as e:  # a bug must not end delivery; no message: it may hold data
                tb = e.__traceback__
                while tb is not None and tb.tb_next is not None:
                    tb = tb.tb_next
                where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
                log.error("notifier: unexpected %s at %s", type(e).__name__, where)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 10.0)

    async def _block_ms(self) -> int:
        """How long the next read may block: until the next retry falls due, at most POLL_MS."""
        first = await self.redis.zrange(keys.NOTIFIER_RETRY, 0, 0, withscores=True)
        if not first:
            return POLL_MS
        return max(0, min(POLL_MS, int(first[0][1]) - self.now_ms()))

    async def run_once(self, block_ms: int = 0) -> int:
        """One round: the retries due, the outbox entries a crashed process left, then new
        entries (waiting up to `block_ms` for one). Returns the attempts made."""
        if self._session is None:
            await self.open()
        made = await self._retries()
        made += await self._reclaimed()
        read = await self.redis.xreadgroup(
            GROUP,
            self.consumer,
            {keys.NOTICES: ">"},
            count=BATCH,
            block=block_ms if block_ms > 0 and not made else None,
        )
        for _stream, entries in read or ():
            made += await self._entries(entries)
        return made

    async def _reclaimed(self) -> int:
        claimed = await self.redis.xautoclaim(
            keys.NOTICES,
            GROUP,
            self.consumer,
            int(self.config.claim_after * 1000),
            start_id=self._cursor,
            count=BATCH,
        )
        nxt, entries = claimed[0], claimed[1]
        self._cursor = nxt.decode() if isinstance(nxt, bytes) else str(nxt)
        for deleted in claimed[2] if len(claimed) > 2 else ():
            await self.redis.xack(keys.NOTICES, GROUP, deleted)
        return await self._entries([e for e in entries if e and e[1] is not None])

    async def _entries(self, entries: list[Any]) -> int:
        jobs = []
        for eid, fields in entries:
            try:
                notice = orjson.loads(fields[b"n"])
                if not isinstance(notice, dict) or not isinstance(notice.get("id"), str):
                    raise ValueError("no id")
            except (KeyError, TypeError, ValueError, orjson.JSONDecodeError):
                log.warning("notifier: outbox entry %s is not a notice; dropped", eid.decode())
                await self.redis.xack(keys.NOTICES, GROUP, eid)
                continue
            jobs.append(self._one(notice, 0, eid=eid))
        await asyncio.gather(*jobs)
        return len(jobs)

    async def _retries(self) -> int:
        now = self.now_ms()
        lease_end = now + int(self.config.lease * 1000)
        ids = await self._take_due(keys=[keys.NOTIFIER_RETRY], args=[now, lease_end, BATCH])
        if not ids:
            return 0
        raws = await self.redis.hmget(keys.NOTIFIER_RETRY_DATA, ids)
        jobs = []
        for nid, raw in zip(ids, raws, strict=True):
            if raw is None:  # settled meanwhile
                await self.redis.zrem(keys.NOTIFIER_RETRY, nid)
                continue
            entry = orjson.loads(raw)
            jobs.append(self._one(entry["notice"], int(entry.get("attempts", 0))))
        await asyncio.gather(*jobs)
        return len(jobs)

    # -- one notice ----------------------------------------------------------------------------

    async def _one(
        self, notice: dict[str, Any], attempts: int, *, eid: bytes | None = None
    ) -> None:
        """Attempt `notice` (after `attempts` failed ones) and record the outcome."""
        nid, kind = notice["id"], notice.get("kind", "")
        attempt = attempts + 1
        created = notice.get("created_at")
        if (
            self.config.max_age
            and isinstance(created, int)
            and self.now_ms() - created > self.config.max_age * 1000
        ):
            log.warning("notice %s %s attempt %d: expired, dead-lettered", nid, kind, attempt)
            await self._settle(notice, attempts, eid, dead="expired")
            return
        result, error = await self._attempt(notice, attempt)
        if result == "busy":  # another process is sending it; that one records the outcome
            return
        if result in ("delivered", "done"):
            await self._settle(notice, attempt, eid, delivered=result == "delivered")
            return
        if attempt >= self.config.max_attempts:
            log.warning("notice %s %s attempt %d: %s, dead-lettered", nid, kind, attempt, error)
            await self._settle(notice, attempt, eid, dead=error)
            return
        delay = self.backoff(attempt)
        log.info("notice %s %s attempt %d: %s, again in %.1f s", nid, kind, attempt, error, delay)
        await self._settle(
            notice, attempt, eid, retry_at=self.now_ms() + int(delay * 1000), error=error
        )

    def backoff(self, attempt: int) -> float:
        """Seconds before attempt `attempt + 1`: base * 2^(attempt-1), capped, the upper half
        of it drawn at random (so notices failing together spread out)."""
        c = self.config
        cap = min(c.backoff_max, c.backoff_base * 2 ** min(attempt - 1, 60))
        return cap / 2 + self.rand() * cap / 2

    async def _attempt(self, notice: dict[str, Any], attempt: int) -> tuple[Result, str]:
        nid, kind = notice["id"], notice.get("kind", "")
        # The lock first, then the delivered mark: whoever delivered it set the mark and freed
        # the lock in one MULTI, so holding the lock and finding no mark means nobody did.
        lease = int(self.config.lease * 1000)
        if not await self.redis.set(
            keys.notifier_lock(nid), secrets.token_hex(8), nx=True, px=lease
        ):
            return "busy", ""
        if await self.redis.exists(keys.notifier_done(nid)):
            log.info(
                "notice %s %s attempt %d: delivered before, not sent again", nid, kind, attempt
            )
            return "done", ""
        body = orjson.dumps({**notice, "text": render(notice)})
        ts = str(int(self.clock()))
        headers = {
            "Content-Type": "application/json",
            "X-Jobcast-Id": nid,
            "X-Jobcast-Kind": str(kind),
            "X-Jobcast-Attempt": str(attempt),
            "X-Jobcast-Timestamp": ts,
            "X-Jobcast-Signature": signature(self.config.secret, ts, body),
        }
        assert self._session is not None
        try:
            async with self._session.post(
                self.config.url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                await resp.content.read(RESPONSE_READ)
                status = resp.status
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            return "failed", type(e).__name__
        if 200 <= status < 300:
            log.info("notice %s %s attempt %d: delivered (%d)", nid, kind, attempt, status)
            return "delivered", ""
        return "failed", f"http {status}"

    async def _settle(
        self,
        notice: dict[str, Any],
        attempts: int,
        eid: bytes | None,
        *,
        delivered: bool = False,
        dead: str = "",
        retry_at: int | None = None,
        error: str = "",
    ) -> None:
        """Record the outcome in one MULTI: out of the outbox (or the retries), then
        remembered as delivered, scheduled again, or dead-lettered; the lock released."""
        nid = notice["id"]
        pipe = self.redis.pipeline(transaction=True)
        if eid is not None:
            pipe.xack(keys.NOTICES, GROUP, eid)
        if retry_at is not None:
            entry = {"notice": notice, "attempts": attempts, "error": error}
            pipe.hset(keys.NOTIFIER_RETRY_DATA, nid, orjson.dumps(entry))
            pipe.zadd(keys.NOTIFIER_RETRY, {nid: retry_at})
        else:
            pipe.zrem(keys.NOTIFIER_RETRY, nid)
            pipe.hdel(keys.NOTIFIER_RETRY_DATA, nid)
        if delivered:
            pipe.set(keys.notifier_done(nid), b"1", ex=DONE_TTL)
        if dead:
            entry = {
                "notice": notice,
                "attempts": attempts,
                "error": dead,
                "failed_at": self.now_ms(),
            }
            pipe.lpush(keys.NOTIFIER_DEAD, orjson.dumps(entry))
            pipe.ltrim(keys.NOTIFIER_DEAD, 0, DEAD_MAX - 1)
        pipe.delete(keys.notifier_lock(nid))
        await pipe.execute()

    # -- dead letters --------------------------------------------------------------------------

    async def dead_letters(self, limit: int = DEAD_MAX) -> list[dict[str, Any]]:
        """The dead letters, newest first (whole, phone included: for the caller to filter)."""
        raws = await self.redis.lrange(keys.NOTIFIER_DEAD, 0, limit - 1)
        return [orjson.loads(r) for r in raws]

    async def counts(self) -> dict[str, int]:
        """Notices waiting to be read, waiting for a retry, and dead."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.xlen(keys.NOTICES)
        pipe.zcard(keys.NOTIFIER_RETRY)
        pipe.llen(keys.NOTIFIER_DEAD)
        outbox, retrying, dead = await pipe.execute()
        return {"outbox": outbox, "retrying": retrying, "dead": dead}

    async def retry_dead(
        self, nid: str, allowed: Callable[[dict[str, Any]], Awaitable[bool]]
    ) -> dict[str, Any]:
        """Move dead letter `nid` back to the retries, due now, with its attempts counted
        afresh (NotFound if there is none, or `allowed(notice)` says no). Two hosts retrying
        at once: one moves it, the other gets NotFound."""
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(keys.NOTIFIER_DEAD)
                    raws = await pipe.lrange(keys.NOTIFIER_DEAD, 0, -1)
                    raw = next((r for r in raws if orjson.loads(r)["notice"]["id"] == nid), None)
                    if raw is None:
                        raise NotFound("no such dead letter", code="notice_not_found")
                    entry = orjson.loads(raw)
                    if not await allowed(entry["notice"]):
                        raise NotFound("no such dead letter", code="notice_not_found")
                    again = {"notice": entry["notice"], "attempts": 0, "error": entry["error"]}
                    pipe.multi()
                    pipe.lrem(keys.NOTIFIER_DEAD, 1, raw)
                    pipe.hset(keys.NOTIFIER_RETRY_DATA, nid, orjson.dumps(again))
                    pipe.zadd(keys.NOTIFIER_RETRY, {nid: self.now_ms()})
                    await pipe.execute()
                    log.info(
                        "notice %s %s: dead letter queued again", nid, entry["notice"].get("kind")
                    )
                    return public(entry)
                except WatchError:
                    continue
