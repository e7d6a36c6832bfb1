"""Generated requests from the OpenAPI document against a running app on a real port.

Three callers (anonymous, a viewer with cookie and CSRF token, a logged-in host) each send
every operation a bounded number of generated requests, half of them aimed at real ids (a
broadcast with openings, an application, chat items) so they get past the 404s. Every answer
must: not be a 5xx, arrive within the timeout, be documented (status, content type, body and
headers match the document), and every error must be the one JSON error shape.

The run is derandomized (fixed by the test's inputs), so CI sees the same requests every time.
Requests are sent with `requests` from a worker thread while the app serves on the test's loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from jobcast.web.access.auth import SESSION_COOKIE, VIEWER_COOKIE
from jobcast.web.api.openapi import EXAMPLE_OPENING_ID, document
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers import connect, login, viewer_csrf
from tests.strategies import TEXT, json_values

pytestmark = pytest.mark.fuzz

# Generated requests per operation and caller (half at real ids). JOBCAST_FUZZ_EXAMPLES raises
# it for a longer local run.
EXAMPLES = int(os.environ.get("JOBCAST_FUZZ_EXAMPLES", "20"))
TIMEOUT = 10.0
JSON_PREFIXES = ("/api/", "/whip/", "/whep/")


@schemathesis.serializer("text/csv", "application/sdp")
def _raw_text(ctx: Any, value: Any) -> dict[str, Any]:
    if isinstance(value, bytes):
        return {"data": value}
    return {"data": str(value).encode("utf-8", "surrogatepass")}


def error_shape(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every error from the API, WHIP and WHEP is `{"error": {"code", "message", ...}}`."""
    path = case.operation.path
    if response.status_code < 400 or not path.startswith(JSON_PREFIXES):
        return None
    ctype = response.headers.get("content-type", [""])[0]
    assert ctype.startswith("application/json"), f"error {response.status_code} as {ctype}"
    body = orjson.loads(response.content)
    assert set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err.get("code"), str) and err["code"], body
    assert isinstance(err.get("message"), str), body
    assert "Traceback" not in response.text
    if response.status_code in (429, 503):
        retry = response.headers.get("retry-after")
        assert retry, f"{response.status_code} without Retry-After"
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    error_shape,
]


@dataclass
class Caller:
    name: str
    cookies: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    skip: tuple[str, ...] = ()


@dataclass
class Outcome:
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def _fuzz(base: str, callers: list[Caller], ids: dict[str, str], examples: int) -> Outcome:
    schema = schemathesis.openapi.from_dict(document())
    result = Outcome()
    ops = [r.ok() for r in schema.get_all_operations()]
    for caller in callers:
        for op in ops:
            label = f"{op.method.upper()} {op.path}"
            if label in caller.skip:
                continue
            names = {p.name for p in op.path_parameters}
            fixed = {k: v for k, v in ids.items() if k in names}
            # Valid requests, valid ones at real ids, and invalid ones (wrong types, missing
            # fields, out-of-range values) at real ids.
            strategies = [op.as_strategy()]
            if fixed:
                strategies.append(op.as_strategy(path_parameters=fixed))
            strategies.append(op.as_strategy(GenerationMode.NEGATIVE, path_parameters=fixed))
            strategy = st.one_of(strategies)

            try:
                _run(op, strategy, caller, base, result, examples)
            except (Exception, BaseExceptionGroup) as e:
                text = "".join(traceback.format_exception_only(type(e), e))
                if isinstance(e, BaseExceptionGroup):
                    text += "".join(
                        "".join(traceback.format_exception_only(type(x), x)) for x in e.exceptions
                    )
                result.failures.append(f"[{caller.name}] {label}: {text[:3000]}")
    return result


def _run(op: Any, strategy: Any, caller: Caller, base: str, result: Outcome, n: int) -> None:
    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        with requests.Session() as session:
            response = case.call(
                base_url=base,
                session=session,
                headers=dict(caller.headers),
                cookies=dict(caller.cookies),
                timeout=TIMEOUT,
                allow_redirects=False,
            )
        result.requests += 1
        result.statuses[response.status_code] = result.statuses.get(response.status_code, 0) + 1
        case.validate_response(response, checks=CHECKS)

    run()


