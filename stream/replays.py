"""The HLS folders under DATA_DIR/hls as files: which names may be served, what a replay holds,
and the housekeeping (a playlist left open by a crash, replays past their retention).

Everything here is plain file work, run in a thread by its callers. Names that reach the
filesystem are checked against the few that the writer makes, never joined raw.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobcast.core.ids import is_valid_id
from jobcast.stream.hls import INDEX, LIVE, write_atomic
from jobcast.stream.playlist import Playlist, parse

_SERVED = re.compile(r"^(?:live|index)\.m3u8$|^i[0-9]{1,6}\.mp4$|^s[0-9]{1,9}\.m4s$")


def hls_path(root: Path, bid: str, name: str) -> Path | None:
    """The file for `/hls/{bid}/{name}`, or None: unknown names never reach the filesystem."""
    if not is_valid_id(bid) or not _SERVED.match(name):
        return None
    path = root / bid / name
    return path if path.is_file() else None


@dataclass(frozen=True)
class Replay:
    bid: str
    playlist: Playlist
    bytes: int
    modified_at: int  # unix ms, of index.m3u8

    def public(self) -> dict[str, Any]:
        segs = self.playlist.segments
        return {
            "broadcast_id": self.bid,
            "duration": round(self.playlist.duration, 3),
            "bytes": self.bytes,
            "segments": len(segs),
            "ended": self.playlist.ended,
            "started_at": segs[0].pdt_ms if segs else None,
            "modified_at": self.modified_at,
            "playlist": f"/hls/{self.bid}/{INDEX}",
        }


def replay(root: Path, bid: str) -> Replay | None:
    """What `bid`'s HLS folder holds, or None when it has no segment."""
    if not is_valid_id(bid):
        return None
    folder = root / bid
    try:
        index = folder / INDEX
        playlist = parse(index.read_text())
        mtime = index.stat().st_mtime
        size = sum(e.stat().st_size for e in os.scandir(folder) if e.is_file())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    if not playlist.segments:
        return None
    return Replay(bid, playlist, size, int(mtime * 1000))


def delete(root: Path, bid: str) -> bool:
    """Remove `bid`'s HLS folder; False when there was none."""
    if not is_valid_id(bid):
        return False
    folder = root / bid
    if not folder.is_dir():
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return not folder.exists()


def close_playlist(root: Path, bid: str) -> bool:
    """Mark the playlists of a stream that no writer holds any more as ended (a process that
    was killed never wrote ENDLIST, and a replay without it would play as live)."""
    folder = root / bid
    try:
        playlist = parse((folder / INDEX).read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return False
    if playlist.ended or not playlist.segments:
        return False
    playlist.ended = True
    write_atomic(folder / INDEX, playlist.index().encode())
    window = len(parse((folder / LIVE).read_text()).segments) if (folder / LIVE).exists() else 6
    write_atomic(folder / LIVE, playlist.live(max(window, 1)).encode())
    return True


def housekeep(root: Path, live: set[str], retention_days: float) -> dict[str, int]:
    """Close the playlists of streams not live on this box and delete replays not touched for
    `retention_days` (0: keep them). `live`: the broadcasts whose stream a writer holds."""
    closed = deleted = 0
    cutoff = time.time() - retention_days * 86400
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(root):
            if not entry.is_dir() or not is_valid_id(entry.name) or entry.name in live:
                continue
            with contextlib.suppress(OSError):
                if close_playlist(root, entry.name):
                    closed += 1
                if retention_days > 0:
                    index = Path(entry.path) / INDEX
                    stamp = index.stat().st_mtime if index.exists() else entry.stat().st_mtime
                    if stamp < cutoff and delete(root, entry.name):
                        deleted += 1
    return {"closed": closed, "deleted": deleted}
