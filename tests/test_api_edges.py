"""Requests that once got a 500 or a dropped connection (found by tests/test_fuzz.py and the
property tests): each now gets a clean answer in the one error shape."""

from __future__ import annotations

import json
from typing import Any

from tests.helpers import connect, viewer_csrf


async def _error(r, status: int) -> dict:
    assert r.status == status, await r.text()
    body = await r.json()
    assert set(body) == {"error"} and body["error"]["code"]
    return body["error"]


async def test_malformed_multipart_import_is_422(client, host, bid):
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="x\x05y"\r\n\r\n1\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    r = await client.post(
        f"/api/broadcasts/{bid}/openings/import",
        data=body,
        headers={
            "X-CSRF-Token": host.csrf,
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    err = await _error(r, 422)
    assert err["code"] == "bad_upload"


async def test_applications_export_filename_takes_only_an_id(client, bid):
    r = await client.get(
        f"/api/broadcasts/{bid}/applications.csv", params={"opening_id": '\x1bx"; y=\r\nz'}
    )
    assert r.status == 200
    assert r.headers["Content-Disposition"] == f'attachment; filename="applications-{bid}.csv"'
    r = await client.get(f"/api/broadcasts/{bid}/applications.csv", params={"opening_id": "abc"})
    assert r.headers["Content-Disposition"].endswith(f'applications-{bid}-abc.csv"')


async def _apply(client, oid: str, key: str, **fields) -> Any:
    csrf = await viewer_csrf(client)
    body = {"name": "王芳", "phone": "13800138000", "consent": True, "consent_version": "2026-01"}
    return await client.post(
        f"/api/openings/{oid}/applications",
        json={**body, **fields},
        headers={"X-CSRF-Token": csrf, "Idempotency-Key": key},
    )


async def test_consent_version_of_another_type_is_422(client, opening):
    oid = opening["id"]
    for i, version in enumerate(([], {"a": 1}, 7, True)):
        r = await _apply(client, oid, f"k{i}", consent_version=version)
        err = await _error(r, 422)
        assert "consent_version" in err["fields"]


async def test_graduation_year_in_other_digits_is_422(client, opening):
    oid = opening["id"]
    for i, year in enumerate(("²⁰²⁰", "٢٠٢٠", "2" * 5000)):
        r = await _apply(client, oid, f"y{i}", graduation_year=year)
        err = await _error(r, 422)
        assert "graduation_year" in err["fields"]
    r = await _apply(client, oid, "y-ok", graduation_year=" 2024 ")
    assert r.status == 201, await r.text()


async def test_paging_in_other_digits_or_huge_is_422(client, bid):
    for query in ("offset=²", "limit=¹", "offset=" + "9" * 5000, "limit=٣"):
        r = await client.get(f"/api/broadcasts/{bid}/applications?{query}")
        err = await _error(r, 422)
        assert set(err["fields"]) <= {"offset", "limit"}
    r = await client.get(f"/api/broadcasts/{bid}/applications?offset=0&limit=5")
    assert r.status == 200


async def test_scheduled_at_as_iso_is_held_to_the_unix_ms_range(host):
    for value in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59Z", -1, 10**14):
        r = await host.post("/api/broadcasts", {"title": "x", "scheduled_at": value})
        err = await _error(r, 422)
        assert err["fields"] == {"scheduled_at": "out of range"}
    r = await host.post(
        "/api/broadcasts", {"title": "x", "scheduled_at": "2026-09-01T09:00:00+08:00"}
    )
    assert (await r.json())["scheduled_at"] == 1788224400000


async def test_ping_with_deeply_nested_t_is_a_bad_frame_and_the_socket_lives(client, bid):
    sock = await connect(client, bid)
    t: list = []
    for _ in range(400):
        t = [t]
    await sock.ws.send_str(json.dumps({"type": "ping", "id": 7, "data": {"t": t}}))
    err = await sock.wait_for(lambda e: e.get("id") == 7)
    assert err["type"] == "error" and err["data"]["code"] == "bad_frame"
    await sock.send("ping", {"t": [[1]]}, id_=8)
    pong = await sock.wait_for(lambda e: e.get("id") == 8)
    assert pong["data"] == {"t": [[1]]}
    await sock.close()


async def test_csv_with_a_bom_but_other_bytes_is_422(client, host, bid):
    for data in (b"\xff\xfeA", b"\xef\xbb\xbf\xff\xfe", b"\xfe\xff\xd8\x00\x00A"):
        r = await client.post(
            f"/api/broadcasts/{bid}/openings/import?dry_run=1",
            data=data,
            headers={"X-CSRF-Token": host.csrf, "Content-Type": "text/csv"},
        )
        err = await _error(r, 422)
        assert err["fields"] == {"file": "unknown encoding"}
