"""Requests that once got a 500 or a dropped connection (found by tests/test_fuzz.py and the
property tests): each now gets a clean answer in the one error shape."""

from __future__ import annotations

from tests.helpers import login


async def _error(r, status: int) -> dict:
    assert r.status == status, await r.text()
    body = await r.json()
    assert set(body) == {"error"} and body["error"]["code"]
    return body["error"]


async def test_malformed_multipart_import_is_422(client):
    host = await login(client)
    bid = await host.create_broadcast()
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


async def test_applications_export_filename_takes_only_an_id(client):
    host = await login(client)
    bid = await host.create_broadcast()
    r = await client.get(
        f"/api/broadcasts/{bid}/applications.csv", params={"opening_id": '\x1bx"; y=\r\nz'}
    )
    assert r.status == 200
    assert r.headers["Content-Disposition"] == f'attachment; filename="applications-{bid}.csv"'
    r = await client.get(f"/api/broadcasts/{bid}/applications.csv", params={"opening_id": "abc"})
    assert r.headers["Content-Disposition"].endswith(f'applications-{bid}-abc.csv"')
