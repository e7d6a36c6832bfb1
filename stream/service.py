"""`MediaService`: WHIP ingest, WHEP playback, stream keys and recordings for one process.

State that other processes must see lives in Redis: the stream key's hash, and the live
ingest (`keys.ingest`) with the process that holds it, refreshed by a heartbeat so that a
process that dies frees its broadcast within `INGEST_TTL`. The media itself never touches
Redis: frames go from the publisher's receivers to the viewers' senders in memory (or over a
local socket to egress processes, see stream/egress.py).

A WHIP session has two ids. The public one (`session` in snapshots, `stream.live`, the stream
state) tells viewers that a new publisher took over. The resource id in the 201's `Location`
is the publisher's credential for `DELETE`: a second secret, handed only to the client that
POSTed with the stream key, and kept only as a hash (in memory and in Redis, where it names the
process that holds the session for a DELETE landing on another worker).

A WHEP viewer holds a slot of `max_viewers` from its offer on; until it connects, it also
counts against its client address (`pending_per_address`), so that one client sending offers
it never completes cannot fill the cap.

Lifecycle of a broadcast's stream:
    POST /whip  -> claim the ingest (409 if another healthy publisher holds it) -> 201
    first frame -> BroadcastService.start (broadcast `live`) + `stream.live`
    DELETE, publisher lost past the grace period, or broadcast ended
                -> viewers closed, ingest released, `stream.ended`
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from jobcast.core import keys, tasks
from jobcast.core.broadcasts import BroadcastService
from jobcast.core.errors import Conflict, NotFound, RateLimited, Unauthorized
from jobcast.core.events import HOST, EventLog
from jobcast.core.ids import is_valid_id
from jobcast.core.net import address_group
from jobcast.core.tx import transact
from jobcast.stream import health
from jobcast.stream.aiortc_internals import IcePolicy, Packetized, check_versions
from jobcast.stream.control import ControlChannel, Subscribe
from jobcast.stream.egress import EgressPool, egress_count
from jobcast.stream.hls import HlsConfig, HlsWriter, hls_capable
from jobcast.stream.ice import IceServers
from jobcast.stream.ingest import IngestPeer
from jobcast.stream.negotiation import parse_offer, viewer_codecs
from jobcast.stream.recorder import Recorder, list_recordings, recording_file, recording_path
from jobcast.stream.relay import KeyframeRequests, Packetizer
from jobcast.stream.viewers import ViewerHub, check_capacity
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

log = logging.getLogger("jobcast.media")

INGEST_TTL = 10.0  # seconds the ingest claim outlives its last heartbeat
HEARTBEAT = 2.0
TAKEOVER_AFTER = 3.0  # a publisher without media this long may be replaced by a new one

# Claim the ingest: free, expired, or held by this process's stale session ARGV[1].
_CLAIM_LUA = """
local cur = redis.call('HGET', KEYS[1], 'sid')
if cur and cur ~= ARGV[1] then return cur end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'sid', ARGV[2], 'process', ARGV[3], 'state', 'starting',
           'video', ARGV[4], 'audio', ARGV[5], 'created_at', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return false
"""
# Refresh the claim if it is still ours: 1, else 0.
_REFRESH_LUA = """
if redis.call('HGET', KEYS[1], 'sid') == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class MediaConfig:
    ice: IcePolicy = field(default_factory=IcePolicy)
    ice_servers: IceServers = field(default_factory=IceServers)
    video_codecs: tuple[str, ...] = ("H264", "VP8")
    max_viewers: int = 200
    publisher_grace: float = 10.0
    keyframe_interval: float = 1.0
    queue_frames: int = 30
    connect_timeout: float = 10.0
    pending_per_address: int = 4
    record: bool = False
    recordings_dir: Path = Path("./data/recordings")
    process: str = "local"
    egress_processes: int = 0  # -1: one per core when there is more than one core, else none
    send_path: str = "direct"  # how viewers' RTP is sent (viewers.SEND_PATHS)
    hls: HlsConfig | None = None  # None: no HLS
    hls_base_url: str = ""  # where viewers fetch /hls/ from ("": this server)


