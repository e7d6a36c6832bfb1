"""Fixtures: a real redis-server, app instances built by create_app, and logged-in clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from jobcast.web.app import create_app
from jobcast.web.runtime.settings import Settings

from tests import browserkit
from tests.redisproc import RedisProcess


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


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    proc = RedisProcess(tmp_path_factory.mktemp("redis"), fsync="everysec")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> str:
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
async def client(app_factory: AppFactory, redis_url: str) -> TestClient:
    return await app_factory(redis_url)
