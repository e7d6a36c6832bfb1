"""A phone number that applied before is answered exactly like a new one, every submission is
stored, and hosts see the submissions of one number side by side; a fresh viewer cookie per
request does not reset one applicant's rate limit."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import aiohttp
import orjson
import pytest
from jobcast.core import keys
from jobcast.openings.applications import phone_digest
from jobcast.web.appkeys import REDIS

from tests.helpers import connect
from tests.openings_helpers import applicant, application_body

VICTIM = "13912345678"


def _shape(r: aiohttp.ClientResponse, body: dict[str, Any]) -> tuple[Any, ...]:
    """Everything an answer shows a sender, less the ids that differ per submission."""
    dropped = {"Date", "Content-Length", "Set-Cookie"}
    headers = sorted((k, v) for k, v in r.headers.items() if k not in dropped)
    return r.status, headers, sorted(body), body["applied"]


async def test_a_number_that_applied_before_is_answered_like_a_new_one(
    app_factory, redis_url, client, host, bid, opening
):
    console = await connect(client, bid, host=True)
    victim = await applicant(await app_factory(redis_url))
    r = await victim.apply(opening["id"], application_body(name="王芳", phone=VICTIM))
    assert r.status == 201
    victim_answer = await r.json()
    fresh = await applicant(await app_factory(redis_url))
    r = await fresh.apply(opening["id"], application_body(name="李明", phone="13700001111"))
    new_answer = (r, await r.json())
    # the attacker tries the victim's number in another spelling
    attacker = await applicant(await app_factory(redis_url))
    r = await attacker.apply(
        opening["id"], application_body(name="冒名", phone="+86 139-1234-5678")
    )
    probe = (r, await r.json())
    assert _shape(*probe) == _shape(*new_answer)
    assert probe[1]["application_id"] != victim_answer["application_id"]
    assert VICTIM not in orjson.dumps(probe[1]).decode()
    # the host has both, each pointing at the other
    r = await host.get(f"/api/broadcasts/{bid}/applications")
    apps = {x["name"]: x for x in (await r.json())["applications"]}
    assert apps["王芳"]["same_phone"] == 1
    assert apps["王芳"]["same_phone_ids"] == [probe[1]["application_id"]]
    assert apps["冒名"]["same_phone_ids"] == [victim_answer["application_id"]]
    assert apps["李明"]["same_phone"] == 0 and apps["李明"]["same_phone_ids"] == []
    one = await (await host.get(f"/api/broadcasts/{bid}/applications/{apps['王芳']['id']}")).json()
    assert one["same_phone"] == 1
    got = await console.wait_count("application.received", 3)
    assert [e["data"]["same_phone"] for e in got] == [0, 0, 1]
    raw = await (await host.get(f"/api/broadcasts/{bid}/applications.csv")).read()
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    by_name = {row["姓名"]: row for row in rows}
    assert by_name["王芳"]["同号其他申请数"] == "1"
    assert by_name["王芳"]["同号其他申请编号"] == probe[1]["application_id"]
    assert by_name["李明"]["同号其他申请数"] == "0"


async def test_applying_first_with_someone_elses_number_blocks_nothing(
    app_factory, redis_url, host, bid, opening
):
    attacker = await applicant(await app_factory(redis_url))
    r = await attacker.apply(opening["id"], application_body(name="冒名", phone=VICTIM))
    assert r.status == 201
    victim = await applicant(await app_factory(redis_url))
    r = await victim.apply(opening["id"], application_body(name="王芳", phone=VICTIM, note="真的"))
    assert r.status == 201
    mine = (await r.json())["application_id"]
    assert await victim.applied(bid) == [opening["id"]]
    stored = await (await host.get(f"/api/broadcasts/{bid}/applications/{mine}")).json()
    assert stored["name"] == "王芳" and stored["note"] == "真的" and stored["same_phone"] == 1
    # the host deletes the impostor's; the victim's stands alone again
    r = await host.get(f"/api/broadcasts/{bid}/applications")
    fake = next(x["id"] for x in (await r.json())["applications"] if x["name"] == "冒名")
    assert (await host.delete(f"/api/broadcasts/{bid}/applications/{fake}")).status == 200
    stored = await (await host.get(f"/api/broadcasts/{bid}/applications/{mine}")).json()
    assert stored["same_phone"] == 0 and stored["same_phone_ids"] == []


async def test_idempotency_still_replays_the_first_answer(
    app_factory, redis_url, client, bid, opening
):
    first = await applicant(await app_factory(redis_url))
    assert (await first.apply(opening["id"], application_body(phone=VICTIM))).status == 201
    v = await applicant(await app_factory(redis_url))
    key = uuid.uuid4().hex
    r1 = await v.apply(opening["id"], application_body(phone=VICTIM), key)
    r2 = await v.apply(opening["id"], application_body(phone=VICTIM), key)
    assert r1.status == r2.status == 201 and r2.headers["Idempotent-Replayed"] == "true"
    assert await r1.json() == await r2.json()
    r3 = await v.apply(opening["id"], application_body(phone=VICTIM, note="改了"), key)
    assert (await r3.json())["error"]["code"] == "idempotency_key_reused"
    redis = client.server.app[REDIS]
    assert await redis.zcard(keys.opening_applications(bid, opening["id"])) == 2


async def _fresh_cookie_apply(client, oid: str, phone: str, *, ip: str | None = None) -> Any:
    """Apply as a browser that was never seen: a new cookie jar, the viewer cookie and CSRF
    token fetched just before."""
    headers = {"X-Forwarded-For": ip} if ip else {}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        async with s.get(client.make_url("/api/me"), headers=headers) as r:
            csrf = (await r.json())["csrf"]
        async with s.post(
            client.make_url(f"/api/openings/{oid}/applications"),
            json=application_body(phone=phone),
            headers={**headers, "X-CSRF-Token": csrf, "Idempotency-Key": uuid.uuid4().hex},
        ) as r:
            return r.status, await r.json()


@pytest.mark.app_settings(apply_per_viewer=3, apply_per_phone=3, apply_per_ip=100, trust_proxy=True)
async def test_a_fresh_cookie_per_request_does_not_reset_the_limit(client, opening):
    for _ in range(3):
        status, _ = await _fresh_cookie_apply(client, opening["id"], VICTIM, ip="198.51.100.7")
        assert status == 201
    status, body = await _fresh_cookie_apply(client, opening["id"], VICTIM, ip="198.51.100.7")
    assert status == 429 and body["error"]["limit"] == "phone"
    # the number's owner, elsewhere, is not locked out by what was sent from that address
    status, _ = await _fresh_cookie_apply(client, opening["id"], VICTIM, ip="203.0.113.9")
    assert status == 201
    # other numbers from the address still get their own budget, up to the per-IP limit
    status, _ = await _fresh_cookie_apply(client, opening["id"], "13700002222", ip="198.51.100.7")
    assert status == 201


async def test_an_application_stored_before_joins_its_numbers_list(
    client, client_b, host, bid, opening
):
    """Data written while one application per number and opening was kept: the next
    submission with that number finds it and both are marked."""
    v = await applicant(client_b)
    r = await v.apply(opening["id"], application_body(name="旧的", phone=VICTIM))
    old = (await r.json())["application_id"]
    redis = client.server.app[REDIS]
    # make it look as it was stored then: in the phones hash, in no per-number list
    await redis.delete(keys.phone_applications(bid, opening["id"], phone_digest("+86" + VICTIM)))
    await redis.hset(keys.opening_phones(bid, opening["id"]), "+86" + VICTIM, old)
    r = await v.apply(opening["id"], application_body(name="新的", phone=VICTIM))
    new = (await r.json())["application_id"]
    for aid, other in ((old, new), (new, old)):
        x = await (await host.get(f"/api/broadcasts/{bid}/applications/{aid}")).json()
        assert x["same_phone"] == 1 and x["same_phone_ids"] == [other]
    assert not await redis.hexists(keys.opening_phones(bid, opening["id"]), "+86" + VICTIM)
