"""Fixtures: a real redis-server, app instances built by create_app, and logged-in clients.

A test that needs a deployment asks for what it uses; the fixtures build it in order:
`client` (an app instance on `redis_url`), `host` (host1 logged in on it), `bid` (a
broadcast host1 created), `opening` (a published opening in it), `stream_key` (its WHIP
key), `client_b` (a second instance on the same Redis), `moderator` (mod1, logged in on an
instance of its own), `other_org_host` (host2 of another organization), `viewers`.
Settings for every instance they start come from `@pytest.mark.app_settings(...)` marks;
a test that asks for `own_redis` gets them all on its private redis-server.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from jobcast.core.event_types import register
from jobcast.web.app import create_app
from jobcast.web.runtime.settings import Settings

from tests import browserkit
from tests.chat_helpers import Viewers
from tests.helpers import Host, login
from tests.openings_helpers import make_opening
from tests.redisproc import RedisProcess

pytest_plugins = ("tests.hangdump",)  # a test near its timeout prints its pending tasks

# Event types only tests publish, `test.tick` and the like, to either audience (the event log
# refuses a type nobody registered).
register("test.*", "either", "published by tests only")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--screenshots",
        action="store_true",
        help="write the browser tests' screenshots to docs/screenshots (the README's pictures)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("--screenshots", default=False):
        import tempfile

        browserkit.SCREENSHOTS = Path(tempfile.mkdtemp(prefix="jobcast-screenshots-"))
    config.addinivalue_line(
        "markers",
        "app_settings(**overrides): Settings for the app instances the fixtures start "
        "(client, client_b, moderator, other_org_host)",
    )


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    proc = RedisProcess(tmp_path_factory.mktemp("redis"), fsync="everysec")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, redis_server: RedisProcess) -> str:
    """The shared server, flushed; a test that asks for `own_redis` gets that one instead, so
    `client`, `host` and `bid` are built on the server it kills."""
    if "own_redis" in request.fixturenames:
        own: RedisProcess = request.getfixturevalue("own_redis")
        return own.url
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A private redis-server for tests that kill it."""
    proc = RedisProcess(tmp_path / "own-redis", fsync="always")
    proc.start()
    yield proc
    proc.stop()


def make_settings(redis_url: str, tmp: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "redis_url": redis_url,
        "data_dir": str(tmp / "data"),
        "secret_key": "test-secret-key",
        "presence_interval": 0.2,
        "log_json": False,
        "ws_heartbeat": 5.0,
    }
    base.update(overrides)
    return Settings(**base)


AppFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def app_factory(tmp_path: Path) -> AsyncIterator[AppFactory]:
    """`await app_factory(redis_url, **settings)` -> a TestClient on a real port."""
    clients: list[TestClient] = []

    async def make(redis_url: str, **overrides: Any) -> TestClient:
        settings = make_settings(redis_url, tmp_path, **overrides)
        client = TestClient(TestServer(create_app(settings), host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for c in reversed(clients):
        await c.close()


@pytest.fixture
def app_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The overrides of the test's `app_settings` marks (none without one).

    Marks merge: the test's own and its parameter's (`pytest.param(...,
    marks=pytest.mark.app_settings(...))`) over the module's `pytestmark`. A test's marks
    should not set the same key twice."""
    merged: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("app_settings"))):
        merged.update(marker.kwargs)
    return merged


@pytest.fixture
async def client(
    app_factory: AppFactory, redis_url: str, app_settings: dict[str, Any]
) -> TestClient:
    return await app_factory(redis_url, **app_settings)


@pytest.fixture
async def client_b(
    app_factory: AppFactory, redis_url: str, app_settings: dict[str, Any]
) -> TestClient:
    """A second instance of the same deployment: same Redis, same settings as `client`."""
    return await app_factory(redis_url, **app_settings)


@pytest.fixture
async def host(client: TestClient) -> Host:
    """host1, logged in on `client`: its cookie jar holds the session, `host.csrf` the token.

    Sockets and requests made with `client` afterwards carry that session, as a browser's
    would after logging in."""
    return await login(client)


@pytest.fixture
async def bid(host: Host) -> str:
    """The id of a broadcast host1 created (scheduled, titled "Test fair")."""
    return await host.create_broadcast()


@pytest.fixture
async def opening(host: Host, bid: str) -> dict[str, Any]:
    """A published opening in `bid` (openings_helpers.opening_body), as the API returned it."""
    return await make_opening(host, bid)


@pytest.fixture
async def stream_key(host: Host, bid: str) -> str:
    """The broadcast's stream key (for WHIP), as the host console makes it."""
    r = await host.post(f"/api/broadcasts/{bid}/stream-key")
    assert r.status == 201, await r.text()
    body = await r.json()
    assert body["stream_key"].startswith("jc_")
    assert body["whip_url"] == f"/whip/{bid}"
    return body["stream_key"]


@pytest.fixture
async def moderator(app_factory: AppFactory, redis_url: str, app_settings: dict[str, Any]) -> Host:
    """mod1, a moderator logged in on an instance of its own (so a cookie jar of its own)."""
    return await login(await app_factory(redis_url, **app_settings), "mod1", "moderator")


@pytest.fixture
async def other_org_host(
    app_factory: AppFactory, redis_url: str, app_settings: dict[str, Any]
) -> Host:
    """host2, a host of another organization (`harbin`), on an instance of its own."""
    return await login(await app_factory(redis_url, **app_settings), "host2", org="harbin")


@pytest.fixture
async def viewers() -> AsyncIterator[Viewers]:
    """Viewer sockets, each on a session of its own; all closed after the test."""
    v = Viewers()
    yield v
    await v.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs of the test's own, for filling a disk (root only: CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
