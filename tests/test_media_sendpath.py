"""The direct send path (stream/sendpath.py) with real aiortc peers on 127.0.0.1: packets the
network loses are sent again on the viewer's NACK (no keyframe storm), and a viewer whose
packets cannot leave the box skips to the next keyframe while the others play on.

Loss and a slow link are real, made by the kernel for the one viewer's UDP port only and
removed by the test: nftables drops 5 % of its datagrams (this kernel has no netem), an HTB
class on `lo` sends them at 64 kbit/s. That needs root (and nft) inside the loopback-only
namespace that scripts/test.sh makes; elsewhere these tests skip.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from jobcast.stream import sendpath
from jobcast.web.api.media import MEDIA

from tests.media_peers import Publisher, Viewer
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.media,
    pytest.mark.timeout(90),
    pytest.mark.app_settings(media_ice_addresses="127.0.0.1", media_publisher_grace=3.0),
]


def _only_loopback() -> bool:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=False)
    names = {line.split(":")[1].strip() for line in out.stdout.splitlines() if ":" in line}
    return names == {"lo"}


def _need(tool: str) -> None:
    if os.geteuid() != 0 or not shutil.which(tool):
        pytest.skip(f"needs root and {tool} (run through scripts/test.sh)")
    if not _only_loopback():
        pytest.skip("the network is only changed inside a loopback-only namespace")


def _run(*cmd: str, stdin: str | None = None) -> None:
    subprocess.run(cmd, input=stdin, text=True, check=True, capture_output=True)


@contextlib.contextmanager
def loss_to_port(port: int, percent: int) -> Iterator[None]:
    """The kernel drops `percent` % of the UDP datagrams to `port` (nftables), nothing else.

    (This kernel has no netem; nftables' random numbers drop the same way.)"""
    _run(
        "nft", "-f", "-",
        stdin="table inet jobcast_loss {\n chain out {\n type filter hook output priority 0;\n"
        f" udp dport {port} numgen random mod 100 < {percent} drop\n }}\n}}\n",
    )  # fmt: skip
    try:
        yield
    finally:
        subprocess.run(["nft", "delete", "table", "inet", "jobcast_loss"], check=False)


@contextlib.contextmanager
def slow_link_to_port(port: int, rate: str) -> Iterator[None]:
    """UDP datagrams to `port` leave at `rate` (an HTB class on lo); everything else as before.

    The datagrams waiting in the class count against the sending socket's buffer, so a small
    buffer fills and the kernel refuses more: the sender's transport has to hold them."""
    _run("tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "1")
    try:
        _run("tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:1", "htb",
             "rate", "10gbit")  # fmt: skip
        _run("tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:2", "htb",
             "rate", rate, "ceil", rate)  # fmt: skip
        _run(
            "tc", "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1",
            "u32", "match", "ip", "protocol", "17", "0xff",
            "match", "ip", "dport", str(port), "0xffff", "flowid", "1:2",
        )  # fmt: skip
        yield
    finally:
        subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], check=False)


def _port(sdp: str) -> int:
    m = re.search(r"a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 (\d+) typ host", sdp)
    assert m, sdp
    return int(m.group(1))


def _coverage(frames) -> float:
    stamps = {f[1] for f in frames}
    return len(stamps) / (max(stamps) - min(stamps) + 1) if stamps else 0.0


def _increasing(frames) -> bool:
    return all(b[1] > a[1] for a, b in itertools.pairwise(frames))


def _count_keyframe_requests(pub: Publisher) -> list[float]:
    sender = next(t.sender for t in pub.pc.getTransceivers() if t.kind == "video")
    times: list[float] = []
    original = sender._send_keyframe

    def counted() -> None:
        times.append(time.monotonic())
        original()

    sender._send_keyframe = counted
    return times


