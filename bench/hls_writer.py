"""What writing HLS costs the process that holds the publisher, per stream.

    python bench/hls_writer.py --seconds 60 --runs 5

Feeds bench/media.py's clip (1280x720, 30 fps, ~1.5 Mbps H264 with a keyframe a second,
Opus) through, in one invocation and alternating run by run:
  - the HLS writer (stream/hls.py: fMP4 muxing, AAC transcoding, segment and playlist files),
  - the HLS writer without audio (what the transcoding costs),
  - the recorder (stream/recorder.py: Matroska muxing only), the baseline,
as fast as they take it, into a temporary folder, and prints the CPU time (user + system of
this process) per second of media: the share of a core one live stream takes. Median and
range over the runs.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from jobcast.stream.hls import HlsConfig, HlsWriter
from jobcast.stream.recorder import Recorder
from media import make_clip

FPS = 30


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _feed(write: Callable[[str, bytes, int, bool], object], seconds: int, audio: bool) -> None:
    video, opus = make_clip()
    a = 0
    for i in range(seconds * FPS):
        data, key = video[i % len(video)]
        write("video", data, i * 3000, key)
        while audio and a * 960 / 48000 <= i / FPS:
            write("audio", opus[a % len(opus)], a * 960, True)
            a += 1


def run_hls(folder: Path, seconds: int, audio: bool) -> float:
    w = HlsWriter(HlsConfig(folder), "bench", audio=audio)
    w._q.maxsize = 0  # measure the work, not the queue's drops: take every frame
    start = _cpu()
    _feed(lambda k, d, ts, key: w.write(k, d, ts, key), seconds, audio)
    w.close()
    spent = _cpu() - start
    assert w.segments >= seconds - 2, w.segments
    return spent / seconds


def run_recorder(folder: Path, seconds: int, audio: bool) -> float:
    codecs = {"video": "H264", "audio": "opus"} if audio else {"video": "H264"}
    rec = Recorder(folder / "bench.mkv", codecs)
    rec._q.maxsize = 0
    start = _cpu()
    _feed(
        lambda k, d, ts, key: rec.write(
            k, "H264" if k == "video" else "opus", 90000 if k == "video" else 48000, d, ts, key
        ),
        seconds,
        audio,
    )
    rec.close()
    return (_cpu() - start) / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=60, help="media seconds per run")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    make_clip()
    cases = {
        "recorder (mkv, baseline)": lambda d: run_recorder(d, args.seconds, True),
        "HLS, video only": lambda d: run_hls(d, args.seconds, False),
        "HLS, video + AAC": lambda d: run_hls(d, args.seconds, True),
    }
    got: dict[str, list[float]] = {name: [] for name in cases}
    t0 = time.time()
    for _ in range(args.runs):
        for name, case in cases.items():
            with tempfile.TemporaryDirectory() as tmp:
                got[name].append(case(Path(tmp)))
    print(
        f"{args.runs} runs x {args.seconds} s of 720p30 ~1.5 Mbps + Opus, "
        f"{time.time() - t0:.0f} s in all; CPU per media second (share of one core):"
    )
    base = statistics.median(got["recorder (mkv, baseline)"])
    for name, values in got.items():
        med = statistics.median(values)
        print(
            f"  {name:26} median {med * 100:5.2f} %  range {min(values) * 100:5.2f}"
            f"-{max(values) * 100:5.2f} %  ({med / base:4.1f}x the recorder)"
        )


if __name__ == "__main__":
    main()