async def _seed(client: Any) -> tuple[dict[str, str], Caller, Caller]:
    """A broadcast with published openings, an application, a chat message and a question;
    a host session and a second viewer, as cookies and CSRF tokens."""
    host = await login(client)
    bid = await host.create_broadcast("Fuzz fair")
    oids = []
    for i in range(2):
        r = await host.post(
            f"/api/broadcasts/{bid}/openings",
            {
                "title": f"岗位{i}",
                "employer": {"name": "鸡西矿业", "verified": True},
                "city": "鸡西市",
                "salary_min": 4000,
                "salary_max": 6000,
                "status": "published",
            },
        )
        assert r.status == 201, await r.text()
        oids.append((await r.json())["id"])
    csrf = await viewer_csrf(client)
    r = await client.post(
        f"/api/openings/{oids[0]}/applications",
        json={
            "name": "王小明",
            "phone": "13800138000",
            "consent": True,
            "consent_version": "2026-01",
        },
        headers={"X-CSRF-Token": csrf, "Idempotency-Key": "fuzz-seed-1"},
    )
    assert r.status == 201, await r.text()
    aid = (await r.json())["application_id"]
    r = await host.post(f"/api/broadcasts/{bid}/stream-key")
    assert r.status == 201
    # Chat message 1, and question 1 approved from the review queue.
    sock = await connect(client, bid)
    await sock.send("chat.send", {"text": "你好"}, id_=1)
    await sock.send("question.ask", {"text": "招应届生吗？"}, id_=2)
    await sock.wait_count(lambda e: e.get("id") in (1, 2), 2)
    await sock.close()
    r = await host.post(
        f"/api/broadcasts/{bid}/chat/review.decide",
        {"kind": "question", "id": "1", "approve": True},
    )
    assert r.status == 200, await r.text()
    jar = {c.key: c.value for c in client.session.cookie_jar}
    host_caller = Caller(
        "host",
        cookies={SESSION_COOKIE: jar[SESSION_COOKIE], VIEWER_COOKIE: jar[VIEWER_COOKIE]},
        headers={"X-CSRF-Token": host.csrf},
        # Logging out would end the session the rest of the run uses.
        skip=("POST /api/logout",),
    )
    viewer = await asyncio.to_thread(requests.get, str(client.make_url("/api/me")), timeout=TIMEOUT)
    viewer_caller = Caller(
        "viewer",
        cookies={VIEWER_COOKIE: viewer.cookies[VIEWER_COOKIE]},
        headers={"X-CSRF-Token": viewer.json()["csrf"]},
    )
    ids = {"bid": bid, "oid": oids[1], "aid": aid, "code": "en", EXAMPLE_OPENING_ID: oids[1]}
    return ids, host_caller, viewer_caller


def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]
    assert not bad, bad


async def test_fuzz_every_operation_as_anonymous_viewer_and_host(app_factory, redis_url, caplog):
    caplog.set_level(logging.WARNING)
    client = await app_factory(redis_url)
    base = str(client.make_url("")).rstrip("/")
    ids, host, viewer = await _seed(client)
    callers = [Caller("anonymous"), viewer, host]
    started = time.monotonic()
    result = await asyncio.to_thread(_fuzz, base, callers, ids, EXAMPLES)
    print(
        f"fuzz: {result.requests} requests in {time.monotonic() - started:.1f}s, "
        f"statuses {dict(sorted(result.statuses.items()))}"
    )
    assert not result.failures, "\n\n".join(result.failures)
    # The run reached past authentication and validation, not only 4xx.
    assert result.statuses.get(200, 0) > 50 and result.statuses.get(201, 0) > 0
    assert result.requests > len(callers) * 60
    _no_errors_logged(caplog)


# -- every field of every JSON body, and every query parameter, with any value -------------


def _send(base: str, caller: Caller, method: str, url: str, **kw: Any) -> requests.Response:
    headers = {**caller.headers, **kw.pop("headers", {})}
    with requests.Session() as session:
        return session.request(
            method,
            base + url,
            headers=headers,
            cookies=dict(caller.cookies),
            timeout=TIMEOUT,
            allow_redirects=False,
            **kw,
        )


STATUSES: dict[int, int] = {}


def _assert_clean(r: requests.Response, what: str) -> None:
    STATUSES[r.status_code] = STATUSES.get(r.status_code, 0) + 1
    assert r.status_code < 500, f"{what}: {r.status_code} {r.text[:300]}"
    if r.status_code >= 400:
        body = r.json()
        assert set(body) == {"error"} and body["error"]["code"], f"{what}: {body}"