@dataclass(frozen=True)
class SessionAnswer:
    """What a WHIP/WHEP POST returns: the answer, the session's URL and ICE servers."""

    sid: str
    sdp: str
    location: str
    links: list[str]


class Egress(Protocol):
    """Where viewers live: this process (ViewerHub) or egress processes (egress.EgressPool)."""

    async def open(
        self, bid: str, sid: str, offer_text: str, codecs: dict[str, RTCRtpCodecParameters]
    ) -> str: ...

    async def close(self, sid: str, reason: str = ...) -> bool: ...

    def push(self, bid: str, kind: str, frame: Packetized) -> None: ...

    async def end(self, bid: str, reason: str = ...) -> int: ...

    async def close_all(self) -> None: ...

    def __len__(self) -> int: ...

    def count(self, bid: str) -> int: ...

    def sessions(self) -> list[str]: ...

    def stats(self) -> dict[str, int]: ...


class LiveStream:
    """A broadcast whose publisher is connected to this process."""

    def __init__(
        self, bid: str, send_keyframe_request: Callable[[bool], bool], keyframe_interval: float
    ) -> None:
        self.bid = bid
        self.ingest: IngestPeer | None = None
        self.packetizers = {"video": Packetizer("video"), "audio": Packetizer("audio")}
        self.keyframes = KeyframeRequests(send_keyframe_request, keyframe_interval)
        self.codecs: dict[str, RTCRtpCodecParameters] = {}
        self.announced = False
        self.announcing = False
        self.recorder: Recorder | None = None
        self.hls: HlsWriter | None = None
        self.hls_state = "off"  # on | off | disk_full | video_codec | audio_only
        self.started_at = time.time()
        self.frames = 0


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _now_ms() -> int:
    return int(time.time() * 1000)


