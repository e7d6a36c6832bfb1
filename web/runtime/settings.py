"""Settings: one frozen dataclass. Each field reads `JOBCAST_<NAME>` from the environment and
`--name` from the command line (the flag wins); its metadata carries the help line that both
`jobcast serve --help` and docs/configuration.md show."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


def _opt(default: Any, help: str, *, cli: bool = True) -> Any:
    return field(default=default, metadata={"help": help, "cli": cli})


@dataclass(frozen=True)
class Settings:
    host: str = _opt("127.0.0.1", "address to listen on")
    port: int = _opt(8080, "TCP port to listen on")
    data_dir: str = _opt("./data", "directory for the embedded Redis, secrets and recordings")
    redis_url: str = _opt(
        "", "Redis URL (redis://, rediss:// or unix://); empty starts an embedded redis-server"
    )
    redis_server: str = _opt("redis-server", "redis-server binary for the embedded Redis")
    redis_appendfsync: str = _opt(
        "always",
        "embedded Redis fsync policy: always (acknowledged writes are on disk, also when the"
        " disk fills) or everysec (faster; a machine crash can lose the last second)",
    )
    workers: int = _opt(1, "worker processes sharing the port (SO_REUSEPORT)")
    demo: bool = _opt(False, "seed a demo broadcast with sample openings and a demo host")
    secret_key: str = _opt(
        "", "key that signs cookies; empty reads or creates DATA_DIR/secret.key", cli=False
    )
    allowed_origins: str = _opt(
        "", "extra origins (comma-separated) allowed for cookie-authenticated requests"
    )
    public_url: str = _opt("", "the public base URL (for links and QR codes); empty: from Host")
    cookie_secure: str = _opt(
        "auto", "Secure cookies: auto (when the request came over TLS), always, never"
    )
    trust_proxy: bool = _opt(
        False, "trust X-Forwarded-For / X-Forwarded-Proto from a reverse proxy"
    )
    trust_proxy_hops: int = _opt(
        1,
        "with trust_proxy: reverse proxies in front that each append to X-Forwarded-For; the"
        " client address is the entry this many from the right",
    )
    http_idle_timeout: float = _opt(
        20.0,
        "seconds a connection may take to send a whole request header, or stay idle between"
        " requests, before it is closed",
    )
    max_body_bytes: int = _opt(64 * 1024, "largest JSON request body in bytes")
    max_upload_bytes: int = _opt(2 * 1024 * 1024, "largest CSV upload in bytes")
    ws_max_frame_bytes: int = _opt(8 * 1024, "largest WebSocket frame a client may send")
    ws_queue_events: int = _opt(
        512, "events queued for one viewer before it is dropped as too slow"
    )
    ws_messages_per_second: float = _opt(
        5.0, "sustained WebSocket frames per second a client may send"
    )
    ws_burst: int = _opt(20, "WebSocket frames a client may send in a burst")
    ws_connections_per_ip: int = _opt(
        500, "WebSocket connections one IP may hold on one process (halls share one IP)"
    )
    ws_heartbeat: float = _opt(30.0, "seconds between WebSocket pings")
    ws_send_frame_bytes: int = _opt(
        256 * 1024,
        "largest text frame the server sends (whole events; one larger event goes alone)",
    )
    ws_close_timeout: float = _opt(
        10.0, "seconds a socket closed as too slow has to take its close frame before it is cut"
    )
    event_history: int = _opt(2000, "public events kept per broadcast for reconnect replay")
    host_event_history: int = _opt(
        2000, "host-only events kept per broadcast (their own stream) for host console replay"
    )
    presence_interval: float = _opt(2.0, "seconds between viewer-count updates")
    session_ttl: int = _opt(12 * 3600, "seconds a host login lasts")
    login_concurrency: int = _opt(
        2, "password checks (argon2, off the event loop) one process runs at once; more wait"
    )
    login_delay_max: float = _opt(
        300.0,
        "longest delay, in seconds, between login attempts to one account from devices that"
        " have not logged in to it, after 5 failures (the delay doubles from 1 s)",
    )
    chat_max_chars: int = _opt(300, "longest chat message or question, in characters")
    chat_recent: int = _opt(200, "chat messages in the snapshot and on the viewer page")
    chat_rate: float = _opt(1.0, "chat messages and questions per second one viewer may send")
    chat_burst: int = _opt(10, "chat messages and questions one viewer may send in a burst")
    chat_ip_rate: float = _opt(
        20.0, "chat messages and questions per second from one IP (halls share one address)"
    )
    chat_ip_burst: int = _opt(60, "chat messages and questions from one IP in a burst")
    chat_review_questions: bool = _opt(True, "questions wait for a moderator's approval")
    chat_review_contacts: bool = _opt(
        True, "chat messages with a phone number, WeChat/QQ id or link wait for approval"
    )
    chat_batch_ms: int = _opt(
        50, "chat messages accepted within this many ms are published as one event; 0: each alone"
    )
    qa_votes_interval: float = _opt(
        0.5, "seconds between vote-count updates to viewers; 0 sends one event per vote"
    )
    qa_votes_per_address: int = _opt(
        3, "viewers from one address (IPv6: one /64) whose votes count for one question"
    )
    log_level: str = _opt("info", "log level: debug, info, warning, error")
    log_json: bool = _opt(True, "log one JSON object per line")
    process_name: str = _opt("", "name of this process in presence and metrics", cli=False)
    apply_per_viewer: int = _opt(
        20, "applications one viewer may submit to one broadcast per apply_window"
    )
    apply_per_ip: int = _opt(
        600, "applications one IP may submit to one broadcast per apply_window (halls share IPs)"
    )
    apply_per_phone: int = _opt(
        20, "applications with one phone number from one IP to one broadcast per apply_window"
    )
    apply_window: int = _opt(600, "seconds of the application rate-limit window")
    application_retention_days: int = _opt(
        180, "days applications are kept; `jobcast purge` deletes older ones"
    )
    media_ice_addresses: str = _opt(
        "", "local addresses for WebRTC ICE candidates, comma-separated; empty: all but loopback"
    )
    media_announce_addresses: str = _opt(
        "", "public address announced in ICE candidates (NAT 1:1): IP, or LOCAL=PUBLIC pairs"
    )
    media_udp_ports: str = _opt("", "UDP port range for WebRTC media, MIN-MAX; empty: any port")
    media_stun_urls: str = _opt(
        "", "STUN URLs handed to WHIP/WHEP clients in Link headers, comma-separated"
    )
    media_turn_urls: str = _opt(
        "", "TURN URLs handed to WHIP/WHEP clients in Link headers, comma-separated"
    )
    media_turn_username: str = _opt("", "static TURN username (without media_turn_secret)")
    media_turn_password: str = _opt("", "static TURN password", cli=False)
    media_turn_secret: str = _opt(
        "", "TURN REST shared secret (coturn use-auth-secret): short-lived credentials", cli=False
    )
    media_video_codecs: str = _opt(
        "H264,VP8", "video codecs accepted from publishers, in order of preference"
    )
    media_max_viewers: int = _opt(
        150, "WHEP viewers this process serves (its egress processes included); then 503"
    )
    media_connect_timeout: float = _opt(
        10.0, "seconds a WHEP viewer has to connect after its offer; then its slot is freed"
    )
    media_pending_per_address: int = _opt(
        4, "WHEP sessions one client address may have still connecting; then 429 (0: no limit)"
    )
    media_egress_processes: int = _opt(
        0, "separate processes that send media to viewers (0: this process does)"
    )
    media_publisher_grace: float = _opt(
        10.0, "seconds a publisher may be gone before its stream ends"
    )
    media_keyframe_interval: float = _opt(
        1.0, "least seconds between keyframe requests to the publisher"
    )
    media_viewer_queue: int = _opt(
        15, "video frames queued for one viewer before it skips to the next keyframe"
    )
    media_record: bool = _opt(False, "record each stream to DATA_DIR/recordings (no re-encoding)")

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    def with_(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = "JOBCAST_" + f.name.upper()
            if name in environ:
                values[f.name] = _convert(f.type, environ[name], name)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        for f in fields(cls):
            if not f.metadata.get("cli", True):
                continue
            flag = "--" + f.name.replace("_", "-")
            if f.type in ("bool", bool):
                parser.add_argument(
                    flag,
                    action=argparse.BooleanOptionalAction,
                    default=None,
                    help=f.metadata["help"],
                )
            else:
                parser.add_argument(
                    flag, default=None, type=_PARSERS[str(f.type)], help=f.metadata["help"]
                )

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


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


_PARSERS = {"str": str, "int": int, "float": float, "bool": _bool}


def _convert(type_name: Any, raw: str, env_name: str) -> Any:
    try:
        return _PARSERS[str(type_name)](raw)
    except ValueError as e:
        raise SystemExit(f"{env_name}: {e}") from None


def documented() -> list[tuple[str, str, Any, str, bool]]:
    """(field, env var, default, help, has a flag) for every setting, for docs and their test."""
    return [
        (
            f.name,
            "JOBCAST_" + f.name.upper(),
            f.default,
            f.metadata["help"],
            f.metadata.get("cli", True),
        )
        for f in fields(Settings)
    ]
