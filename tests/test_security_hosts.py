"""Links and QR codes never carry a host the client chose, and the page may open sockets and
fetches to its own origin only."""

from __future__ import annotations

import re

import pytest


async def _viewer_url(client, bid: str, host: str | None) -> str:
    headers = {"Host": host} if host else {}
    r = await client.get(f"/b/{bid}/screen", headers=headers)
    assert r.status == 200
    html = await r.text()
    m = re.search(r'(https?://[^"\s<]+/b/' + bid + ")", html)
    assert m, html[:500]
    return m.group(1)


async def test_a_forged_host_header_never_reaches_the_viewer_link(client, bid):
    port = client.server.port
    assert await _viewer_url(client, bid, None) == f"http://127.0.0.1:{port}/b/{bid}"
    for forged in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example"):
        url = await _viewer_url(client, bid, forged)
        assert "evil" not in url, (forged, url)
        assert url == f"http://127.0.0.1:{port}/b/{bid}"
    # A loopback name for a loopback connection is this server.
    assert await _viewer_url(client, bid, f"localhost:{port}") == f"http://localhost:{port}/b/{bid}"


@pytest.mark.app_settings(allowed_origins="https://jobs.example.org")
async def test_a_configured_public_url_or_allowed_origin_is_used(
    app_factory, redis_url, client, bid
):
    url = await _viewer_url(client, bid, "jobs.example.org")
    assert url == f"http://jobs.example.org/b/{bid}"
    c2 = await app_factory(redis_url, public_url="https://live.example.org/")
    assert await _viewer_url(c2, bid, "evil.example") == f"https://live.example.org/b/{bid}"


async def test_csp_lets_pages_connect_to_their_own_origin_only(client):
    r = await client.get("/host/login")
    csp = r.headers["Content-Security-Policy"]
    connect = next(d for d in csp.split(";") if d.strip().startswith("connect-src"))
    assert connect.split()[1:] == ["'self'"], csp


async def test_moderators_see_application_counts_over_http_as_on_their_socket(
    client, bid, opening, moderator
):
    """One rule: application counts (no personal data) are for staff, on the socket and over
    HTTP alike; applicants themselves are for hosts only."""
    from tests.openings_helpers import applicant, application_body

    r = await (await applicant(client)).apply(opening["id"], application_body())
    assert r.status == 201
    r = await moderator.get(f"/api/broadcasts/{bid}/applications/counts")
    assert r.status == 200
    assert (await r.json())["applications_total"] == 1
    r = await moderator.get(f"/api/broadcasts/{bid}/applications")
    assert r.status == 403
