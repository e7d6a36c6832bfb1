"""The HLS writer (stream/hls.py) fed the frames a publisher sends, without a network: the
inputs that break a naive segmenter (a change of resolution, timestamps that jump, keyframes
that stop coming, a process killed mid-stream) and what a player then reads."""

from __future__ import annotations

import array
import fractions
import io
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import av
import pytest
from jobcast.stream import replays
from jobcast.stream.hls import HlsConfig, HlsWriter
from jobcast.stream.playlist import Playlist, parse

from tests.media_peers import encode_h264

pytestmark = pytest.mark.timeout(60)


def encode_opus(count: int) -> list[bytes]:
    """`count` 20 ms Opus packets of a tone, as a browser sends them."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "stereo", "s16"
    enc.time_base = fractions.Fraction(1, 48000)
    enc.open()
    out: list[bytes] = []
    for i in range(count + 5):
        wave = array.array(
            "h", (int(math.sin((n + i * 960) / 12) * 4000) for n in range(960) for _c in (0, 1))
        )
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        frame.planes[0].update(wave.tobytes())
        frame.sample_rate, frame.pts = 48000, i * 960
        out += [bytes(p) for p in enc.encode(frame)]
    return out[:count]


def feed(
    writer: HlsWriter,
    video: list[bytes],
    *,
    start: int = 0,
    audio: list[bytes] | None = None,
    audio_start: int = 0,
    gop_key: bool = True,
) -> list[bool]:
    """Write `video` at 30 fps from RTP timestamp `start` with 20 ms Opus interleaved; the
    keyframe requests the writer made, per frame."""
    from jobcast.stream.bitstream import is_keyframe

    asked = []
    a = 0
    for i, data in enumerate(video):
        ts = (start + i * 3000) & 0xFFFFFFFF
        asked.append(writer.write("video", data, ts, is_keyframe("H264", data)))
        while audio is not None and a < len(audio) and a * 960 / 48000 <= i / 30:
            writer.write("audio", audio[a], (audio_start + a * 960) & 0xFFFFFFFF, True)
            a += 1
    return asked


def read_all(folder: Path) -> tuple[Playlist, list[tuple[str, int, tuple[int, int]]]]:
    """The ended playlist and, per segment: (name, video frames decoded, frame size)."""
    playlist = parse((folder / "index.m3u8").read_text())
    out = []
    for s in playlist.segments:
        data = (folder / s.init).read_bytes() + (folder / s.name).read_bytes()
        frames = []
        with av.open(io.BytesIO(data), format="mp4") as f:
            for packet in f.demux(video=0):
                try:
                    frames += packet.decode()
                except av.error.InvalidDataError:
                    pass  # a segment that opens without a keyframe, read on its own
        out.append((s.name, len(frames), (frames[0].width, frames[0].height) if frames else (0, 0)))
    return playlist, out


def test_a_change_of_resolution_starts_a_new_period(tmp_path: Path):
    w = HlsWriter(HlsConfig(tmp_path), "abc", audio=True)
    opus = encode_opus(200)
    feed(w, encode_h264(60), audio=opus[:100])
    feed(
        w,
        encode_h264(60, size=(640, 360)),
        start=60 * 3000,
        audio=opus[100:],
        audio_start=100 * 960,
    )
    w.close()
    playlist, segs = read_all(tmp_path / "abc")
    assert playlist.ended
    sizes = [size for _n, _count, size in segs]
    assert sizes[0] == (320, 240) and sizes[-1] == (640, 360)
    change = sizes.index((640, 360))
    assert playlist.segments[change].discontinuity
    assert playlist.segments[change].init != playlist.segments[0].init
    assert not any(s.discontinuity for s in playlist.segments[:change])
    assert all(count > 0 for _n, count, _s in segs)
    assert "#EXT-X-DISCONTINUITY" in (tmp_path / "abc" / "index.m3u8").read_text()


@pytest.mark.parametrize("jump", [+90000 * 60, -90000 * 30], ids=["forward", "back"])
def test_timestamps_that_jump_start_a_new_period(tmp_path: Path, jump: int):
    w = HlsWriter(HlsConfig(tmp_path), "abc", audio=False)
    feed(w, encode_h264(60))
    feed(w, encode_h264(60), start=60 * 3000 + jump)
    w.close()
    playlist, segs = read_all(tmp_path / "abc")
    discs = [s for s in playlist.segments if s.discontinuity]
    assert len(discs) == 1
    assert all(count >= 25 for _n, count, _s in segs)  # each side plays from its keyframe
    # both sides of the jump keep their own length; no segment spans the jump
    assert 3.8 < playlist.duration < 4.2, playlist.duration
    assert all(s.duration < 1.5 for s in playlist.segments)


def test_keyframes_that_stop_coming_keep_segments_short_and_ask_for_more(tmp_path: Path):
    w = HlsWriter(HlsConfig(tmp_path), "abc", audio=False)
    asked = feed(w, encode_h264(240, gop=1000))  # one keyframe, then 8 s without one
    w.close()
    playlist, segs = read_all(tmp_path / "abc")
    assert len(playlist.segments) >= 6
    assert segs[0][1] >= 30  # the one keyframe opens the first segment
    # every EXTINF rounds to at most the target duration (RFC 8216 4.3.3.1)
    assert all(round(s.duration) <= playlist.target for s in playlist.segments)
    assert abs(playlist.duration - 8.0) < 0.1
    # the writer asked for keyframes all along (spaced: not on every frame)
    assert 8 <= sum(asked) <= 30
    text = (tmp_path / "abc" / "index.m3u8").read_text()
    assert text.count("#EXT-X-MAP") == 1


def test_segments_are_about_the_configured_length(tmp_path: Path):
    w = HlsWriter(HlsConfig(tmp_path, segment_seconds=2.0), "abc", audio=True)
    feed(w, encode_h264(300, gop=30), audio=encode_opus(500))
    w.close()
    playlist, segs = read_all(tmp_path / "abc")
    assert playlist.target == 2
    assert [round(s.duration, 1) for s in playlist.segments] == [2.0] * 5
    assert all(count == 60 for _n, count, _s in segs)


_KILLED = textwrap.dedent(
    """
    import signal, sys
    from pathlib import Path
    from jobcast.stream.hls import HlsConfig, HlsWriter
    from jobcast.stream.bitstream import is_keyframe
    from tests.media_peers import encode_h264
    w = HlsWriter(HlsConfig(Path(sys.argv[1])), "abc", audio=False)
    for i, f in enumerate(encode_h264(150)):
        w.write("video", f, i * 3000, is_keyframe("H264", f))
    w.sync()  # everything written: its segments are on disk
    print("ready", flush=True)
    signal.pause()  # until the test kills this process
    """
)


def test_a_killed_process_leaves_a_playlist_that_housekeeping_ends(tmp_path: Path):
    root = tmp_path / "hls"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED, str(root)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    before = parse((root / "abc" / "index.m3u8").read_text())
    assert not before.ended and len(before.segments) >= 3
    # a stream still live somewhere is left alone; one that nobody holds is ended
    assert replays.housekeep(root, {"abc"}, 30) == {"closed": 0, "deleted": 0}
    assert replays.housekeep(root, set(), 30) == {"closed": 1, "deleted": 0}
    after = parse((root / "abc" / "index.m3u8").read_text())
    assert after.ended and after.segments == before.segments
    assert "#EXT-X-ENDLIST" in (root / "abc" / "live.m3u8").read_text()
    # a new session continues after everything on disk, never reusing a name
    on_disk = max(int(p.stem[1:]) for p in (root / "abc").glob("s*.m4s"))
    w = HlsWriter(HlsConfig(root), "abc", audio=False)
    feed(w, encode_h264(60))
    w.close()
    resumed = parse((root / "abc" / "index.m3u8").read_text())
    new = resumed.segments[len(before.segments) :]
    assert new and new[0].discontinuity
    assert int(new[0].name[1:-4]) > on_disk
    assert [s.seq for s in resumed.segments] == list(range(len(resumed.segments)))


def test_retention_deletes_old_replays_only(tmp_path: Path):
    root = tmp_path / "hls"
    for bid in ("aaa", "bbb"):
        w = HlsWriter(HlsConfig(root), bid, audio=False)
        feed(w, encode_h264(40))
        w.close()
    index = root / "aaa" / "index.m3u8"
    stamp = index.stat().st_mtime - 40 * 86400
    os.utime(index, (stamp, stamp))
    assert replays.housekeep(root, set(), 0) == {"closed": 0, "deleted": 0}
    assert replays.housekeep(root, set(), 30) == {"closed": 0, "deleted": 1}
    assert not (root / "aaa").exists() and (root / "bbb" / "index.m3u8").exists()


def test_a_wall_clock_that_jumps_mid_stream_moves_no_segment(tmp_path: Path):
    now = [1_800_000_000.0]
    w = HlsWriter(HlsConfig(tmp_path), "abc", audio=True, clock=lambda: now[0])
    frames, opus = encode_h264(150), encode_opus(250)
    feed(w, frames[:60], audio=opus[:100])
    now[0] -= 3600  # the box's clock is set back an hour in the middle of the stream
    feed(w, frames[60:], start=60 * 3000, audio=opus[100:], audio_start=100 * 960)
    w.close()
    playlist, segs = read_all(tmp_path / "abc")
    assert not any(s.discontinuity for s in playlist.segments)
    starts = [s.pdt_ms for s in playlist.segments]
    assert starts[0] == 1_800_000_000_000
    for a, b in zip(playlist.segments, playlist.segments[1:], strict=False):
        assert b.pdt_ms - a.pdt_ms == round(a.duration * 1000)
    assert all(count > 0 for _n, count, _s in segs)
    for s in playlist.segments:  # the sound goes on too
        data = (tmp_path / "abc" / s.init).read_bytes() + (tmp_path / "abc" / s.name).read_bytes()
        with av.open(io.BytesIO(data), format="mp4") as f:
            assert sum(1 for p in f.demux(audio=0) if p.size) >= 40, s.name


def test_a_new_session_waits_for_the_previous_writer_to_finish(tmp_path: Path):
    first = HlsWriter(HlsConfig(tmp_path), "abc", audio=False)
    feed(first, encode_h264(90))
    # the publisher reconnected: a new writer starts while the first is still finishing
    second = HlsWriter(HlsConfig(tmp_path), "abc", audio=False, after=first)
    feed(second, encode_h264(90))
    first.close()
    second.close()
    playlist, segs = read_all(tmp_path / "abc")
    names = [s.name for s in playlist.segments]
    assert len(names) == len(set(names)) == len(list((tmp_path / "abc").glob("s*.m4s")))
    assert sum(1 for s in playlist.segments if s.discontinuity) == 1
    assert 5.8 < playlist.duration < 6.2
    assert all(count > 0 for _n, count, _s in segs)
