"""Reading the fragmented MP4 (CMAF) byte stream that libavformat's mp4 muxer writes, so that
the HLS writer can cut it into an init segment and media segments without re-muxing.

The muxer (PyAV, `movflags=frag_keyframe+empty_moov+default_base_moof`) writes `ftyp` and
`moov` first, then one `moof`+`mdat` pair per fragment. `BoxSplitter` turns its writes, which
may split or join boxes anywhere, into whole top-level boxes; `tracks` and `fragment` read
the few fields a playlist needs: each track's timescale, and per fragment the video track's
start, length and whether it opens on a keyframe (ISO/IEC 14496-12: tkhd, mdhd, hdlr, trex,
tfhd, tfdt, trun).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

# sample_is_non_sync_sample, in the sample flags of trex, tfhd and trun
_NON_SYNC = 0x00010000


def boxes(
    data: bytes | memoryview, start: int = 0, end: int | None = None
) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each box in data[start:end]."""
    end = len(data) if end is None else end
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, i)
        head = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, i + 8)
            head = 16
        elif size == 0:
            size = end - i
        if size < head or i + size > end:
            raise ValueError(f"a truncated {kind!r} box")
        yield kind, i + head, i + size
        i += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for k, s, e in boxes(data, start, end):
        if k == kind:
            return s, e
    return None


class BoxSplitter:
    """Whole top-level boxes out of a byte stream written in arbitrary pieces."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        """(type, the whole box) of every box that `data` completed, in order."""
        self._buf += data
        out: list[tuple[bytes, bytes]] = []
        while len(self._buf) >= 8:
            size, kind = struct.unpack_from(">I4s", self._buf, 0)
            if size == 1:
                if len(self._buf) < 16:
                    break
                (size,) = struct.unpack_from(">Q", self._buf, 8)
            if size < 8:
                raise ValueError("a box of size 0 in a live stream")
            if len(self._buf) < size:
                break
            out.append((bytes(kind), bytes(self._buf[:size])))
            del self._buf[:size]
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)


@dataclass(frozen=True)
class Track:
    track_id: int
    handler: str  # "vide" | "soun"
    timescale: int
    default_flags: int  # from trex


def tracks(moov: bytes) -> dict[int, Track]:
    """The tracks an init segment (`moov`, the whole box) declares, by track id."""
    top = _child(moov, 0, len(moov), b"moov")
    if top is None:
        raise ValueError("not a moov box")
    s, e = top
    flags: dict[int, int] = {}
    mvex = _child(moov, s, e, b"mvex")
    if mvex is not None:
        for k, ts, _te in boxes(moov, *mvex):
            if k == b"trex":
                tid, _desc, _dur, _size, fl = struct.unpack_from(">IIIII", moov, ts + 4)
                flags[tid] = fl
    out: dict[int, Track] = {}
    for k, ts, te in boxes(moov, s, e):
        if k != b"trak":
            continue
        tkhd = _child(moov, ts, te, b"tkhd")
        mdia = _child(moov, ts, te, b"mdia")
        if tkhd is None or mdia is None:
            continue
        version = moov[tkhd[0]]
        tid = struct.unpack_from(">I", moov, tkhd[0] + (20 if version == 1 else 12))[0]
        mdhd = _child(moov, *mdia, b"mdhd")
        hdlr = _child(moov, *mdia, b"hdlr")
        if mdhd is None or hdlr is None:
            continue
        v = moov[mdhd[0]]
        timescale = struct.unpack_from(">I", moov, mdhd[0] + (20 if v == 1 else 12))[0]
        handler = moov[hdlr[0] + 8 : hdlr[0] + 12].decode("latin-1")
        out[tid] = Track(tid, handler, timescale, flags.get(tid, 0))
    return out


@dataclass(frozen=True)
class Fragment:
    """One moof+mdat, read for its video track."""

    data: bytes
    start: int  # the video track's baseMediaDecodeTime, in its timescale
    duration: int  # the video track's samples' total duration, in its timescale
    timescale: int
    keyframe: bool  # opens on a sync sample: a player can start here

    @property
    def seconds(self) -> float:
        return self.duration / self.timescale


def fragment(moof: bytes, mdat: bytes, known: dict[int, Track]) -> Fragment:
    """The video track's timing in one fragment (`moof` and `mdat`: whole boxes)."""
    top = _child(moof, 0, len(moof), b"moof")
    if top is None:
        raise ValueError("not a moof box")
    for k, ts, te in boxes(moof, *top):
        if k != b"traf":
            continue
        tfhd = _child(moof, ts, te, b"tfhd")
        if tfhd is None:
            continue
        fl = int.from_bytes(moof[tfhd[0] + 1 : tfhd[0] + 4], "big")
        tid = struct.unpack_from(">I", moof, tfhd[0] + 4)[0]
        track = known.get(tid)
        if track is None or track.handler != "vide":
            continue
        at = tfhd[0] + 8
        if fl & 0x01:
            at += 8  # base data offset
        if fl & 0x02:
            at += 4  # sample description index
        default_duration = 0
        if fl & 0x08:
            (default_duration,) = struct.unpack_from(">I", moof, at)
            at += 4
        if fl & 0x10:
            at += 4  # default sample size
        default_flags = track.default_flags
        if fl & 0x20:
            (default_flags,) = struct.unpack_from(">I", moof, at)
        base = 0
        tfdt = _child(moof, ts, te, b"tfdt")
        if tfdt is not None:
            if moof[tfdt[0]] == 1:
                (base,) = struct.unpack_from(">Q", moof, tfdt[0] + 4)
            else:
                (base,) = struct.unpack_from(">I", moof, tfdt[0] + 4)
        duration = 0
        first_flags: int | None = None
        for rk, rs, _re in boxes(moof, ts, te):
            if rk != b"trun":
                continue
            rfl = int.from_bytes(moof[rs + 1 : rs + 4], "big")
            (count,) = struct.unpack_from(">I", moof, rs + 4)
            at = rs + 8
            if rfl & 0x001:
                at += 4  # data offset
            if rfl & 0x004:
                (ff,) = struct.unpack_from(">I", moof, at)
                at += 4
                if first_flags is None:
                    first_flags = ff
            per = [4 * bool(rfl & b) for b in (0x100, 0x200, 0x400, 0x800)]
            step = sum(per)
            for n in range(count):
                p = at + n * step
                duration += struct.unpack_from(">I", moof, p)[0] if per[0] else default_duration
                if n == 0 and first_flags is None:
                    first_flags = (
                        struct.unpack_from(">I", moof, p + per[0] + per[1])[0]
                        if per[2]
                        else default_flags
                    )
        key = not ((default_flags if first_flags is None else first_flags) & _NON_SYNC)
        return Fragment(moof + mdat, base, duration, track.timescale, key)
    raise ValueError("a fragment without a video track")
