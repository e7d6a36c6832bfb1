"""Settings are typed and checked once, when they are built: a bad value names the setting,
the value and what it accepts, as `Settings(...)` (SettingError) and as `jobcast serve` (that
one line on stderr, exit code 2, nothing started)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest
from jobcast.web.runtime.settings import SettingError, Settings

from tests.servekit import JOBCAST, env

# (setting, bad value as text, what the message must name as accepted)
BAD = [
    ("cookie_secure", "alway", "one of auto, always, never"),
    ("port", "80a", "a whole number from 0 to 65535"),
    ("ws_burst", "0", "a whole number of at least 1"),
    ("presence_interval", "-1", "a number above 0"),
    ("allowed_origins", "https://jobs.example.org,jobs2.example.org", "origins like"),
    ("media_video_codecs", "H264,H265", "H264 and VP8"),
    ("media_udp_ports", "9-20", "MIN-MAX within 1024-65535"),
    ("log_json", "maybe", "true or false"),
]


@pytest.mark.parametrize(("name", "value", "accepted"), BAD)
def test_a_bad_value_names_the_setting_the_value_and_what_it_accepts(name, value, accepted):
    with pytest.raises(SettingError) as caught:
        Settings(**{name: value})
    e = caught.value
    assert (e.name, e.value) == (name, value)
    text = str(e)
    assert text.startswith(f"setting {name} (JOBCAST_{name.upper()}, --{name.replace('_', '-')})")
    assert repr(value) in text and accepted in text and "\n" not in text


def test_the_bad_item_of_a_list_is_named():
    with pytest.raises(SettingError, match=r"the item 'H265'"):
        Settings(media_video_codecs="H264, H265")
    with pytest.raises(SettingError, match=r"the item 'jobs2.example.org'"):
        Settings(allowed_origins="https://jobs.example.org, jobs2.example.org")
    with pytest.raises(SettingError, match=r"one or more H264 and VP8"):
        Settings(media_video_codecs=" , ")


def test_values_are_typed_once_and_text_or_typed_values_give_the_same_settings():
    s = Settings(
        port="9000",
        trust_proxy="yes",
        http_idle_timeout="5",
        cookie_secure=" Always ",
        allowed_origins="https://jobs.example.org/, http://hall.example:8080",
        public_url="https://live.example.org/",
        media_video_codecs="vp8,h264",
        media_ice_addresses="127.0.0.1, ::1",
        media_udp_ports="40000-40100",
        media_announce_addresses="10.0.0.5=203.0.113.7",
    )
    assert s.port == 9000 and s.trust_proxy is True and s.http_idle_timeout == 5.0
    assert s.cookie_secure == "always"
    assert s.allowed_origins == ("https://jobs.example.org", "http://hall.example:8080")
    assert s.public_url == "https://live.example.org"
    assert s.trusted_origins == {
        "https://jobs.example.org",
        "http://hall.example:8080",
        "https://live.example.org",
    }
    assert s.allowed_hosts == {"jobs.example.org", "hall.example:8080"}
    assert s.media_video_codecs == ("VP8", "H264")
    assert s.media_ice_addresses == ("127.0.0.1", "::1")
    assert s.media_udp_ports == (40000, 40100)
    assert s.media_announce_addresses == (("10.0.0.5", "203.0.113.7"),)
    typed = Settings(port=9000, media_video_codecs=("VP8", "H264"), media_udp_ports=(40000, 40100))
    assert (typed.port, typed.media_video_codecs, typed.media_udp_ports) == (
        9000,
        ("VP8", "H264"),
        (40000, 40100),
    )
    # The supervisor hands its workers the settings as JSON.
    assert Settings(**json.loads(json.dumps(dataclasses.asdict(s)))) == s
    assert s.with_(port=9001).allowed_origins == s.allowed_origins


def test_from_env_parses_the_variables_and_overrides_win():
    s = Settings.from_env(
        {"JOBCAST_PORT": "9100", "JOBCAST_MEDIA_VIDEO_CODECS": "VP8"}, media_video_codecs="H264"
    )
    assert s.port == 9100 and s.media_video_codecs == ("H264",)
    with pytest.raises(SettingError, match="JOBCAST_COOKIE_SECURE"):
        Settings.from_env({"JOBCAST_COOKIE_SECURE": "sometimes"})


def _serve(tmp_path: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*JOBCAST, "serve", "--data-dir", str(tmp_path / "data"), *args],
        env=env(**extra_env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("how", "name", "value", "accepted"),
    [
        ("env", "cookie_secure", "alway", "one of auto, always, never"),
        ("flag", "port", "80a", "a whole number from 0 to 65535"),
        ("flag", "allowed_origins", "jobs.example.org", "origins like"),
        ("env", "media_video_codecs", "H265", "H264 and VP8"),
    ],
)
def test_serve_with_a_bad_value_exits_2_with_one_line(tmp_path, how, name, value, accepted):
    if how == "env":
        r = _serve(tmp_path, **{f"JOBCAST_{name.upper()}": value})
    else:
        r = _serve(tmp_path, f"--{name.replace('_', '-')}={value}")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"jobcast: setting {name} (JOBCAST_{name.upper()}")
    assert repr(value) in lines[0] and accepted in lines[0]
    assert not (tmp_path / "data").exists()  # stopped before taking the data directory
