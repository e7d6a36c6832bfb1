"""The gate every viewer's message and question passes, in one Redis script so that it holds
across processes: the broadcast's end (unless the host keeps the room open), ban, time-out,
blocked words, the per-viewer and per-IP token buckets, slow mode. Only when all pass are
tokens spent and the slow-mode marker set, and the new item id allocated. Hosts and
moderators do not pass through it.
"""

from __future__ import annotations

import time

from jobcast.chat.actor import Actor
from jobcast.chat.config import ChatConfig
from jobcast.chat.errors import chat_closed
from jobcast.chat.filters import squeeze
from jobcast.core import keys
from jobcast.core.errors import Forbidden, Invalid, RateLimited
from redis.asyncio import Redis

# Times come from Redis (TIME) so that every process judges a time-out or a bucket the same.
_GATE_LUA = """
local vid, ip, text = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', KEYS[11], 'status') == 'ended' and redis.call('EXISTS', KEYS[12]) == 0 then
  return {'closed', 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('HEXISTS', KEYS[1], vid) == 1 or redis.call('HEXISTS', KEYS[2], ip) == 1 then
  return {'banned', 0}
end
local until_ = tonumber(redis.call('HGET', KEYS[3], vid) or '0')
if until_ > now then return {'muted', until_} end
if until_ > 0 then redis.call('HDEL', KEYS[3], vid) end
if ARGV[10] == '1' then
  for _, w in ipairs(redis.call('SMEMBERS', KEYS[4])) do
    if w ~= '' and string.find(text, w, 1, true) then return {'blocked_word', w} end
  end
end
local function bucket(key, rate, burst)
  local h = redis.call('HMGET', key, 't', 's')
  local tokens = tonumber(h[1]) or burst
  local stamp = tonumber(h[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate / 1000)
  if tokens < 1 then return tokens, math.ceil((1 - tokens) * 1000 / rate) end
  return tokens, 0
end
local rv, bv = tonumber(ARGV[5]), tonumber(ARGV[6])
local ri, bi = tonumber(ARGV[7]), tonumber(ARGV[8])
local tv, wv = bucket(KEYS[5], rv, bv)
local ti, wi = bucket(KEYS[6], ri, bi)
if wv > 0 or wi > 0 then return {'rate_limited', math.max(wv, wi)} end
local slow = 0
if ARGV[9] == '1' then
  slow = tonumber(redis.call('GET', KEYS[7]) or '0')
  if slow > 0 then
    local left = redis.call('PTTL', KEYS[8])
    if left > 0 then return {'slow_mode', left} end
  end
end
redis.call('HSET', KEYS[5], 't', tostring(tv - 1), 's', now)
redis.call('PEXPIRE', KEYS[5], math.ceil(bv / rv * 1000) + 1000)
redis.call('HSET', KEYS[6], 't', tostring(ti - 1), 's', now)
redis.call('PEXPIRE', KEYS[6], math.ceil(bi / ri * 1000) + 1000)
if slow > 0 then redis.call('SET', KEYS[8], '1', 'PX', slow * 1000) end
redis.call('HSET', KEYS[9], vid, ip)
return {'ok', redis.call('INCR', KEYS[10])}
"""


class Gate:
    def __init__(self, redis: Redis, config: ChatConfig) -> None:
        self.redis = redis
        self.config = config
        self._script = redis.register_script(_GATE_LUA)

    async def admit(self, bid: str, actor: Actor, text: str, *, counter: str, slow: bool) -> str:
        """Check the viewer may post `text` now; return the new item id from `counter`.

        Raises Forbidden `banned`/`muted` (with `until`), Invalid `blocked_word`, RateLimited
        `rate_limited`/`slow_mode` (with `retry_after`).
        """
        if actor.is_staff:
            return str(await self.redis.incr(counter))
        c = self.config
        code, value = await self._script(
            keys=[
                keys.mod_bans(bid),
                keys.mod_ban_ips(bid),
                keys.mod_mutes(bid),
                keys.mod_words(bid),
                keys.chat_bucket(bid, "v:" + actor.viewer_id),
                keys.chat_bucket(bid, "ip:" + actor.ip),
                keys.mod_slow(bid),
                keys.mod_slow_viewer(bid, actor.viewer_id),
                keys.viewer_ips(bid),
                counter,
                keys.broadcast(bid),
                keys.chat_open_after_end(bid),
            ],
            args=[
                actor.viewer_id,
                actor.ip,
                squeeze(text),
                0,
                c.rate,
                c.burst,
                c.ip_rate,
                c.ip_burst,
                1 if slow else 0,
                1,
            ],
        )
        code = code.decode() if isinstance(code, bytes) else code
        if code == "ok":
            return str(value)
        if code == "closed":
            raise chat_closed()
        if code == "banned":
            raise Forbidden("you are banned from this room", code="banned")
        if code == "muted":
            until = int(value)
            raise Forbidden(
                "you are timed out",
                code="muted",
                extra={"until": until},
                retry_after=max(0.0, until / 1000 - time.time()),
            )
        if code == "blocked_word":
            word = value.decode() if isinstance(value, bytes) else str(value)
            raise Invalid(
                "the message contains a blocked word",
                code="blocked_word",
                fields={"text": "contains a blocked word"},
                extra={"word": word},
            )
        wait = int(value) / 1000
        if code == "slow_mode":
            raise RateLimited(
                "slow mode: one message per interval", code="slow_mode", retry_after=wait
            )
        raise RateLimited("you are sending too fast", code="rate_limited", retry_after=wait)