def _fields(base: str, callers: dict[str, Caller], ids: dict[str, str], n: int) -> list[str]:
    failures: list[str] = []
    keys = iter(range(10**9))
    for path, item in document()["paths"].items():
        url = path
        for name, value in ids.items():
            url = url.replace("{" + name + "}", value)
        for method, op in item.items():
            caller = callers.get(op["x-jobcast-access"], callers["public"])
            media = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            example = media.get("example")
            targets: list[tuple[str, str]] = []
            if example is not None:
                example = {
                    k: ids.get(v, v) if isinstance(v, str) else v for k, v in example.items()
                }
                targets += [("body", k) for k in [*example, "unknown_field"]]
            targets += [
                ("query", p["name"]) for p in op.get("parameters", []) if p["in"] == "query"
            ]
            for where, name in targets:
                try:
                    _field(base, caller, f"{method} {url}", example, where, name, n, keys)
                except Exception as e:
                    failures.append(f"{method.upper()} {path}: {str(e)[:2000]}")
    return failures


def _field(
    base: str,
    caller: Caller,
    target: str,
    example: dict[str, Any] | None,
    where: str,
    name: str,
    n: int,
    keys: Any,
) -> None:
    method, url = target.split(" ", 1)

    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(value=json_values() if where == "body" else TEXT)
    def run(value: Any) -> None:
        what = f"{where} {name}={value!r:.200}"
        headers = {"Idempotency-Key": f"k{next(keys)}"}
        if where == "body":
            headers["Content-Type"] = "application/json"
            data = json.dumps({**(example or {}), name: value})
            r = _send(base, caller, method, url, data=data, headers=headers)
        else:
            r = _send(base, caller, method, url, params={name: value}, headers=headers)
        _assert_clean(r, what)

    run()


async def test_every_body_field_and_query_parameter_takes_any_value(app_factory, redis_url, caplog):
    """Each field of each documented JSON body (and an unknown one) gets any JSON value: nested
    lists and objects, huge numbers, digits int() refuses, control characters; each query
    parameter any text. The answer is never a 5xx and every error is in the one shape."""
    caplog.set_level(logging.WARNING)
    client = await app_factory(redis_url)
    base = str(client.make_url("")).rstrip("/")
    ids, host, viewer = await _seed(client)
    callers = {"public": Caller("anonymous"), "viewer": viewer, "host": host, "staff": host}
    STATUSES.clear()
    failures = await asyncio.to_thread(_fields, base, callers, ids, max(4, EXAMPLES // 2))
    print(f"fields: {sum(STATUSES.values())} requests, statuses {dict(sorted(STATUSES.items()))}")
    assert not failures, "\n\n".join(failures)
    assert STATUSES.get(422, 0) > 100 and STATUSES.get(200, 0) > 100
    _no_errors_logged(caplog)


async def test_router_errors_are_the_json_shape(app_factory, redis_url, caplog):
    """Errors aiohttp raises itself (no route, wrong method) are the one JSON shape too, on
    every API, WHIP and WHEP resource of the router."""
    caplog.set_level(logging.WARNING)
    client = await app_factory(redis_url)
    methods = {"GET", "POST", "PUT", "PATCH", "DELETE"}
    checked = 0
    for resource in client.server.app.router.resources():
        path = resource.canonical
        if not path.startswith(JSON_PREFIXES):
            continue
        allowed = {r.method for r in resource}
        url = path.replace("{action}", "mod.ban")
        for name in ("bid", "oid", "aid", "sid", "name"):
            url = url.replace("{" + name + "}", "abc234")
        for method in sorted(methods - allowed):
            r = await client.request(method, url)
            # Another route may take the URL ("/openings/import" is also "/openings/{oid}"),
            # so the answer may be that route's; whatever it is, it is the error shape.
            assert r.status >= 400, (method, path)
            body = await r.json()
            assert set(body) == {"error"} and body["error"]["code"], (method, path, body)
            if r.status == 405:
                assert body["error"]["code"] == "method_not_allowed"
                assert allowed <= set(r.headers["Allow"].replace(" ", "").split(","))
                checked += 1
    assert checked > 60
    for url in ("/api/nosuch", "/api/broadcasts/a%2Fb", "/whip/", "/whep/a/b/c"):
        r = await client.get(url)
        assert r.status in (404, 405), url
        body = await r.json()
        assert set(body) == {"error"} and body["error"]["code"], url
    _no_errors_logged(caplog)
