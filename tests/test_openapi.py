"""The OpenAPI document stays in step with the router and with the validation code."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from jobcast.core import broadcasts
from jobcast.core.errors import Invalid
from jobcast.openings.applicant import validate_application
from jobcast.openings.models import validate_opening
from jobcast.web.api.chat import STAFF
from jobcast.web.api.openapi import ACCESS, OPENING_EXAMPLE, document
from jobcast.web.app import create_app
from jobcast.web.runtime.settings import Settings
from openapi_spec_validator import validate

UNSAFE = {"post", "put", "patch", "delete"}
METHODS = {"get", "post", "put", "patch", "delete", "options"}


@pytest.fixture(scope="module")
def app() -> web.Application:
    return create_app(Settings(redis_url="redis://127.0.0.1:1/0", secret_key="k"))


def _router_routes(app: web.Application) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        if route.method == "HEAD" or isinstance(route.resource, web.StaticResource):
            continue
        assert route.resource is not None
        found.add((route.method.lower(), route.resource.canonical))
    return found


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in document()["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def _concrete(path: str) -> str:
    """A URL for a documented path: every {param} filled with a plausible id."""
    out = path
    for name in ("bid", "oid", "aid", "sid", "name", "code"):
        out = out.replace("{" + name + "}", "abc234")
    assert "{" not in out, path
    return out


def test_document_is_valid_openapi():
    doc = document()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    assert set(doc["components"]["securitySchemes"]) == {
        "hostSession",
        "csrfToken",
        "viewerCookie",
        "streamKey",
    }


def test_every_route_is_documented_and_every_operation_exists(app):
    excluded = set(document()["x-jobcast-excluded"])
    routes = {(m, p) for m, p in _router_routes(app) if p not in excluded}
    documented = {(m, op.get("x-route", p)) for m, p, op in _operations()}
    assert routes - documented == set(), "routes missing from web/api/openapi.py"
    assert documented - routes == set(), "documented operations with no route"
    # Every excluded path is a real route, and says why it is left out.
    canon = {p for _, p in _router_routes(app)}
    for path, reason in document()["x-jobcast-excluded"].items():
        assert path in canon and reason


async def test_every_documented_path_resolves_to_its_route(app):
    for method, path, op in _operations():
        req = make_mocked_request(method.upper(), _concrete(path), app=app)
        match = await app.router.resolve(req)
        assert match.http_exception is None, (method, path)
        assert match.route.resource.canonical == op.get("x-route", path), (method, path)


def test_chat_actions_are_documented_one_path_each():
    paths = {p for p in document()["paths"] if p.startswith("/api/broadcasts/{bid}/chat/")}
    assert {p.rsplit("/", 1)[1] for p in paths} == set(STAFF)


def test_every_operation_says_who_may_call_it():
    for method, path, op in _operations():
        access = op["x-jobcast-access"]
        assert access in ACCESS, (method, path)
        schemes = {k for req in op["security"] for k in req}
        if access in ("host", "staff"):
            assert op["security"] == [
                {"hostSession": [], "csrfToken": []} if method in UNSAFE else {"hostSession": []}
            ], (method, path)
            assert {"401", "403"} <= set(op["responses"]), (method, path)
        elif access == "viewer":
            assert "viewerCookie" in schemes
        elif access == "stream-key":
            assert schemes == {"streamKey"}
        else:
            assert "hostSession" not in schemes or {} in op["security"], (method, path)
        assert "503" in op["responses"], (method, path)
        assert op["operationId"] == f"{method} {path}"


def test_host_only_paths_are_host_access():
    """What docs/protocol.md calls host-only is host access here (moderators get 403)."""
    doc = document()["paths"]
    for path in (
        "/api/broadcasts/{bid}/applications",
        "/api/broadcasts/{bid}/applications/{aid}",
        "/api/openings/{oid}/applications",
        "/api/broadcasts/{bid}/stream-key",
        "/api/broadcasts/{bid}/openings/import",
    ):
        for method, op in doc[path].items():
            if method == "post" and path == "/api/openings/{oid}/applications":
                assert op["x-jobcast-access"] == "viewer"
            else:
                assert op["x-jobcast-access"] == "host", (method, path)


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    root = {**schema, "components": document()["components"]}
    return jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker())


def test_examples_match_their_schemas():
    seen = 0
    for method, path, op in _operations():
        content = op.get("requestBody", {}).get("content", {})
        for media in content.values():
            if "example" in media:
                errors = list(_validator(media["schema"]).iter_errors(media["example"]))
                assert not errors, (method, path, [e.message for e in errors])
                seen += 1
    assert seen >= 20


def test_error_shape_schema():
    v = _validator({"$ref": "#/components/schemas/Error"})
    assert v.is_valid({"error": {"code": "invalid", "message": "m", "fields": {"a": "b"}}})
    assert v.is_valid({"error": {"code": "rate_limited", "message": "m", "retry_after": 1.5}})
    assert not v.is_valid({"error": {"message": "m"}})
    assert not v.is_valid({"error": {"code": "x", "message": "m"}, "detail": "leak"})
    assert not v.is_valid({"code": "x", "message": "m"})


# -- request schemas against the validation code ------------------------------------------


def _schema(name: str) -> dict[str, Any]:
    return document()["components"]["schemas"][name]


def _min_opening() -> dict[str, Any]:
    return {k: OPENING_EXAMPLE[k] for k in _schema("OpeningInput")["required"]}


BODIES = {
    "BroadcastInput": (lambda d: broadcasts._validate(d, partial=False), {"title": "招聘会"}),
    "OpeningInput": (validate_opening, _min_opening()),
    "ApplicationInput": (
        validate_application,
        {"name": "王芳", "phone": "13800138000", "consent": True, "consent_version": "2026-01"},
    ),
}
# Fields whose maxLength bounds raw input that is then checked by format, not plain text.
NOT_TEXT = {"phone", "email"}


def _refuses(check: Any, body: dict[str, Any], field: str) -> bool:
    try:
        check(body)
    except Invalid as e:
        return field in e.fields
    return False


@pytest.mark.parametrize("name", sorted(BODIES))
def test_request_schema_matches_validation(name):
    check, minimal = BODIES[name]
    schema = _schema(name)
    check(minimal)  # the smallest body the schema allows is accepted
    assert _validator(schema).is_valid(minimal)
    props = schema["properties"]
    for field in schema["required"]:
        body = {k: v for k, v in minimal.items() if k != field}
        assert _refuses(check, body, field) or _refuses(check, body, f"{field}.name"), field
        assert not _validator(schema).is_valid(body)
    assert _refuses(check, {**minimal, "nickname": "x"}, "nickname")
    assert not _validator(schema).is_valid({**minimal, "nickname": "x"})
    for field, prop in props.items():
        if "maxLength" in prop and field not in NOT_TEXT:
            n = prop["maxLength"]
            check({**minimal, field: "字" * n})
            assert _refuses(check, {**minimal, field: "字" * (n + 1)}, field), field
            assert not _validator(schema).is_valid({**minimal, field: "字" * (n + 1)})
        enum = prop.get("enum") or next(
            (s["enum"] for s in prop.get("anyOf", []) if "enum" in s), None
        )
        if enum is not None:
            for value in enum:
                check({**minimal, field: value})
            assert _refuses(check, {**minimal, field: "no-such-value"}, field), field
        if prop.get("type") == "string" and "enum" not in prop:
            assert _refuses(check, {**minimal, field: ["a list"]}, field), field


def test_opening_employer_name_length_matches():
    name_schema = _schema("OpeningInput")["properties"]["employer"]["anyOf"][0]["properties"][
        "name"
    ]
    n = name_schema["maxLength"]
    validate_opening({**_min_opening(), "employer": {"name": "字" * n}})
    assert _refuses(
        validate_opening, {**_min_opening(), "employer": {"name": "字" * (n + 1)}}, "employer.name"
    )


def test_chat_limits_match():
    """The chat action bodies name the same limits as the services."""
    from jobcast.chat.config import ChatConfig

    paths = document()["paths"]
    answer = paths["/api/broadcasts/{bid}/chat/question.answer"]["post"]["requestBody"]
    props = answer["content"]["application/json"]["schema"]["properties"]
    assert props["answer"]["maxLength"] == ChatConfig().answer_max_chars


async def test_served_document(client):
    r = await client.get("/api/openapi.json")
    assert r.status == 200
    assert r.content_type == "application/json"
    assert await r.json() == document()


def test_operations_are_those_recorded_before_the_contract_moved_to_models():
    """Paths, methods, who may call them and every status code are those of the hand-written
    document this one replaced (tests/data/openapi_operations.json, stored from it): deriving
    the document from the models changed no operation a client can see."""
    import json
    from pathlib import Path

    recorded = json.loads(
        (Path(__file__).parent / "data" / "openapi_operations.json").read_text("utf-8")
    )
    now = {
        path: {
            method: {
                "operationId": op.get("operationId"),
                "access": op.get("x-jobcast-access"),
                "responses": sorted(op.get("responses", {})),
            }
            for method, op in item.items()
            if method in METHODS
        }
        for path, item in document()["paths"].items()
    }
    assert now == recorded
