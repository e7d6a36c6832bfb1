"""Per-stage cost of sending one RTP packet to one viewer, in µs, on this machine.

    python bench/sendpath_stages.py [--packets 200000]

Each stage is what the direct send path (stream/sendpath.py) does per packet per viewer,
timed on its own in a tight loop over real objects: packing the 12-byte header, joining it
with the extensions and the ~1,150-byte payload, SRTP protection with a libsrtp session
(pylibsrtp, as aiortc uses), and the datagram leaving through a UDP socket on 127.0.0.1 to a
socket nobody reads (uvloop's transport, the plain socket, and one UDP GSO sendmsg for a
frame of six packets, as the direct path sends video). The kernel's share of a
loopback send includes delivering it into the receiving socket, which a network card would
take off this CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import struct
import sys
import time
from pathlib import Path

from pylibsrtp import Policy, Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobcast.stream.aiortc_internals import srtp_protector

HEAD = struct.Struct("!BBHII")
PAYLOAD = os.urandom(1150)
EXT = bytes.fromhex("bede0002") + b"\x10\x31\x32\x00" + b"\x00\x00\x00\x00"


def _session() -> Session:
    key = os.urandom(30)
    policy = Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND)
    policy.allow_repeat_tx = True
    return Session(policy=policy)


def timed(n: int, fn) -> float:
    t = time.perf_counter()
    fn(n)
    return (time.perf_counter() - t) / n * 1e6


async def amain(n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    srtp = _session()
    protect = srtp.protect
    pack = HEAD.pack

    def header(k: int) -> None:
        for i in range(k):
            pack(0x90, 96, i & 0xFFFF, 1234, 5678)

    def join(k: int) -> None:
        h = pack(0x90, 96, 1, 1234, 5678)
        for _ in range(k):
            h + EXT + PAYLOAD

    plain = pack(0x90, 96, 1, 1234, 5678) + EXT + PAYLOAD

    def srtp_protect(k: int) -> None:
        for _ in range(k):
            protect(plain)

    out["header pack"] = timed(n, header)
    out["join header+ext+payload"] = timed(n, join)
    out["srtp protect (pylibsrtp Session.protect)"] = timed(n, srtp_protect)
    fast = srtp_protector(_session())

    def srtp_fast(k: int) -> None:
        for _ in range(k):
            fast(plain)

    out["srtp protect (srtp_protector)"] = timed(n, srtp_fast)

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)  # overflows: kernel drops
    addr = sink.getsockname()
    data = protect(plain)
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.bind(("127.0.0.1", 0))

    def raw_send(k: int) -> None:
        for _ in range(k):
            raw.sendto(data, addr)

    out["sendto (socket)"] = timed(n, raw_send)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )

    def uv_send(k: int) -> None:
        for _ in range(k):
            transport.sendto(data, addr)

    out[f"sendto ({type(loop).__module__.split('.')[0]} transport)"] = timed(n, uv_send)
    six = data * 6
    cmsg = [(socket.SOL_UDP, 103, struct.pack("=H", len(data)))]  # UDP_SEGMENT

    def gso(k: int) -> None:
        for _ in range(k // 6):
            raw.sendmsg([six], cmsg, 0, addr)

    out["sendmsg, UDP GSO of a 6-packet frame"] = timed(n, gso)
    transport.close()
    raw.close()
    sink.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--packets", type=int, default=200_000)
    args = p.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    res = asyncio.run(amain(args.packets))
    print("| stage | µs per packet |\n|---|---|")
    for k, v in res.items():
        print(f"| {k} | {v:.2f} |")


if __name__ == "__main__":
    main()