class MediaService:
    def __init__(
        self,
        redis: Redis,
        log_: EventLog,
        broadcasts: BroadcastService,
        config: MediaConfig,
        egress: Egress | None = None,
        *,
        subscribe: Subscribe,
    ) -> None:
        check_versions()
        self.redis = redis
        self.log = log_
        self.broadcasts = broadcasts
        self.config = config
        self.streams: dict[str, LiveStream] = {}
        hub_args: dict[str, Any] = {
            "queue_frames": config.queue_frames,
            "connect_timeout": config.connect_timeout,
            "on_keyframe_wanted": self.want_keyframe,
            "on_gone": self.viewer_gone,
            "on_connected": self.viewer_connected,
            "send_path": config.send_path,
        }
        processes = egress_count(config.egress_processes)
        if egress is None and processes > 0:
            egress = EgressPool(processes, config.ice, **hub_args)
        self.egress: Egress = egress if egress is not None else ViewerHub(config.ice, **hub_args)
        self._claim = redis.register_script(_CLAIM_LUA)
        self._refresh = redis.register_script(_REFRESH_LUA)
        self.control = ControlChannel(redis, config.process, self._handle_control, subscribe)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._closing = False
        # WHEP sessions not connected yet: sid -> (address key, monotonic time of the offer)
        self._unfinished: dict[str, tuple[str, float]] = {}
        # each broadcast's latest HLS writer, until it has finished (see HlsWriter's `after`)
        self._hls_last: dict[str, HlsWriter] = {}
        self.counters = {
            "ingests": 0,
            "viewers_opened": 0,
            "keyframe_requests": 0,
            "pending_refused": 0,
        }

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if isinstance(self.egress, EgressPool):
            await self.egress.start()
        await self.control.start()
        self._heartbeat = asyncio.create_task(self._heartbeat_loop())

    async def close(self) -> None:
        """Shut down: every peer connection closed, every live stream of ours ended."""
        self._closing = True
        await tasks.stop(self._heartbeat)
        for bid, stream in list(self.streams.items()):
            if stream.ingest is not None:
                with contextlib.suppress(Exception):
                    await self._end(bid, stream.ingest.sid, "server_shutdown")
        await self.egress.close_all()
        await self.control.close()
        await tasks.stop_all(list(self._tasks))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- stream keys ----------------------------------------------------------------------------

    async def rotate_key(self, bid: str) -> dict[str, Any]:
        """A new stream key for `bid` (the old one stops working for new publishes)."""
        await self.broadcasts.get(bid)
        key = "jc_" + secrets.token_urlsafe(24)
        now = _now_ms()
        await self.redis.hset(
            keys.stream_key(bid), mapping={"hash": _hash_key(key), "created_at": now}
        )
        return {"stream_key": key, "created_at": now, "whip_url": f"/whip/{bid}"}

    async def key_info(self, bid: str) -> dict[str, Any]:
        await self.broadcasts.get(bid)
        h = await self.redis.hgetall(keys.stream_key(bid))
        created = h.get(b"created_at")
        return {
            "has_key": bool(h.get(b"hash")),
            "created_at": int(created) if created else None,
            "whip_url": f"/whip/{bid}",
        }

    async def check_key(self, bid: str, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("a stream key is required (Authorization: Bearer)", code="no_key")
        stored = await self.redis.hget(keys.stream_key(bid), "hash")
        if stored is None or not hmac.compare_digest(stored.decode(), _hash_key(token.strip())):
            raise Unauthorized("wrong stream key", code="bad_key")

    # -- WHIP -----------------------------------------------------------------------------------

    async def publish(self, bid: str, authorization: str | None, offer_text: str) -> SessionAnswer:
        broadcast = await self.broadcasts.get(bid)
        await self.check_key(bid, authorization)
        if broadcast.status == "ended":
            raise Conflict("the broadcast has ended", code="broadcast_ended")
        parse_offer(offer_text)
        stream = self.streams.get(bid)
        replacing: str | None = None
        if stream is not None and stream.ingest is not None:
            if not self._replaceable(stream.ingest):
                raise Conflict("another publisher is live", code="publisher_live")
            replacing = stream.ingest.sid
        sid = secrets.token_urlsafe(16)  # public
        resource = secrets.token_urlsafe(32)  # the publisher's alone
        resource_hash = _hash_key(resource)
        holder = await self._claim(
            keys=[keys.ingest(bid)],
            args=[replacing or "", sid, self.config.process, "", "", _now_ms(), _ttl_ms()],
        )
        if holder is not None:
            raise Conflict("another publisher is live", code="publisher_live")
        ingest = IngestPeer(sid, bid, self._frame_sink(bid), resource_hash=resource_hash)
        try:
            sdp = await ingest.open(offer_text, self.config.ice, self.config.video_codecs)
        except BaseException:
            await self._release(bid, sid)
            raise
        stream = self.streams.get(bid)
        old = stream.ingest if stream is not None else None
        if stream is None:
            stream = LiveStream(
                bid,
                lambda full: self._send_keyframe_request(bid, full),
                self.config.keyframe_interval,
            )
            self.streams[bid] = stream
        if old is not None:
            await self._replace(stream, old, ingest)
        stream.ingest = ingest
        stream.codecs = dict(ingest.codecs)
        for kind, codec in ingest.codecs.items():
            stream.packetizers[kind].new_source()
            stream.packetizers[kind].set_codec(codec)
        mapping: dict[str, Any] = {k: c.name for k, c in ingest.codecs.items()}
        if stream.announced:
            # a reconnecting publisher continues a live stream: still live, same viewers
            mapping.update(state="live", live_at=_now_ms())
            if self.config.record:
                self._start_recording(stream, ingest)
            self._start_hls(stream, ingest)
            mapping["hls"] = stream.hls_state
        await self.redis.hset(keys.ingest(bid), mapping=mapping)
        await self.redis.set(keys.media_session(resource_hash), self.config.process, px=_ttl_ms())
        self.counters["ingests"] += 1
        return SessionAnswer(
            sid, sdp, f"/whip/{bid}/{resource}", self.config.ice_servers.links(f"p-{bid}")
        )

    def _replaceable(self, ingest: IngestPeer) -> bool:
        if ingest.connection_state in ("failed", "closed"):
            return True
        return ingest.media_age(time.monotonic()) > min(TAKEOVER_AFTER, self.config.publisher_grace)

    async def _replace(self, stream: LiveStream, old: IngestPeer, new: IngestPeer) -> None:
        """A reconnecting publisher takes over; viewers stay if the codecs did not change."""
        await old.close()
        await self.redis.delete(keys.media_session(old.resource_hash))
        if stream.recorder is not None:
            await self._stop_recording(stream)
        await self._stop_hls(stream)
        same = {k: c.name for k, c in old.codecs.items()} == {
            k: c.name for k, c in new.codecs.items()
        }
        if not same and stream.announced:
            await self.egress.end(stream.bid, "codec_changed")
            await self._publish_ended(stream.bid, old.sid, "replaced")
            stream.announced = False

    async def unpublish(self, bid: str, resource: str) -> None:
        """End the stream whose WHIP resource id (from the 201's Location) is `resource`.

        The public session id is not a resource id: a DELETE naming it is an unknown session.
        """
        await self._unpublish(bid, _hash_key(resource))

    async def _unpublish(self, bid: str, resource_hash: str, *, forwarded: bool = False) -> None:
        stream = self.streams.get(bid)
        ingest = stream.ingest if stream is not None else None
        if ingest is not None and hmac.compare_digest(ingest.resource_hash, resource_hash):
            await self._end(bid, ingest.sid, "publisher_left")
            return
        msg = {"op": "unpublish", "bid": bid}
        if not forwarded and await self._forward_by_session(resource_hash, msg):
            return
        raise NotFound("no such WHIP session", code="session_not_found")

    async def _release(self, bid: str, sid: str) -> None:
        """Give up a claim whose answer failed (its resource was never handed out)."""

        async def body(pipe: Pipeline) -> None:
            current = await pipe.hget(keys.ingest(bid), "sid")
            pipe.multi()
            if current is not None and current.decode() == sid:
                pipe.delete(keys.ingest(bid))

        await transact(self.redis, [keys.ingest(bid)], body)

    async def _end(self, bid: str, sid: str, reason: str) -> None:
        stream = self.streams.get(bid)
        if stream is None or stream.ingest is None or stream.ingest.sid != sid:
            return
        ingest = stream.ingest
        stream.ingest = None
        stream.keyframes.close()
        del self.streams[bid]
        await ingest.close()
        await self.egress.end(bid, "stream_ended")
        if stream.recorder is not None:
            await self._stop_recording(stream)
        await self._stop_hls(stream)

        async def body(pipe: Pipeline) -> None:
            current = await pipe.hget(keys.ingest(bid), "sid")
            pipe.multi()
            if current is not None and current.decode() == sid:
                pipe.delete(keys.ingest(bid))
            pipe.delete(keys.media_session(ingest.resource_hash))
            if stream.announced:
                self.log.add_to(pipe, bid, "stream.ended", _ended_data(bid, sid, reason))

        try:
            await transact(self.redis, [keys.ingest(bid)], body)
        except Exception as e:
            # The claim expires on its own; viewers learn from their closed connections.
            log.warning("could not record the end of a stream", extra={"error": str(e)})
        log.info("stream ended", extra={"broadcast": bid, "reason": reason})

    async def _publish_ended(self, bid: str, sid: str, reason: str) -> None:
        await self.log.publish(bid, "stream.ended", _ended_data(bid, sid, reason))

    # -- frames ---------------------------------------------------------------------------------

    def _frame_sink(self, bid: str) -> Callable[[str, RTCRtpCodecParameters, JitterFrame], None]:
        def on_frame(kind: str, codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
            stream = self.streams.get(bid)
            if stream is None:
                return
            packetizer = stream.packetizers[kind]
            packetizer.set_codec(codec)
            packet, data = packetizer.packetize(frame.data, frame.timestamp)
            stream.frames += 1
            if kind == "video" and packet.keyframe:
                stream.keyframes.keyframe()
            self.egress.push(bid, kind, packet)
            if stream.recorder is not None:
                stream.recorder.write(
                    kind, codec.name, codec.clockRate, data, packet.timestamp, packet.keyframe
                )
            if stream.hls is not None and stream.hls.write(
                kind, data, packet.timestamp, packet.keyframe
            ):
                self.want_keyframe(bid)  # so that a segment can end near its length
            if not stream.announced and not stream.announcing and stream.ingest is not None:
                stream.announcing = True
                self._spawn(self._announce(stream, stream.ingest))

        return on_frame

    async def _announce(self, stream: LiveStream, ingest: IngestPeer) -> None:
        """First media of a session: the broadcast goes live and viewers are told."""
        bid = stream.bid
        try:
            try:
                await self.broadcasts.start(bid)
            except Conflict:
                await self._end(bid, ingest.sid, "broadcast_ended")
                return
            if self.config.record:
                self._start_recording(stream, ingest)
            self._start_hls(stream, ingest)
            data = {
                "broadcast_id": bid,
                "session": ingest.sid,
                "codecs": {k: c.name for k, c in ingest.codecs.items()},
                "whep": f"/whep/{bid}",
                **self._hls_fields(bid, stream.hls_state),
                "started_at": _now_ms(),
            }
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(
                    keys.ingest(bid),
                    mapping={"state": "live", "live_at": _now_ms(), "hls": stream.hls_state},
                )
                self.log.add_to(pipe, bid, "stream.live", data)
                await pipe.execute()
            stream.announced = True
            log.info("stream live", extra={"broadcast": bid, "codecs": data["codecs"]})
        except Exception as e:
            log.warning("could not announce a live stream", extra={"error": str(e)})
        finally:
            stream.announcing = False

    def want_keyframe(self, bid: str) -> None:
        stream = self.streams.get(bid)
        if stream is not None:
            self.counters["keyframe_requests"] += 1
            stream.keyframes.request()

    def _send_keyframe_request(self, bid: str, full: bool) -> bool:
        stream = self.streams.get(bid)
        if stream is None or stream.ingest is None:
            return False
        return stream.ingest.request_keyframe(full)

    # -- HLS ------------------------------------------------------------------------------------

    def _start_hls(self, stream: LiveStream, ingest: IngestPeer) -> None:
        """Start writing the session as HLS (stream/hls.py), or note why it cannot be."""
        config = self.config.hls
        if config is None or stream.hls is not None:
            return
        codecs = {k: c.name for k, c in ingest.codecs.items()}
        why = hls_capable(codecs)
        if why is not None:
            stream.hls_state = why
            return
        loop = asyncio.get_running_loop()
        bid = stream.bid

        def on_status(state: str) -> None:  # on the writer thread
            loop.call_soon_threadsafe(self._hls_status, bid, state)

        previous = self._hls_last.get(bid)
        stream.hls = HlsWriter(
            config,
            bid,
            "audio" in codecs,
            on_status,
            after=previous if previous is not None and not previous.finished else None,
        )
        self._hls_last[bid] = stream.hls
        stream.hls_state = "on"
        self.want_keyframe(bid)  # the first segment starts at a keyframe

    async def _stop_hls(self, stream: LiveStream) -> None:
        writer, stream.hls = stream.hls, None
        if writer is not None:
            await asyncio.to_thread(writer.close)
            if self._hls_last.get(stream.bid) is writer:
                del self._hls_last[stream.bid]

    def _hls_status(self, bid: str, state: str) -> None:
        stream = self.streams.get(bid)
        if stream is None or stream.hls is None or stream.hls_state == state:
            return
        stream.hls_state = "on" if state == "ok" else state
        self._spawn(self._publish_hls(bid, stream.hls_state))

    async def _publish_hls(self, bid: str, state: str) -> None:
        try:
            await self.redis.hset(keys.ingest(bid), "hls", state)
            await self.log.publish(
                bid,
                "stream.hls",
                {"broadcast_id": bid, "state": state, "at": _now_ms()},
                audience=HOST,
            )
        except Exception as e:
            log.warning("could not publish the HLS state", extra={"error": str(e)})

    def _hls_fields(self, bid: str, state: str) -> dict[str, Any]:
        """`hls`: the live playlist's URL while HLS is written, else None and `hls_state`
        says why (off, disk_full, video_codec, audio_only)."""
        if state == "on":
            return {"hls": f"{self.config.hls_base_url}/hls/{bid}/live.m3u8", "hls_state": state}
        return {"hls": None, "hls_state": state}

    # -- recording ------------------------------------------------------------------------------

    def _start_recording(self, stream: LiveStream, ingest: IngestPeer) -> None:
        if stream.recorder is not None:
            return
        path = recording_path(self.config.recordings_dir, stream.bid, ingest.sid, time.time())
        stream.recorder = Recorder(path, {k: c.name for k, c in ingest.codecs.items()})
        if "video" in ingest.codecs:
            self.want_keyframe(stream.bid)  # the file starts at a keyframe

    async def _stop_recording(self, stream: LiveStream) -> None:
        recorder, stream.recorder = stream.recorder, None
        if recorder is not None:
            await asyncio.to_thread(recorder.close)

    def _active_recordings(self) -> set[Path]:
        return {s.recorder.path for s in self.streams.values() if s.recorder is not None}

    async def recordings(self, bid: str) -> list[dict[str, Any]]:
        await self.broadcasts.get(bid)
        infos = await asyncio.to_thread(
            list_recordings, self.config.recordings_dir, bid, self._active_recordings()
        )
        return [r.public() for r in infos]

    async def recording_file(self, bid: str, name: str) -> Path:
        await self.broadcasts.get(bid)
        path = recording_file(self.config.recordings_dir, bid, name)
        if path is None:
            raise NotFound("no such recording", code="recording_not_found")
        return path

    # -- WHEP -----------------------------------------------------------------------------------

    async def play(
        self, bid: str, offer_text: str, *, client: str = "", forwarded: bool = False
    ) -> SessionAnswer:
        """Open a WHEP session for the viewer at address `client` (client_ip of the request)."""
        await self.broadcasts.get(bid)
        offer = parse_offer(offer_text)
        stream = self.streams.get(bid)
        if stream is None or stream.ingest is None or not stream.codecs:
            owner = await self.redis.hget(keys.ingest(bid), "process")
            if owner is not None and not forwarded and owner.decode() != self.config.process:
                result = await self.control.request(
                    owner.decode(),
                    {"op": "play", "bid": bid, "offer": offer_text, "client": client},
                )
                return SessionAnswer(**result)
            raise Conflict("the broadcast is not live", code="not_live")
        address = address_key(client)
        self._check_unfinished(address)
        check_capacity(len(self.egress), self.config.max_viewers)
        viewer_codecs(offer, stream.codecs)
        sid = secrets.token_urlsafe(16)
        # Counted before the first await, so that concurrent offers from one address all count;
        # released when it connects, fails, times out or is deleted (viewer_connected/gone).
        self._unfinished[sid] = (address, time.monotonic())
        try:
            sdp = await self.egress.open(bid, sid, offer_text, dict(stream.codecs))
        except BaseException:
            self._unfinished.pop(sid, None)
            raise
        await self.redis.set(keys.media_session(sid), self.config.process, px=_ttl_ms())
        self.counters["viewers_opened"] += 1
        return SessionAnswer(
            sid, sdp, f"/whep/{bid}/{sid}", self.config.ice_servers.links(f"v-{bid}")
        )

    def _check_unfinished(self, address: str) -> None:
        """429 when `address` already has `pending_per_address` sessions not connected yet."""
        limit = self.config.pending_per_address
        if limit <= 0:
            return
        started = [t for a, t in self._unfinished.values() if a == address]
        if len(started) < limit:
            return
        self.counters["pending_refused"] += 1
        # A real session connects within a second or so, and a hall of viewers behind one
        # address should not wait for an abandoned one's deadline: a short retry, at most until
        # the oldest is closed anyway.
        wait = min(started) + self.config.connect_timeout - time.monotonic()
        raise RateLimited(
            f"this address has {len(started)} video connections still connecting: "
            "finish or close one first",
            code="too_many_pending",
            retry_after=max(1, min(2, math.ceil(wait))),
        )

    def unfinished(self, client: str | None = None) -> int:
        """WHEP sessions of this process not connected yet (of one client address)."""
        if client is None:
            return len(self._unfinished)
        address = address_key(client)
        return sum(1 for a, _ in self._unfinished.values() if a == address)

    async def stop_play(self, bid: str, sid: str, *, forwarded: bool = False) -> None:
        if await self.egress.close(sid, "deleted"):
            return
        if not forwarded and await self._forward_by_session(sid, {"op": "stop", "bid": bid}):
            return
        raise NotFound("no such WHEP session", code="session_not_found")

    async def _forward_by_session(self, sid: str, msg: dict[str, Any]) -> bool:
        """Send a session's request to the process holding it; False when none does."""
        owner = await self.redis.get(keys.media_session(sid))
        if owner is None or owner.decode() == self.config.process:
            return False
        await self.control.request(owner.decode(), {**msg, "sid": sid})
        return True

    async def _handle_control(self, msg: dict[str, Any]) -> Any:
        op = msg.get("op")
        if op == "play":
            answer = await self.play(
                msg["bid"], msg["offer"], client=msg.get("client", ""), forwarded=True
            )
            return dataclasses.asdict(answer)
        if op == "stop":
            await self.stop_play(msg["bid"], msg["sid"], forwarded=True)
            return True
        if op == "unpublish":
            await self._unpublish(msg["bid"], msg["sid"], forwarded=True)
            return True
        raise NotFound(f"unknown media request {op!r}")

    def viewer_connected(self, sid: str) -> None:
        self._unfinished.pop(sid, None)

    def viewer_gone(self, sid: str, bid: str, reason: str) -> None:
        self._unfinished.pop(sid, None)
        self._spawn(self._forget_session(sid))

    async def _forget_session(self, sid: str) -> None:
        with contextlib.suppress(Exception):
            await self.redis.delete(keys.media_session(sid))

    # -- state for snapshots and hosts ----------------------------------------------------------

    async def state(self, bid: str) -> dict[str, Any]:
        """The stream part of a broadcast snapshot (same on every process)."""
        if not is_valid_id(bid):
            return {"stream": {"state": "offline"}}
        h = await self.redis.hgetall(keys.ingest(bid))
        if not h:
            return {"stream": {"state": "offline", "whep": f"/whep/{bid}"}}
        state = h.get(b"state", b"starting").decode()
        out: dict[str, Any] = {
            "state": "live" if state == "live" else "starting",
            "session": h.get(b"sid", b"").decode(),
            "whep": f"/whep/{bid}",
            "codecs": {k: h[k.encode()].decode() for k in ("video", "audio") if h.get(k.encode())},
            **self._hls_fields(bid, h.get(b"hls", b"off").decode()),
        }
        return {"stream": out}

    def stats(self) -> dict[str, Any]:
        return {
            "streams": len(self.streams),
            "publishers": sum(1 for s in self.streams.values() if s.ingest is not None),
            **self.egress.stats(),
            **self.counters,
        }

    # -- heartbeat and watchdog -----------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                await self._tick()
            except Exception as e:  # Redis down: the media keeps flowing, retry next tick
                log.warning("media heartbeat failed", extra={"error": str(e)})

    async def _tick(self) -> None:
        await health.write_viewer_counts(
            self.redis, self.config.process, {bid: self.egress.count(bid) for bid in self.streams}
        )
        viewers = self.egress.sessions()
        if viewers:
            async with self.redis.pipeline(transaction=False) as pipe:
                for sid in viewers:
                    pipe.pexpire(keys.media_session(sid), _ttl_ms())
                await pipe.execute()
        now = time.monotonic()
        for bid, stream in list(self.streams.items()):
            ingest = stream.ingest
            if ingest is None:
                continue
            lost = ingest.lost_at is not None and now - ingest.lost_at > self.config.publisher_grace
            silent = ingest.media_age(now) > self.config.publisher_grace
            if lost or silent:
                await self._end(bid, ingest.sid, "publisher_lost")
                continue
            held = await self._refresh(keys=[keys.ingest(bid)], args=[ingest.sid, _ttl_ms()])
            await self.redis.pexpire(keys.media_session(ingest.resource_hash), _ttl_ms())
            if not held:
                # Our claim expired (Redis restarted, or we stalled) and someone else may hold
                # it now: stop quietly rather than fight over the broadcast.
                await self._end(bid, ingest.sid, "claim_lost")
                continue
            await health.write_ingest(self.redis, bid, ingest.meter, now)
            status = await self.redis.hget(keys.broadcast(bid), "status")
            if status == b"ended":
                await self._end(bid, ingest.sid, "broadcast_ended")


address_key = address_group  # see core/net.py


def _ttl_ms() -> int:
    return int(INGEST_TTL * 1000)


def _ended_data(bid: str, sid: str, reason: str) -> dict[str, Any]:
    return {"broadcast_id": bid, "session": sid, "reason": reason, "ended_at": _now_ms()}
