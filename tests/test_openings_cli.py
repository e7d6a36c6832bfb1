"""`jobcast purge` against a configured Redis and the embedded one; the demo seeds openings."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import redis
from jobcast.core import keys
from jobcast.web.runtime.settings import Settings

JOBCAST = [sys.executable, "-m", "jobcast"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["JOBCAST_LOG_JSON"] = "0"
    return env


def _fake_application(r: redis.Redis, bid: str, aid: str, oid: str, age_days: float) -> None:
    created = int((time.time() - age_days * 86400) * 1000)
    r.hset(keys.application(bid, aid), mapping={"id": aid, "opening_id": oid, "phone": "+1"})
    r.zadd(keys.applications(bid), {aid: created})
    r.zadd(keys.opening_applications(bid, oid), {aid: created})


def test_purge_uses_the_retention_setting(redis_url: str):
    r = redis.Redis.from_url(redis_url)
    bid = "purgeb22"
    r.zadd(keys.BROADCAST_INDEX, {bid: 1})
    _fake_application(r, bid, "agedapp22", "pqn22222", 200)
    _fake_application(r, bid, "agedapp33", "pqn22222", 40)
    _fake_application(r, bid, "newapp222", "pqn22222", 1)
    env = {**_env(), "JOBCAST_APPLICATION_RETENTION_DAYS": "180"}
    out = subprocess.run(
        [*JOBCAST, "purge", "--redis-url", redis_url],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "1 deleted" in out.stdout
    left = {x.decode() for x in r.zrange(keys.applications(bid), 0, -1)}
    assert left == {"agedapp33", "newapp222"}
    assert not r.exists(keys.application(bid, "agedapp22"))
    out = subprocess.run(
        [*JOBCAST, "purge", "--redis-url", redis_url, "--days", "30"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0 and "1 deleted" in out.stdout
    assert {x.decode() for x in r.zrange(keys.applications(bid), 0, -1)} == {"newapp222"}
    assert r.zcard(keys.opening_applications(bid, "pqn22222")) == 1
    r.close()


def test_purge_on_the_embedded_redis_and_demo_seed(tmp_path: Path):
    import asyncio

    from jobcast.web.runtime.demo import seed
    from jobcast.web.runtime.embedded_redis import EmbeddedRedis

    emb = EmbeddedRedis(tmp_path)
    url = emb.start()
    try:
        info = asyncio.run(seed(Settings(redis_url=url, data_dir=str(tmp_path))))
        r = redis.Redis(unix_socket_path=str(emb.socket))
        bid = info["broadcast_id"]
        assert r.hlen(keys.openings(bid)) == 5
        assert r.hget(keys.pinned(bid), "opening_id") is not None
        _fake_application(r, bid, "agedapp22", "pqn22222", 400)
        r.close()
    finally:
        emb.stop()
    out = subprocess.run(
        [*JOBCAST, "purge", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "1 deleted" in out.stdout
