"""HLS media playlists (RFC 8216) for one broadcast: the live window and the whole stream.

Two playlists are written from the same list of segments:
- `live.m3u8`, the last `window` segments, which every live viewer reloads about once a
  segment: small whatever the broadcast's length, so a phone on a weak network does not spend
  its bandwidth on the playlist;
- `index.m3u8`, every segment, with a program date-time on each (the chapters of the replay
  are placed by it), ending in EXT-X-ENDLIST once the stream has ended: the replay.

A segment after a gap (a publisher that reconnected, a change of resolution, a timestamp jump,
segments lost to a full disk) opens with EXT-X-DISCONTINUITY and names its init segment
(EXT-X-MAP). `parse` reads `index.m3u8` back, so a writer that starts again (a new publisher
session, or a new process after a crash) continues the same playlists.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

VERSION = 7  # fMP4 segments with EXT-X-MAP


@dataclass(frozen=True, slots=True)
class Segment:
    seq: int
    name: str
    duration: float  # seconds
    pdt_ms: int  # program date-time of its first frame (unix ms)
    init: str  # the init segment it needs
    discontinuity: bool = False


def _pdt(ms: int) -> str:
    t = datetime.fromtimestamp(ms / 1000, UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _lines(s: Segment, *, with_map: bool, with_date: bool) -> list[str]:
    out: list[str] = []
    if s.discontinuity:
        out.append("#EXT-X-DISCONTINUITY")
    if with_map:
        out.append(f'#EXT-X-MAP:URI="{s.init}"')
    if with_date:
        out.append(f"#EXT-X-PROGRAM-DATE-TIME:{_pdt(s.pdt_ms)}")
    out.append(f"#EXTINF:{s.duration:.3f},")
    out.append(s.name)
    return out


@dataclass
class Playlist:
    target: int  # EXT-X-TARGETDURATION, whole seconds
    segments: list[Segment] = field(default_factory=list)
    ended: bool = False

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.segments)

    @property
    def next_seq(self) -> int:
        return self.segments[-1].seq + 1 if self.segments else 0

    def _target(self) -> int:
        longest = max((round(s.duration) for s in self.segments), default=0)
        return max(self.target, longest)

    def _render(self, segs: list[Segment], *, dates: str, ended: bool) -> str:
        first = segs[0].seq if segs else self.next_seq
        before = self.segments[: len(self.segments) - len(segs)]
        disc = sum(1 for s in before if s.discontinuity)
        head = [
            "#EXTM3U",
            f"#EXT-X-VERSION:{VERSION}",
            f"#EXT-X-TARGETDURATION:{self._target()}",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
            f"#EXT-X-DISCONTINUITY-SEQUENCE:{disc}",
            "#EXT-X-INDEPENDENT-SEGMENTS",
        ]
        body: list[str] = []
        init = None
        for i, s in enumerate(segs):
            new_map = s.init != init
            # a program date-time at each discontinuity, on the first segment, and (index:
            # every segment) wherever the chapters need it
            date = dates == "all" or i == 0 or s.discontinuity
            body += _lines(s, with_map=new_map, with_date=date)
            init = s.init
        tail = ["#EXT-X-ENDLIST"] if ended else []
        return "\n".join(head + body + tail) + "\n"

    def live(self, window: int) -> str:
        """The last `window` segments; ENDLIST once the stream has ended."""
        return self._render(self.segments[-window:], dates="first", ended=self.ended)

    def index(self) -> str:
        """Every segment, each with its program date-time."""
        return self._render(self.segments, dates="all", ended=self.ended)

    def position(self, at_ms: int) -> float | None:
        """Seconds into the whole stream of wall-clock time `at_ms`, or None when no segment
        holds it (before the stream, after it, or in a gap between two sessions)."""
        offset = 0.0
        for s in self.segments:
            if s.pdt_ms <= at_ms < s.pdt_ms + s.duration * 1000:
                return offset + (at_ms - s.pdt_ms) / 1000
            offset += s.duration
        return None

    def start_of_next_after(self, at_ms: int) -> float | None:
        """Seconds into the stream of the first segment that starts after `at_ms` (a chapter
        pinned while no video was being written starts where the video comes back)."""
        offset = 0.0
        for s in self.segments:
            if s.pdt_ms >= at_ms:
                return offset
            offset += s.duration
        return None


_TAG = re.compile(r"^#([A-Z0-9-]+)(?::(.*))?$")
_MAP = re.compile(r'URI="([^"]+)"')


def parse(text: str) -> Playlist:
    """A playlist this module wrote (`index()`), read back. Raises ValueError otherwise."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise ValueError("not a playlist")
    target = 1
    seq = 0
    segs: list[Segment] = []
    ended = False
    init = ""
    disc = False
    pdt: int | None = None
    duration: float | None = None
    for ln in lines[1:]:
        m = _TAG.match(ln)
        if m is None:
            if duration is None or not init:
                raise ValueError(f"a segment without EXTINF or EXT-X-MAP: {ln}")
            if pdt is None:
                pdt = segs[-1].pdt_ms + round(segs[-1].duration * 1000) if segs else 0
            segs.append(Segment(seq, ln, duration, pdt, init, disc))
            seq += 1
            disc, pdt, duration = False, None, None
            continue
        tag, value = m.group(1), m.group(2) or ""
        if tag == "EXT-X-TARGETDURATION":
            target = int(value)
        elif tag == "EXT-X-MEDIA-SEQUENCE":
            seq = int(value)
        elif tag == "EXT-X-DISCONTINUITY":
            disc = True
        elif tag == "EXT-X-MAP":
            mm = _MAP.search(value)
            if mm is None:
                raise ValueError("EXT-X-MAP without URI")
            init = mm.group(1)
        elif tag == "EXT-X-PROGRAM-DATE-TIME":
            pdt = _parse_pdt(value)
        elif tag == "EXTINF":
            duration = float(value.split(",", 1)[0])
            if not math.isfinite(duration) or duration < 0:
                raise ValueError("bad EXTINF")
        elif tag == "EXT-X-ENDLIST":
            ended = True
    return Playlist(target, segs, ended)


def _parse_pdt(value: str) -> int:
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return round(t.timestamp() * 1000)
