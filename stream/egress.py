"""Egress processes: viewers served by child processes, so the relay uses more than one core.

The app process keeps the publisher's peer connection and cuts every frame into RTP payloads
once (stream.relay.Packetizer); it then writes the payloads once per egress process over a
socketpair. Each egress process runs a ViewerHub: the viewers' peer connections, DTLS/SRTP and
their senders, which is where the CPU goes (about 200 packets per second per viewer).

    app process ── frames ──▶ egress 1 ── RTP ──▶ viewers
                 ◀─ keyframe wanted, viewer gone ──

Wire format (both directions): 4-byte big-endian length, 1 type byte, body.
  b"F" frame (app -> egress): bid length (1) + bid, kind (1: v/a), keyframe (1),
       timestamp (4), payload count (2), payload lengths (2 each), payloads.
  b"J" JSON: requests with "req" ids and their replies, and notices ("op": keyframe,
       connected, gone, stats).

A slow egress process never holds the app process up: when its socket buffer passes a limit,
frames for it are dropped and its video restarts at the next keyframe (one is requested).
When an egress process dies, its viewers are reported gone and a new process is started.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import struct
import sys
from collections.abc import Callable
from typing import Any

import orjson
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from jobcast.core import errors as core_errors
from jobcast.core import tasks
from jobcast.core.errors import JobcastError, Unavailable
from jobcast.stream import errors as stream_errors
from jobcast.stream.aiortc_internals import IcePolicy, Packetized

log = logging.getLogger("jobcast.media")

_HEADER = struct.Struct("!IB")
_FRAME = struct.Struct("!BBIH")
WRITE_LIMIT = 4 * 1024 * 1024  # bytes queued to one egress process before it drops frames
REQUEST_TIMEOUT = 15.0
RESTART_DELAY = 1.0
_MAX_MESSAGE = 16 * 1024 * 1024


# -- wire helpers --------------------------------------------------------------------------


def encode_frame(bid: str, kind: str, frame: Packetized) -> bytes:
    b = bid.encode()
    lengths = struct.pack(f"!{len(frame.payloads)}H", *(len(p) for p in frame.payloads))
    body = (
        bytes([len(b)])
        + b
        + _FRAME.pack(ord(kind[0]), frame.keyframe, frame.timestamp, len(frame.payloads))
        + lengths
        + b"".join(frame.payloads)
    )
    return _HEADER.pack(len(body) + 1, ord("F")) + body


def decode_frame(body: bytes) -> tuple[str, str, Packetized]:
    n = body[0]
    bid = body[1 : 1 + n].decode()
    pos = 1 + n
    kind_b, key, ts, count = _FRAME.unpack_from(body, pos)
    pos += _FRAME.size
    lengths = struct.unpack_from(f"!{count}H", body, pos)
    pos += 2 * count
    payloads = []
    for ln in lengths:
        payloads.append(body[pos : pos + ln])
        pos += ln
    kind = "video" if kind_b == ord("v") else "audio"
    return bid, kind, Packetized(payloads, ts, bool(key))


def encode_json(msg: dict[str, Any]) -> bytes:
    body = orjson.dumps(msg)
    return _HEADER.pack(len(body) + 1, ord("J")) + body


async def read_message(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readexactly(_HEADER.size)
    length, kind = _HEADER.unpack(head)
    if length < 1 or length > _MAX_MESSAGE:
        raise ConnectionError("bad egress message length")
    return kind, await reader.readexactly(length - 1)


def codec_to_json(c: RTCRtpCodecParameters) -> dict[str, Any]:
    return {
        "mimeType": c.mimeType,
        "clockRate": c.clockRate,
        "channels": c.channels,
        "payloadType": c.payloadType,
        "parameters": dict(c.parameters),
    }


def codec_from_json(d: dict[str, Any]) -> RTCRtpCodecParameters:
    return RTCRtpCodecParameters(
        mimeType=d["mimeType"],
        clockRate=d["clockRate"],
        channels=d["channels"],
        payloadType=d["payloadType"],
        parameters=d["parameters"],
    )


_ERROR_CLASSES: dict[str, type[JobcastError]] = {
    cls.__name__: cls
    for mod in (core_errors, stream_errors)
    for cls in vars(mod).values()
    if isinstance(cls, type) and issubclass(cls, JobcastError)
}


def error_to_json(e: JobcastError) -> dict[str, Any]:
    return {
        "cls": type(e).__name__,
        "code": e.code,
        "message": e.message,
        "fields": e.fields,
        "retry_after": e.retry_after,
    }


def error_from_json(d: dict[str, Any]) -> JobcastError:
    cls = _ERROR_CLASSES.get(d.get("cls", ""), JobcastError)
    return cls(
        d.get("message", "error"),
        code=d.get("code"),
        fields=d.get("fields") or None,
        retry_after=d.get("retry_after"),
    )


def policy_to_json(p: IcePolicy) -> dict[str, Any]:
    return {"addresses": list(p.addresses), "ports": p.ports, "announce": p.announce}


def policy_from_json(d: dict[str, Any]) -> IcePolicy:
    ports = tuple(d["ports"]) if d.get("ports") else None
    return IcePolicy(tuple(d["addresses"]), ports, dict(d["announce"]))  # type: ignore[arg-type]


# -- the app side --------------------------------------------------------------------------


def egress_count(setting: int, cores: int | None = None) -> int:
    """Egress processes for `media_egress_processes`: as set, or for -1 one per core when the
    box has more than one (the app process then only receives and cuts frames), else none."""
    if setting >= 0:
        return setting
    n = cores if cores is not None else len(os.sched_getaffinity(0))
    return n if n > 1 else 0


@dataclasses.dataclass
class _Child:
    index: int
    proc: asyncio.subprocess.Process | None = None
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    alive: bool = False
    viewers: dict[str, str] = dataclasses.field(default_factory=dict)  # sid -> bid
    bids: dict[str, int] = dataclasses.field(default_factory=dict)  # bid -> viewers
    skipping: set[str] = dataclasses.field(default_factory=set)  # bids waiting for a keyframe
    dropped: int = 0
    stats: dict[str, int] = dataclasses.field(default_factory=dict)
    task: asyncio.Task[None] | None = None


class EgressPool:
    """`count` egress processes behind the same interface as ViewerHub."""

    def __init__(
        self,
        count: int,
        ice: IcePolicy,
        *,
        queue_frames: int,
        connect_timeout: float,
        on_keyframe_wanted: Callable[[str], None],
        on_gone: Callable[[str, str, str], None],
        on_connected: Callable[[str], None] | None = None,
        send_path: str = "direct",
    ) -> None:
        self.children = [_Child(i) for i in range(count)]
        self.config = {
            "ice": policy_to_json(ice),
            "queue_frames": queue_frames,
            "connect_timeout": connect_timeout,
            "send_path": send_path,
        }
        self._want_keyframe = on_keyframe_wanted
        self._on_gone = on_gone
        self._on_connected = on_connected
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_req = 0
        self._closing = False

    async def start(self) -> None:
        await asyncio.gather(*(self._spawn(c) for c in self.children))

    async def _spawn(self, child: _Child) -> None:
        parent_sock, child_sock = socket.socketpair()
        try:
            child.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "stream.egress",
                str(child_sock.fileno()),
                orjson.dumps(self.config).decode(),
                pass_fds=(child_sock.fileno(),),
                start_new_session=False,
            )
        finally:
            child_sock.close()
        child.reader, child.writer = await asyncio.open_connection(sock=parent_sock)
        child.alive = True
        child.task = asyncio.create_task(self._read(child))

    async def _read(self, child: _Child) -> None:
        assert child.reader is not None
        try:
            while True:
                kind, body = await read_message(child.reader)
                if kind == ord("J"):
                    self._on_message(child, orjson.loads(body))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            await self._lost(child)

    def _on_message(self, child: _Child, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if op == "reply":
            fut = self._pending.pop(msg["req"], None)
            if fut is not None and not fut.done():
                if msg.get("ok"):
                    fut.set_result(msg.get("result"))
                else:
                    fut.set_exception(error_from_json(msg.get("error") or {}))
        elif op == "keyframe":
            self._want_keyframe(msg["bid"])
        elif op == "connected":
            if self._on_connected is not None and msg["sid"] in child.viewers:
                self._on_connected(msg["sid"])
        elif op == "gone":
            self._forget(child, msg["sid"])
            self._on_gone(msg["sid"], msg["bid"], msg["reason"])
        elif op == "stats":
            child.stats = msg["stats"]

    async def _lost(self, child: _Child) -> None:
        child.alive = False
        for sid, bid in list(child.viewers.items()):
            self._forget(child, sid)
            self._on_gone(sid, bid, "egress_lost")
        if child.writer is not None:
            child.writer.close()
        if child.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                child.proc.kill()
            await child.proc.wait()
        if not self._closing:
            log.warning("egress process exited; restarting", extra={"egress": child.index})
            await asyncio.sleep(RESTART_DELAY)
            if not self._closing:
                await self._spawn(child)

    def _forget(self, child: _Child, sid: str) -> None:
        bid = child.viewers.pop(sid, None)
        if bid is not None:
            child.bids[bid] -= 1
            if child.bids[bid] <= 0:
                del child.bids[bid]
                child.skipping.discard(bid)

    async def _request(self, child: _Child, msg: dict[str, Any]) -> Any:
        if not child.alive or child.writer is None:
            raise Unavailable("the media relay is restarting", code="egress_unavailable")
        self._next_req += 1
        req = self._next_req
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req] = fut
        child.writer.write(encode_json({**msg, "req": req}))
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                return await fut
        except TimeoutError:
            raise Unavailable("the media relay did not answer", code="egress_timeout") from None
        finally:
            self._pending.pop(req, None)

    # -- the Egress interface --------------------------------------------------------------

    async def open(
        self, bid: str, sid: str, offer_text: str, codecs: dict[str, RTCRtpCodecParameters]
    ) -> str:
        alive = [c for c in self.children if c.alive]
        if not alive:
            raise Unavailable("the media relay is restarting", code="egress_unavailable")
        child = min(alive, key=lambda c: len(c.viewers))
        child.viewers[sid] = bid  # reserve before awaiting, so concurrent opens spread out
        child.bids[bid] = child.bids.get(bid, 0) + 1
        try:
            return await self._request(
                child,
                {
                    "op": "open",
                    "bid": bid,
                    "sid": sid,
                    "offer": offer_text,
                    "codecs": {k: codec_to_json(c) for k, c in codecs.items()},
                },
            )
        except BaseException:
            self._forget(child, sid)
            raise

    async def close(self, sid: str, reason: str = "deleted") -> bool:
        for child in self.children:
            if sid in child.viewers:
                msg = {"op": "close", "sid": sid, "reason": reason}
                return bool(await self._request(child, msg))
        return False

    def push(self, bid: str, kind: str, frame: Packetized) -> None:
        data: bytes | None = None
        for child in self.children:
            if not child.alive or bid not in child.bids or child.writer is None:
                continue
            if bid in child.skipping:
                if kind != "video" or not frame.keyframe:
                    child.dropped += 1
                    continue
                child.skipping.discard(bid)
            if child.writer.transport.get_write_buffer_size() > WRITE_LIMIT:
                child.dropped += 1
                child.skipping.add(bid)
                self._want_keyframe(bid)
                continue
            if data is None:
                data = encode_frame(bid, kind, frame)
            child.writer.write(data)

    async def end(self, bid: str, reason: str = "stream_ended") -> int:
        results = await asyncio.gather(
            *(
                self._request(c, {"op": "end", "bid": bid, "reason": reason})
                for c in self.children
                if c.alive and bid in c.bids
            ),
            return_exceptions=True,
        )
        return sum(r for r in results if isinstance(r, int))

    async def close_all(self) -> None:
        self._closing = True
        for child in self.children:
            if child.alive and child.writer is not None:
                with contextlib.suppress(Exception):
                    await self._request(child, {"op": "shutdown"})
        await tasks.stop_all([c.task for c in self.children if c.task is not None])

    def __len__(self) -> int:
        return sum(len(c.viewers) for c in self.children)

    def count(self, bid: str) -> int:
        return sum(c.bids.get(bid, 0) for c in self.children)

    def sessions(self) -> list[str]:
        return [sid for c in self.children for sid in c.viewers]

    def stats(self) -> dict[str, int]:
        out = {"viewers": len(self), "egress_processes": sum(c.alive for c in self.children)}
        for c in self.children:
            for k, v in c.stats.items():
                if k != "viewers":
                    out[k] = out.get(k, 0) + v
        out["egress_dropped"] = sum(c.dropped for c in self.children)
        return out


# -- the egress process --------------------------------------------------------------------


async def _serve(fd: int, config: dict[str, Any]) -> None:
    from jobcast.stream.viewers import ViewerHub

    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock)

    def send(msg: dict[str, Any]) -> None:
        if not writer.is_closing():
            writer.write(encode_json(msg))

    hub = ViewerHub(
        policy_from_json(config["ice"]),
        queue_frames=config["queue_frames"],
        connect_timeout=config["connect_timeout"],
        on_keyframe_wanted=lambda bid: send({"op": "keyframe", "bid": bid}),
        on_gone=lambda sid, bid, reason: send(
            {"op": "gone", "sid": sid, "bid": bid, "reason": reason}
        ),
        on_connected=lambda sid: send({"op": "connected", "sid": sid}),
        send_path=config.get("send_path", "direct"),
    )
    tasks: set[asyncio.Task[None]] = set()

    async def handle(msg: dict[str, Any]) -> None:
        req = msg.get("req")
        try:
            op = msg["op"]
            if op == "open":
                codecs = {k: codec_from_json(v) for k, v in msg["codecs"].items()}
                result: Any = await hub.open(msg["bid"], msg["sid"], msg["offer"], codecs)
            elif op == "close":
                result = await hub.close(msg["sid"], msg.get("reason", "deleted"))
            elif op == "end":
                result = await hub.end(msg["bid"], msg.get("reason", "stream_ended"))
            elif op == "shutdown":
                await hub.close_all()
                result = True
            else:
                raise JobcastError(f"unknown op {op!r}")
            send({"op": "reply", "req": req, "ok": True, "result": result})
        except JobcastError as e:
            send({"op": "reply", "req": req, "ok": False, "error": error_to_json(e)})
        except Exception as e:
            log.exception("egress request failed")
            err = JobcastError(f"egress failure: {type(e).__name__}", code="egress_error")
            send({"op": "reply", "req": req, "ok": False, "error": error_to_json(err)})

    async def report() -> None:
        while True:
            await asyncio.sleep(2.0)
            send({"op": "stats", "stats": hub.stats()})

    reporter = asyncio.create_task(report())
    try:
        while True:
            kind, body = await read_message(reader)
            if kind == ord("F"):
                bid, k, frame = decode_frame(body)
                hub.push(bid, k, frame)
            elif kind == ord("J"):
                task = asyncio.create_task(handle(orjson.loads(body)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the app process went away: stop
    finally:
        reporter.cancel()
        await hub.close_all()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    fd, config = int(args[0]), orjson.loads(args[1])
    logging.basicConfig(level=logging.WARNING)
    # Stop when the app process closes the socket (or asks), not on the terminal's signals:
    # the app process shuts its viewers down in order first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(fd, config))
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
