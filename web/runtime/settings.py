"""Settings: one frozen dataclass. Each field reads `JOBCAST_<NAME>` from the environment and
`--name` from the command line (the flag wins); its metadata carries the help line that both
`jobcast serve --help` and docs/configuration.md show, and the kind of value it takes.

Every field is parsed and checked once, when Settings is built: from the environment and
flags as text, from code as text or as the typed value (`Settings(port="8080")` and
`Settings(port=8080)` are the same). A value that doesn't fit raises SettingError, naming the
setting, the value and what it accepts; `jobcast` prints that one line and exits with 2. Lists
(`allowed_origins`, `media_video_codecs`, ...) are tuples from then on.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import ipaddress
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class SettingError(ValueError):
    """A setting's value is not one it accepts: one line naming the setting (its variable and
    flag), the value, and what it accepts."""

    def __init__(
        self, name: str, value: object, accepted: str, *, why: str = "", flag: bool = True
    ) -> None:
        self.name = name
        self.value = value
        self.accepted = accepted
        where = "JOBCAST_" + name.upper()
        if flag:
            where += ", --" + name.replace("_", "-")
        detail = f" ({why})" if why else ""
        super().__init__(
            f"setting {name} ({where}): {value!r} is not accepted{detail}; expected {accepted}"
        )


class _Bad(ValueError):
    """Raised by a kind with a reason worth showing (which item of a list is wrong)."""


# -- kinds of value ------------------------------------------------------------------------------
#
# Each kind turns what it is given (text from the environment or a flag, or a typed value from
# code) into the typed value, raising ValueError when it can't; `accepted` says in words what
# it takes, `spell` writes a value back as text (the default column of docs/configuration.md).


@dataclass(frozen=True)
class Kind:
    accepted: str
    parse: Callable[[object], Any]
    spell: Callable[[Any], str] = str
    flag_is_switch: bool = False


def _text(v: object) -> str:
    if not isinstance(v, str):
        raise ValueError("not text")
    return v


TEXT = Kind("text", _text)


def _path(v: object) -> str:
    return os.fspath(v) if isinstance(v, os.PathLike) else _text(v)


PATH = Kind("a path", _path)


def _truth(v: object) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        t = v.strip().lower()
        if t in ("1", "true", "yes", "on"):
            return True
        if t in ("0", "false", "no", "off", ""):
            return False
    raise ValueError("not a boolean")


BOOL = Kind("true or false (also 1/0, yes/no, on/off)", _truth, flag_is_switch=True)


def _bounds(lo: float | None, hi: float | None, lo_open: bool, noun: str) -> str:
    if lo is not None and hi is not None:
        return f"{noun} from {lo:g} to {hi:g}"
    if lo is not None:
        return f"{noun} {'above' if lo_open else 'of at least'} {lo:g}"
    return noun


def integer(lo: int | None = None, hi: int | None = None) -> Kind:
    def parse(v: object) -> int:
        if isinstance(v, bool):
            raise ValueError("not a whole number")
        if isinstance(v, int):
            n = v
        elif isinstance(v, float) and v.is_integer():
            n = int(v)
        elif isinstance(v, str):
            n = int(v.strip())
        else:
            raise ValueError("not a whole number")
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            raise ValueError("out of range")
        return n

    return Kind(_bounds(lo, hi, False, "a whole number"), parse)


def number(lo: float | None = None, *, above: bool = False) -> Kind:
    """A float; at least `lo`, or above it with `above`."""

    def parse(v: object) -> float:
        if isinstance(v, bool):
            raise ValueError("not a number")
        if isinstance(v, (int, float)):
            x = float(v)
        elif isinstance(v, str):
            x = float(v.strip())
        else:
            raise ValueError("not a number")
        if not math.isfinite(x):
            raise ValueError("not a finite number")
        if lo is not None and (x <= lo if above else x < lo):
            raise ValueError("out of range")
        return x

    return Kind(_bounds(lo, None, above, "a number"), parse)


def choice(*options: str) -> Kind:
    def parse(v: object) -> str:
        t = _text(v).strip().lower()
        if t not in options:
            raise ValueError("not one of the choices")
        return t

    return Kind("one of " + ", ".join(options), parse)


def _items(v: object) -> list[object]:
    if isinstance(v, str):
        return [p.strip() for p in v.split(",") if p.strip()]
    if isinstance(v, Sequence):
        return list(v)
    raise ValueError("not a list")


def listing(item: Callable[[str], str], what: str, *, at_least_one: bool = False) -> Kind:
    """A comma-separated list (or a sequence) of `item`s, as a tuple."""

    def parse(v: object) -> tuple[str, ...]:
        out = []
        for x in _items(v):
            try:
                out.append(item(_text(x).strip()))
            except ValueError:
                raise _Bad(f"the item {x!r}") from None
        if at_least_one and not out:
            raise ValueError("empty")
        return tuple(out)

    first = "a comma-separated list of one or more" if at_least_one else "a comma-separated list of"
    return Kind(f"{first} {what}", parse, ",".join)


def _address(s: str) -> str:
    return str(ipaddress.ip_address(s))


def _origin(s: str) -> str:
    u = urlsplit(s)
    if u.scheme not in ("http", "https") or not u.netloc or u.path not in ("", "/"):
        raise ValueError("not an origin")
    if u.query or u.fragment:
        raise ValueError("not an origin")
    return f"{u.scheme}://{u.netloc}"


def _prefixed(*prefixes: str) -> Callable[[str], str]:
    def check(s: str) -> str:
        if not s.startswith(prefixes):
            raise ValueError("wrong scheme")
        return s

    return check


def _codec(s: str) -> str:
    c = s.upper()
    if c not in ("H264", "VP8"):
        raise ValueError("unknown codec")
    return c


def _url(schemes: tuple[str, ...]) -> Callable[[object], str]:
    def parse(v: object) -> str:
        t = _text(v).strip()
        if not t:
            return ""
        u = urlsplit(t)
        if u.scheme not in schemes or not (u.netloc or u.path):
            raise ValueError("not such a URL")
        return t

    return parse


REDIS_URL = Kind(
    "empty, or a redis://, rediss:// or unix:// URL", _url(("redis", "rediss", "unix"))
)


def _public_url(v: object) -> str:
    t = _text(v).strip()
    if not t:
        return ""
    u = urlsplit(t)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise ValueError("not an http(s) URL")
    return t.rstrip("/")


PUBLIC_URL = Kind("empty, or an http:// or https:// URL", _public_url)


def _webhook_url(v: object) -> str:
    t = _text(v).strip()
    if t and (urlsplit(t).scheme not in ("http", "https") or not urlsplit(t).netloc):
        raise ValueError("not an http(s) URL")
    return t


WEBHOOK_URL = Kind("empty, or an http:// or https:// URL", _webhook_url)


def _port_range(v: object) -> tuple[int, int] | None:
    if v is None:
        return None
    if isinstance(v, str):
        t = v.strip()
        if not t:
            return None
        lo_s, sep, hi_s = t.partition("-")
        lo = int(lo_s)
        hi = int(hi_s) if sep else lo
    elif isinstance(v, Sequence) and len(v) == 2:
        lo, hi = int(v[0]), int(v[1])
    else:
        raise ValueError("not a port range")
    if not (1024 <= lo <= hi <= 65535):
        raise ValueError("out of range")
    return (lo, hi)


PORT_RANGE = Kind(
    "empty, or MIN-MAX within 1024-65535",
    _port_range,
    lambda r: "" if r is None else f"{r[0]}-{r[1]}",
)

Announce = tuple[tuple[str, str], ...]


def _announce(v: object) -> Announce:
    """ "IP" (for every local address, kept as ("*", IP)) or "LOCAL=PUBLIC" pairs."""
    out: list[tuple[str, str]] = []
    for item in _items(v):
        if isinstance(item, str):
            local, sep, public = item.partition("=")
            pair = (local.strip(), public.strip()) if sep else ("*", local.strip())
        elif isinstance(item, Sequence) and len(item) == 2:
            pair = (str(item[0]), str(item[1]))
        else:
            raise ValueError("not an address or a pair")
        try:
            out.append((pair[0] if pair[0] == "*" else _address(pair[0]), _address(pair[1])))
        except ValueError:
            raise _Bad(f"the item {item!r}") from None
    return tuple(out)


ANNOUNCE = Kind(
    "empty, an IP address, or comma-separated LOCAL=PUBLIC address pairs",
    _announce,
    lambda a: ",".join(p if lo == "*" else f"{lo}={p}" for lo, p in a),
)


def _opt(default: Any, help: str, kind: Kind, *, cli: bool = True) -> Any:
    return field(default=default, metadata={"help": help, "cli": cli, "kind": kind})


# -- the settings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    host: str = _opt("127.0.0.1", "address to listen on", TEXT)
    port: int = _opt(8080, "TCP port to listen on", integer(0, 65535))
    data_dir: str = _opt("./data", "directory for the embedded Redis, secrets and recordings", PATH)
    redis_url: str = _opt(
        "",
        "Redis URL (redis://, rediss:// or unix://); empty starts an embedded redis-server",
        REDIS_URL,
    )
    redis_server: str = _opt("redis-server", "redis-server binary for the embedded Redis", TEXT)
    redis_appendfsync: str = _opt(
        "always",
        "embedded Redis fsync policy: always (acknowledged writes are on disk, also when the"
        " disk fills) or everysec (faster; a machine crash can lose the last second)",
        choice("always", "everysec", "no"),
    )
    workers: int = _opt(1, "worker processes sharing the port (SO_REUSEPORT)", integer(1))
    demo: bool = _opt(False, "seed a demo broadcast with sample openings and a demo host", BOOL)
    secret_key: str = _opt(
        "",
        "key that signs cookies; empty reads or creates DATA_DIR/secret.key",
        TEXT,
        cli=False,
    )
    allowed_origins: tuple[str, ...] = _opt(
        (),
        "extra origins (comma-separated) allowed for cookie-authenticated requests",
        listing(_origin, "origins like https://jobs.example.org"),
    )
    public_url: str = _opt(
        "", "the public base URL (for links and QR codes); empty: from Host", PUBLIC_URL
    )
    cookie_secure: str = _opt(
        "auto",
        "Secure cookies: auto (when the request came over TLS), always, never",
        choice("auto", "always", "never"),
    )
    trust_proxy: bool = _opt(
        False, "trust X-Forwarded-For / X-Forwarded-Proto from a reverse proxy", BOOL
    )
    trust_proxy_hops: int = _opt(
        1,
        "with trust_proxy: reverse proxies in front that each append to X-Forwarded-For; the"
        " client address is the entry this many from the right",
        integer(1),
    )
    http_idle_timeout: float = _opt(
        20.0,
        "seconds a connection may take to send a whole request header, or stay idle between"
        " requests, before it is closed",
        number(0, above=True),
    )
    max_body_bytes: int = _opt(64 * 1024, "largest JSON request body in bytes", integer(1))
    max_upload_bytes: int = _opt(2 * 1024 * 1024, "largest CSV upload in bytes", integer(1))
    ws_max_frame_bytes: int = _opt(
        8 * 1024, "largest WebSocket frame a client may send", integer(1)
    )
    ws_queue_events: int = _opt(
        512, "events queued for one viewer before it is dropped as too slow", integer(1)
    )
    ws_messages_per_second: float = _opt(
        5.0, "sustained WebSocket frames per second a client may send", number(0, above=True)
    )
    ws_burst: int = _opt(20, "WebSocket frames a client may send in a burst", integer(1))
    ws_connections_per_ip: int = _opt(
        500,
        "WebSocket connections one IP may hold on one process (halls share one IP)",
        integer(1),
    )
    ws_heartbeat: float = _opt(30.0, "seconds between WebSocket pings", number(0))
    ws_send_frame_bytes: int = _opt(
        256 * 1024,
        "largest text frame the server sends (whole events; one larger event goes alone)",
        integer(1),
    )
    ws_close_timeout: float = _opt(
        10.0,
        "seconds a socket closed as too slow has to take its close frame before it is cut",
        number(0),
    )
    event_history: int = _opt(
        2000, "public events kept per broadcast for reconnect replay", integer(1)
    )
    host_event_history: int = _opt(
        2000,
        "host-only events kept per broadcast (their own stream) for host console replay",
        integer(1),
    )
    presence_interval: float = _opt(
        2.0, "seconds between viewer-count updates", number(0, above=True)
    )
    session_ttl: int = _opt(12 * 3600, "seconds a host login lasts", integer(1))
    login_concurrency: int = _opt(
        2,
        "password checks (argon2, off the event loop) one process runs at once; more wait",
        integer(1),
    )
    login_delay_max: float = _opt(
        300.0,
        "longest delay, in seconds, between login attempts to one account from devices that"
        " have not logged in to it, after 5 failures (the delay doubles from 1 s)",
        number(0),
    )
    chat_max_chars: int = _opt(300, "longest chat message or question, in characters", integer(1))
    chat_recent: int = _opt(200, "chat messages in the snapshot and on the viewer page", integer(0))
    chat_rate: float = _opt(
        1.0,
        "chat messages and questions per second one viewer may send",
        number(0, above=True),
    )
    chat_burst: int = _opt(
        10, "chat messages and questions one viewer may send in a burst", integer(1)
    )
    chat_ip_rate: float = _opt(
        20.0,
        "chat messages and questions per second from one IP (halls share one address)",
        number(0, above=True),
    )
    chat_ip_burst: int = _opt(60, "chat messages and questions from one IP in a burst", integer(1))
    chat_review_questions: bool = _opt(True, "questions wait for a moderator's approval", BOOL)
    chat_review_contacts: bool = _opt(
        True, "chat messages with a phone number, WeChat/QQ id or link wait for approval", BOOL
    )
    chat_batch_ms: int = _opt(
        50,
        "chat messages accepted within this many ms are published as one event; 0: each alone",
        integer(0),
    )
    qa_votes_interval: float = _opt(
        0.5,
        "seconds between vote-count updates to viewers; 0 sends one event per vote",
        number(0),
    )
    qa_votes_per_address: int = _opt(
        3,
        "viewers from one address (IPv6: one /64) whose votes count for one question",
        integer(1),
    )
    log_level: str = _opt(
        "info",
        "log level: debug, info, warning, error",
        choice("debug", "info", "warning", "error", "critical"),
    )
    log_json: bool = _opt(True, "log one JSON object per line", BOOL)
    process_name: str = _opt("", "name of this process in presence and metrics", TEXT, cli=False)
    apply_per_viewer: int = _opt(
        20, "applications one viewer may submit to one broadcast per apply_window", integer(1)
    )
    apply_per_ip: int = _opt(
        600,
        "applications one IP may submit to one broadcast per apply_window (halls share IPs)",
        integer(1),
    )
    apply_per_phone: int = _opt(
        20,
        "applications with one phone number from one IP to one broadcast per apply_window",
        integer(1),
    )
    apply_window: int = _opt(600, "seconds of the application rate-limit window", integer(1))
    report_hold_threshold: int = _opt(
        5,
        "distinct viewers reporting a card (counted per address, see report_per_address) that "
        "take it off viewers' pages until a host reviews it",
        integer(1),
    )
    report_per_address: int = _opt(
        2, "reporters from one address (IPv6: one /64) that count towards a hold", integer(1)
    )
    report_per_ip: int = _opt(
        30, "card reports one address may send per hour (to every card together)", integer(1)
    )
    application_retention_days: int = _opt(
        180, "days applications are kept; `jobcast purge` deletes older ones", integer(0)
    )
    interview_reminder_minutes: int = _opt(
        60, "minutes before a booked interview its reminder notice is queued", integer(1)
    )
    media_ice_addresses: tuple[str, ...] = _opt(
        (),
        "local addresses for WebRTC ICE candidates, comma-separated; empty: all but loopback",
        listing(_address, "IP addresses"),
    )
    media_announce_addresses: tuple[tuple[str, str], ...] = _opt(
        (),
        "public address announced in ICE candidates (NAT 1:1): IP, or LOCAL=PUBLIC pairs",
        ANNOUNCE,
    )
    media_udp_ports: tuple[int, int] | None = _opt(
        None, "UDP port range for WebRTC media, MIN-MAX; empty: any port", PORT_RANGE
    )
    media_stun_urls: tuple[str, ...] = _opt(
        (),
        "STUN URLs handed to WHIP/WHEP clients in Link headers, comma-separated",
        listing(_prefixed("stun:", "stuns:"), "stun: or stuns: URLs"),
    )
    media_turn_urls: tuple[str, ...] = _opt(
        (),
        "TURN URLs handed to WHIP/WHEP clients in Link headers, comma-separated",
        listing(_prefixed("turn:", "turns:"), "turn: or turns: URLs"),
    )
    media_turn_username: str = _opt("", "static TURN username (without media_turn_secret)", TEXT)
    media_turn_password: str = _opt("", "static TURN password", TEXT, cli=False)
    media_turn_secret: str = _opt(
        "",
        "TURN REST shared secret (coturn use-auth-secret): short-lived credentials",
        TEXT,
        cli=False,
    )
    media_video_codecs: tuple[str, ...] = _opt(
        ("H264", "VP8"),
        "video codecs accepted from publishers, in order of preference",
        listing(_codec, "H264 and VP8", at_least_one=True),
    )
    media_max_viewers: int = _opt(
        150,
        "WHEP viewers this process serves (its egress processes included), then 503 (0: no limit)",
        integer(0),
    )
    media_connect_timeout: float = _opt(
        10.0,
        "seconds a WHEP viewer has to connect after its offer; then its slot is freed",
        number(0, above=True),
    )
    media_pending_per_address: int = _opt(
        4,
        "WHEP sessions one client address may have still connecting; then 429 (0: no limit)",
        integer(0),
    )
    media_egress_processes: int = _opt(
        0,
        "separate processes that send media to viewers (0: this process does; -1: one per core"
        " when the box has more than one, else 0)",
        integer(-1),
    )
    media_send_path: str = _opt(
        "direct",
        "how viewers' RTP is sent: direct (one loop per frame writes every viewer's packets)"
        " or aiortc (a sender per viewer, the earlier path)",
        choice("direct", "aiortc"),
        cli=False,
    )
    media_publisher_grace: float = _opt(
        10.0, "seconds a publisher may be gone before its stream ends", number(0)
    )
    media_keyframe_interval: float = _opt(
        1.0, "least seconds between keyframe requests to the publisher", number(0)
    )
    media_viewer_queue: int = _opt(
        15,
        "video frames queued for one viewer before it skips to the next keyframe",
        integer(1),
    )
    media_record: bool = _opt(
        False, "record each stream to DATA_DIR/recordings (no re-encoding)", BOOL
    )
    hls: bool = _opt(
        True,
        "write each H264 stream as HLS to DATA_DIR/hls and serve it at /hls/ (for viewers past"
        " the WebRTC relay's room, and the replay)",
        BOOL,
    )
    hls_segment_seconds: float = _opt(
        1.0, "HLS segment length in seconds (cut at the publisher's keyframes)", number(0.5)
    )
    hls_window: int = _opt(6, "segments in the live HLS playlist", integer(3, 100))
    hls_audio_bitrate: int = _opt(
        64000, "AAC bit rate of the HLS audio, bits per second", integer(16000, 320000)
    )
    hls_public_base_url: str = _opt(
        "",
        "where viewers fetch HLS from, such as a CDN in front of /hls/ (empty: this server)",
        PUBLIC_URL,
    )
    hls_retention_days: float = _opt(
        30.0, "days an ended broadcast's replay is kept (0: kept until deleted)", number(0)
    )
    notifier_url: str = _opt(
        "",
        "webhook the notifier POSTs each notice to (status changes, interviews, reminders: the"
        " employment center's SMS or WeChat gateway); empty: off, notices wait in the outbox",
        WEBHOOK_URL,
    )
    notifier_secret: str = _opt(
        "",
        "key of the notifier's HMAC-SHA256 signature (X-Jobcast-Signature); needed with"
        " notifier_url",
        TEXT,
        cli=False,
    )
    notifier_timeout: float = _opt(
        10.0,
        "seconds one webhook request may take before it counts as failed",
        number(0, above=True),
    )
    notifier_max_attempts: int = _opt(
        8, "webhook attempts per notice before it goes to the dead letters", integer(1)
    )
    notifier_backoff_base: float = _opt(
        2.0,
        "seconds before the second attempt; each further one waits twice as long (with jitter)",
        number(0),
    )
    notifier_backoff_max: float = _opt(
        600.0, "longest wait in seconds between two attempts of one notice", number(0)
    )
    notifier_claim_after: float = _opt(
        60.0,
        "seconds a notice read by a process stays unanswered before another process takes it"
        " over (the first one crashed)",
        number(0, above=True),
    )
    notifier_max_age: float = _opt(
        172800.0,
        "seconds after its creation a notice is still sent; older ones go to the dead letters"
        " (0: no limit)",
        number(0),
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            kind: Kind = f.metadata["kind"]
            raw = getattr(self, f.name)
            try:
                value = kind.parse(raw)
            except (ValueError, TypeError) as e:
                why = str(e) if isinstance(e, _Bad) else ""
                cli = f.metadata.get("cli", True)
                raise SettingError(f.name, raw, kind.accepted, why=why, flag=cli) from None
            object.__setattr__(self, f.name, value)
        if self.notifier_url and not self.notifier_secret:
            raise SettingError(
                "notifier_secret",
                "",
                "a key shared with the receiver whenever notifier_url is set",
                flag=False,
            )

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @functools.cached_property
    def trusted_origins(self) -> frozenset[str]:
        """The origins cookie-authenticated requests may come from besides this server's own:
        `allowed_origins` and the origin of `public_url`."""
        out = set(self.allowed_origins)
        if self.public_url:
            u = urlsplit(self.public_url)
            out.add(f"{u.scheme}://{u.netloc}")
        return frozenset(out)

    @functools.cached_property
    def allowed_hosts(self) -> frozenset[str]:
        """The host[:port] of each of `allowed_origins`."""
        return frozenset(urlsplit(o).netloc for o in self.allowed_origins)

    def with_(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from `JOBCAST_<NAME>` variables, then `overrides` (SettingError if bad)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = "JOBCAST_" + f.name.upper()
            if name in environ:
                values[f.name] = environ[name]
        values.update(overrides)
        return cls(**values)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One flag per setting; the values stay text until Settings parses them."""
        for f in fields(cls):
            if not f.metadata.get("cli", True):
                continue
            flag = "--" + f.name.replace("_", "-")
            if f.metadata["kind"].flag_is_switch:
                parser.add_argument(
                    flag,
                    action=argparse.BooleanOptionalAction,
                    default=None,
                    help=f.metadata["help"],
                )
            else:
                parser.add_argument(flag, default=None, help=f.metadata["help"])

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None
    ) -> Settings:
        overrides = {
            f.name: getattr(args, f.name)
            for f in fields(cls)
            if getattr(args, f.name, None) is not None
        }
        return cls.from_env(environ, **overrides)


def documented() -> list[tuple[str, str, str, str, bool]]:
    """(field, env var, default as text, help, has a flag) for every setting, for the docs and
    their test."""
    return [
        (
            f.name,
            "JOBCAST_" + f.name.upper(),
            f.metadata["kind"].spell(f.default),
            f.metadata["help"],
            f.metadata.get("cli", True),
        )
        for f in fields(Settings)
    ]
