"""Viewer reports: one per viewer, counted per address, a hold past the threshold that every
viewer sees on every process, and the hosts' review (real Redis, HTTP and sockets)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from tests.chat_helpers import Viewers
from tests.helpers import Host, connect, fence
from tests.openings_helpers import make_opening, opening_body

pytestmark = pytest.mark.app_settings(
    trust_proxy=True, trust_proxy_hops=1, report_hold_threshold=3, report_per_address=2
)


class Reporter:
    """A viewer on a session of its own, behind the address `ip` (X-Forwarded-For)."""

    def __init__(self, client: TestClient, ip: str) -> None:
        self.client = client
        self.ip = ip
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    def _h(self) -> dict[str, str]:
        return {"X-Forwarded-For": self.ip, "X-CSRF-Token": self.csrf}

    async def report(self, oid: str, reason: str = "fake_job", note: str | None = None) -> Any:
        if not self.csrf:
            r = await self.session.get(self.client.make_url("/api/me"), headers=self._h())
            self.csrf = (await r.json())["csrf"]
        body: dict[str, Any] = {"reason": reason}
        if note is not None:
            body["note"] = note
        return await self.session.post(
            self.client.make_url(f"/api/openings/{oid}/reports"), json=body, headers=self._h()
        )

    async def close(self) -> None:
        await self.session.close()


@pytest.fixture
async def reporters() -> Any:
    made: list[Reporter] = []

    def make(client: TestClient, ip: str) -> Reporter:
        r = Reporter(client, ip)
        made.append(r)
        return r

    yield make
    for r in made:
        await r.close()


async def test_one_report_per_viewer_and_bad_reasons(
    client: TestClient, host: Host, bid: str, reporters: Any
) -> None:
    o = await make_opening(host, bid)
    v = reporters(client, "10.0.0.1")
    r = await v.report(o["id"], "fees_asked", "要求先交培训费")
    assert r.status == 201, await r.text()
    assert await r.json() == {"reported": True, "held": False}
    again = await v.report(o["id"], "other")
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "already_reported"
    bad = await reporters(client, "10.0.0.2").report(o["id"], "boring")
    assert bad.status == 422
    queue = await (await host.get(f"/api/broadcasts/{bid}/reports")).json()
    [item] = queue["items"]
    assert item["opening_id"] == o["id"] and item["count"] == 1
    assert item["reasons"] == {"fees_asked": 1}
    assert item["notes"][0]["note"] == "要求先交培训费"
    assert "viewer" not in str(item) and "10.0.0.1" not in str(item)


@pytest.mark.app_settings(report_hold_threshold=5)
async def test_thirty_ids_behind_one_address_count_as_the_cap(
    client: TestClient, host: Host, bid: str, reporters: Any
) -> None:
    o = await make_opening(host, bid)
    for _ in range(30):
        r = await reporters(client, "203.0.113.7").report(o["id"])
        assert r.status == 201, await r.text()
        assert (await r.json())["held"] is False
    [item] = (await (await host.get(f"/api/broadcasts/{bid}/reports")).json())["items"]
    assert item["reporters"] == 30
    assert item["count"] == 2  # report_per_address
    listed = await (await client.get(f"/api/broadcasts/{bid}/openings")).text()
    assert o["id"] in listed  # not held


async def test_reports_past_the_threshold_hold_the_card_for_every_viewer(
    client: TestClient,
    client_b: TestClient,
    host: Host,
    bid: str,
    viewers: Viewers,
    reporters: Any,
) -> None:
    o = await make_opening(host, bid)
    keep = await make_opening(host, bid, title="护士")
    on_a = await viewers.open(client, bid)
    on_b = await viewers.open(client_b, bid)
    console = await connect(client, bid, host=True)
    for i, ip in enumerate(("198.51.100.1", "198.51.100.2")):
        r = await reporters(client if i % 2 else client_b, ip).report(o["id"], "pay_differs")
        assert (await r.json())["held"] is False
    last = await reporters(client_b, "198.51.100.3").report(o["id"], "fake_job")
    assert await last.json() == {"reported": True, "held": True}
    for sock in (on_a, on_b):
        gone = await sock.wait_for("opening.removed")
        assert gone["data"]["opening_id"] == o["id"]
    got = await console.wait_for(
        lambda e: e["type"] == "report.received" and e["data"]["count"] == 3
    )
    assert got["data"]["reasons"] == {"pay_differs": 2, "fake_job": 1}
    saved = await console.wait_for(
        lambda e: e["type"] == "opening.saved" and e["data"]["opening"]["status"] == "held"
    )
    assert saved["data"]["opening"]["id"] == o["id"]
    await fence(client, bid, on_a, on_b)
    assert not on_a.of_type("report.received")  # hosts only
    # A fresh snapshot on either process lacks it; the other card stays.
    for c in (client, client_b):
        fresh = await viewers.open(c, bid)
        text = str(fresh.of_type("snapshot")[0]["data"])
        assert o["id"] not in text and keep["id"] in text
    page = await (await client.get(f"/b/{bid}")).text()
    assert o["id"] not in page
    # A held card takes no more reports and no applications.
    late = await reporters(client, "198.51.100.9").report(o["id"])
    assert late.status == 404
    # The host's edit of a held card keeps it held.
    r = await host.patch(f"/api/broadcasts/{bid}/openings/{o['id']}", {"headcount": 5})
    assert r.status == 200, await r.text()
    assert (await r.json())["status"] == "held"
    # Review: cleared, it is back for everyone, and counting starts again.
    r = await host.post(f"/api/broadcasts/{bid}/reports/{o['id']}/review", {"outcome": "clear"})
    assert await r.json() == {"opening_id": o["id"], "status": "published"}
    for sock in (on_a, on_b):
        await sock.wait_for(
            lambda e: e["type"] == "opening.updated" and e["data"]["opening"]["id"] == o["id"]
        )
    assert (await (await host.get(f"/api/broadcasts/{bid}/reports")).json())["items"] == []
    r = await reporters(client, "198.51.100.4").report(o["id"])
    assert await r.json() == {"reported": True, "held": False}
    # Close ends it for good.
    r = await host.post(f"/api/broadcasts/{bid}/reports/{o['id']}/review", {"outcome": "close"})
    assert (await r.json())["status"] == "closed"


async def test_review_is_for_hosts_of_the_broadcast(
    client: TestClient, host: Host, bid: str, other_org_host: Host, reporters: Any
) -> None:
    o = await make_opening(host, bid)
    await reporters(client, "10.1.0.1").report(o["id"])
    r = await other_org_host.get(f"/api/broadcasts/{bid}/reports")
    assert r.status == 404
    r = await other_org_host.post(
        f"/api/broadcasts/{bid}/reports/{o['id']}/review", {"outcome": "clear"}
    )
    assert r.status == 404
    anon = await client.post(
        f"/api/broadcasts/{bid}/reports/{o['id']}/review", json={"outcome": "clear"}
    )
    assert anon.status in (401, 403)


async def test_salary_range_stays_mandatory(host: Host, bid: str) -> None:
    body = opening_body()
    del body["salary_min"]
    r = await host.post(f"/api/broadcasts/{bid}/openings", body)
    assert r.status == 422
    assert "salary_min" in (await r.json())["error"]["fields"]
