"""What the relay needs to know about an encoded frame without decoding it: is it a keyframe,
and (H264) which parameter sets a viewer needs before it can start."""

from __future__ import annotations

H264_IDR = 5
H264_SPS = 7
H264_PPS = 8
START = b"\x00\x00\x00\x01"


def h264_nal_units(data: bytes) -> list[bytes]:
    """Split an Annex B stream into NAL units (start codes removed)."""
    out: list[bytes] = []
    i = data.find(b"\x00\x00\x01")
    while i != -1:
        start = i + 3
        j = data.find(b"\x00\x00\x01", start)
        if j == -1:
            out.append(data[start:])
            break
        end = j - 1 if data[j - 1] == 0 else j
        out.append(data[start:end])
        i = j
    return [n for n in out if n]


def h264_types(data: bytes) -> set[int]:
    return {n[0] & 0x1F for n in h264_nal_units(data)}


def is_keyframe(codec: str, data: bytes) -> bool:
    """True when a decoder can start at this frame (audio frames always can)."""
    name = codec.upper()
    if name == "H264":
        return H264_IDR in h264_types(data)
    if name == "VP8":
        # VP8 frame tag: bit 0 is 0 for a key frame (RFC 6386 section 9.1).
        return bool(data) and not data[0] & 0x01
    return True


class H264ParameterSets:
    """Remembers the latest SPS/PPS and puts them in front of an IDR that lacks them.

    Browsers repeat SPS/PPS before every IDR; some encoders send them only once, at the start,
    which would leave every later viewer (and the recorder) unable to decode.
    """

    def __init__(self) -> None:
        self.sps: bytes | None = None
        self.pps: bytes | None = None

    def fix(self, data: bytes) -> tuple[bytes, bool]:
        """(frame, is_keyframe) with the parameter sets prepended where needed."""
        units = h264_nal_units(data)
        types = {n[0] & 0x1F for n in units}
        for n in units:
            t = n[0] & 0x1F
            if t == H264_SPS:
                self.sps = n
            elif t == H264_PPS:
                self.pps = n
        key = H264_IDR in types
        if key and (H264_SPS not in types or H264_PPS not in types) and self.sps and self.pps:
            data = START + self.sps + START + self.pps + data
        return data, key


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def bit(self) -> int:
        byte = self.data[self.pos >> 3]  # IndexError past the end: the caller gives up
        b = (byte >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return b

    def bits(self, n: int) -> int:
        v = 0
        for _ in range(n):
            v = (v << 1) | self.bit()
        return v

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _unescape(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def h264_dimensions(sps: bytes) -> tuple[int, int] | None:
    """Picture width and height from an SPS NAL unit (with its header byte), or None."""
    try:
        r = _Bits(_unescape(sps[1:]))
        profile = r.bits(8)
        r.bits(16)  # constraint flags, level
        r.ue()  # seq_parameter_set_id
        chroma = 1
        if profile in _HIGH_PROFILES:
            chroma = r.ue()
            if chroma == 3:
                r.bit()
            r.ue()
            r.ue()
            r.bit()
            if r.bit():  # seq_scaling_matrix_present_flag
                for i in range(8 if chroma != 3 else 12):
                    if r.bit():
                        last, nxt = 8, 8
                        for _ in range(16 if i < 6 else 64):
                            if nxt:
                                nxt = (last + r.se() + 256) % 256
                            last = nxt or last
        r.ue()  # log2_max_frame_num_minus4
        poc_type = r.ue()
        if poc_type == 0:
            r.ue()
        elif poc_type == 1:
            r.bit()
            r.se()
            r.se()
            for _ in range(r.ue()):
                r.se()
        r.ue()  # max_num_ref_frames
        r.bit()
        width_mbs = r.ue() + 1
        height_units = r.ue() + 1
        frame_mbs_only = r.bit()
        if not frame_mbs_only:
            r.bit()
        r.bit()
        width = width_mbs * 16
        height = height_units * 16 * (2 - frame_mbs_only)
        if r.bit():  # frame_cropping_flag
            left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
            cx = 2 if chroma in (1, 2) else 1
            cy = (2 if chroma == 1 else 1) * (2 - frame_mbs_only)
            width -= (left + right) * cx
            height -= (top + bottom) * cy
        return (width, height) if width > 0 and height > 0 else None
    except (IndexError, ValueError):
        return None


def vp8_dimensions(frame: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 key frame header (RFC 6386 section 9.1), or None."""
    if len(frame) < 10 or frame[0] & 1 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    return (width, height) if width and height else None


def dimensions(codec: str, frame: bytes) -> tuple[int, int] | None:
    if codec.upper() == "VP8":
        return vp8_dimensions(frame)
    for nal in h264_nal_units(frame):
        if nal[0] & 0x1F == H264_SPS:
            return h264_dimensions(nal)
    return None