async def test_five_percent_loss_is_repaired_by_nack_without_a_keyframe_storm(
    client, bid, stream_key
):
    _need("nft")
    media = client.server.app[MEDIA]
    assert media.egress.send_path == "direct"
    pub = Publisher(client, bid, stream_key)
    await pub.publish()
    requests = _count_keyframe_requests(pub)
    lossy, clean = Viewer(client, bid), Viewer(client, bid)
    await lossy.play()
    await clean.play()
    await lossy.wait_frames(15, timeout=15)
    await clean.wait_frames(15, timeout=15)
    # the same stretch without loss first: the keyframe requests the publisher gets anyway
    # (about one a second: the HLS writer asks for one per 1 s segment, as aiortc's encoder
    # sends keyframes rarely on its own, and requests are spaced by media_keyframe_interval)
    quiet, ahead = time.monotonic(), len(lossy.frames)
    await lossy.wait_frames(ahead + 150, timeout=30)
    baseline = len([t for t in requests if t >= quiet])
    quiet_span = time.monotonic() - quiet
    with loss_to_port(_port(lossy.offer), 5):
        start, before = time.monotonic(), len(lossy.frames)
        await lossy.wait_frames(before + 150, timeout=30)  # about 5 s of 30 fps
        during = lossy.frames[before:]
        span = time.monotonic() - start
        resent = media.stats()["retransmitted"]
    storm = [t for t in requests if t >= start]
    print(
        {
            "seconds": round(span, 1),
            "coverage": round(_coverage(during), 3),
            "retransmitted": resent,
            "keyframe_requests": len(storm),
            "keyframe_requests_without_loss": baseline,
            "publisher_fps": round(pub.fps(), 1),
            "viewer_fps": round(lossy.fps(), 1),
        }
    )
    assert resent > 0, "no NACK was answered"
    assert _increasing(during)
    assert _coverage(during) > 0.9  # nearly every frame decoded: lost packets came back
    # a keyframe request per lost packet would be dozens; a spaced one or two more may happen
    # compared as rates: the lossy stretch may take longer than the quiet one
    assert len(storm) <= baseline * span / quiet_span + 2
    assert _coverage(clean.frames[before:]) > 0.9
    for v in (lossy, clean):
        await v.close()
    await pub.delete()
    await pub.close()


async def test_a_viewer_whose_packets_cannot_leave_skips_to_a_keyframe(
    client, bid, stream_key, monkeypatch
):
    _need("tc")
    media = client.server.app[MEDIA]
    pub = Publisher(client, bid, stream_key)
    await pub.publish()
    slow, steady = Viewer(client, bid), Viewer(client, bid)
    await slow.play()
    await steady.play()
    await slow.wait_frames(10, timeout=15)
    await steady.wait_frames(10, timeout=15)
    sid = slow.location.rsplit("/", 1)[1]
    track = next(t for t in media.egress.peers[sid].tracks if t.kind == "video")
    fan = media.egress.fanouts[bid]
    sender = next(s for s in fan.senders["video"] if s.track is track)
    # a send buffer of a few packets on the server's socket for this viewer, and a link to it
    # that holds packets back: its datagrams wait in the server's transport
    sock = sender.ctx.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    monkeypatch.setattr(sendpath, "LAG_BYTES", 2000)
    before = len(slow.frames)
    skipped = track.skipped
    with slow_link_to_port(_port(slow.offer), "64kbit"):
        await wait_until(
            lambda: track.lagged >= 1 and track.skipped > skipped + 30,
            20,
            "the relay to find the viewer lagging and skip a second of frames",
        )
    during = len(slow.frames)
    await slow.wait_frames(during + 60, timeout=20)  # the link is back: it plays again
    seen = slow.frames[before - 1 :]
    assert _increasing(seen)
    # it skipped what it could not get (from keyframe to keyframe while the link was slow) ...
    missed = sum(b[1] - a[1] - 1 for a, b in itertools.pairwise(seen))
    assert missed >= 20
    # ... and once the link is back, plays every frame again
    assert _coverage(slow.frames[during + 30 :]) > 0.9
    steady_track = next(
        t for t in media.egress.peers[steady.location.rsplit("/", 1)[1]].tracks if t.kind == "video"
    )
    assert steady_track.lagged == 0 and _coverage(steady.frames) > 0.9
    for v in (slow, steady):
        await v.close()
    await pub.delete()
    await pub.close()


def test_gso_groups_are_runs_of_one_size_ending_with_a_shorter_one():
    from jobcast.stream.sendpath import _gso_groups

    def sizes(*n: int) -> list[bytes]:
        return [b"x" * k for k in n]

    # aiortc's H264 packetizer: the larger fragments first, one byte longer than the rest
    assert _gso_groups(sizes(1201, 1201, 1200, 1200, 300)) == [(0, 3), (3, 5)]
    assert _gso_groups(sizes(20, 1200, 1200)) == [(0, 1), (1, 3)]
    assert _gso_groups(sizes(*[1200] * 40)) == [(0, 32), (32, 40)]  # 32 datagrams a call
    assert _gso_groups(sizes(900)) == [(0, 1)]
