"""The OpenAPI document stays in step with the router and with the validation code."""

from __future__ import annotations

from datetime import date
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from jobcast.core import broadcasts
from jobcast.core.errors import Invalid
from jobcast.openings import demo
from jobcast.openings.applicant import validate_application
from jobcast.openings.models import Opening, validate_opening
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
    for name in ("bid", "oid", "aid", "sid", "name", "code", "stream", "nid", "eid"):
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
# The schemas come from the same models as the validation, but what a field's schema accepts
# (its `json_schema_input_type`) is written apart from the code that parses it: these hold the
# two together.


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


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    name = schema["$ref"].rsplit("/", 1)[1]
    return _schema(name)


def test_opening_employer_name_length_matches():
    employer = _schema("OpeningInput")["properties"]["employer"]["anyOf"]
    for form in employer:
        name = _resolve(form)["properties"]["name"] if "$ref" in form else form
        n = name["maxLength"]
        value = "字" * n if "$ref" not in form else {"name": "字" * n}
        too_long = "字" * (n + 1) if "$ref" not in form else {"name": "字" * (n + 1)}
        validate_opening({**_min_opening(), "employer": value})
        assert _refuses(validate_opening, {**_min_opening(), "employer": too_long}, "employer.name")
        assert not _validator(_schema("OpeningInput")).is_valid(
            {**_min_opening(), "employer": too_long}
        )


# Bodies the validation accepts, in the lenient forms people send (CSV cells, Chinese labels,
# numbers as text): each must be one its documented schema accepts too.
ACCEPTED: dict[str, list[dict[str, Any]]] = {
    "OpeningInput": [
        OPENING_EXAMPLE,
        *(demo.as_sent(sample, date(2026, 9, 1)) for sample in demo.SAMPLES),
        {
            **_min_opening(),
            "employer": "鸡西矿业",
            "salary_min": "4,000",
            "salary_max": "6000.0",
            "headcount": "12",
            "education": "本科及以上",
            "majors": "机电一体化、电气自动化",
            "benefits": "五险一金,餐补",
            "deadline": "2026/9/15",
            "tags": [],
            "status": "draft",
        },
        {**_min_opening(), "employer": {"name": "鸡西矿业", "verified": "是"}, "headcount": None},
        {**_min_opening(), "deadline": "", "education": "", "id": "x", "education_label": "y"},
    ],
    "OpeningPatch": [{}, {"salary_max": 9000}, {"employer": {"verified": False}}, {"tags": "a"}],
    "ApplicationInput": [
        {
            "name": "王芳",
            "phone": "+86 138-0013-8000",
            "email": "",
            "degree": "本科",
            "graduation_year": "2026",
            "note": "第一行\n第二行",
            "consent": True,
            "consent_version": "2026-01",
        },
        {
            "name": "Anna",
            "phone": "+4915112345678",
            "email": None,
            "degree": "master",
            "graduation_year": 2025,
            "consent": True,
            "consent_version": "2026-01",
        },
    ],
    "BroadcastInput": [
        {"title": "招聘会", "scheduled_at": 1774000000000},
        {"title": "招聘会", "description": "a\nb", "scheduled_at": "2026-03-20T09:00:00Z"},
        {"title": "招聘会", "scheduled_at": ""},
    ],
    "BroadcastPatch": [{}, {"scheduled_at": None}, {"description": ""}],
}
# Bodies refused, each for the field named: refused by the validation with that field in
# `fields`, and by the documented schema.
REFUSED: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "OpeningInput": [
        ("title", {**_min_opening(), "title": ""}),
        ("employer.name", {**_min_opening(), "employer": {"verified": True}}),
        ("employer.verified", {**_min_opening(), "employer": {"name": "x", "verified": "maybe"}}),
        ("employer.boss", {**_min_opening(), "employer": {"name": "x", "boss": "y"}}),
        ("salary_min", {**_min_opening(), "salary_min": 0}),
        ("salary_max", {**_min_opening(), "salary_max": "lots"}),
        ("headcount", {**_min_opening(), "headcount": 100_001}),
        ("majors", {**_min_opening(), "majors": [1, 2]}),
        ("tags", {**_min_opening(), "tags": [f"标签{i}" for i in range(11)]}),
        ("deadline", {**_min_opening(), "deadline": 20260901}),
        ("status", {**_min_opening(), "status": "archived"}),
    ],
    "ApplicationInput": [
        ("phone", {**BODIES["ApplicationInput"][1], "phone": ""}),
        ("email", {**BODIES["ApplicationInput"][1], "email": "wangfang.example.cn"}),
        ("degree", {**BODIES["ApplicationInput"][1], "degree": 4}),
        ("graduation_year", {**BODIES["ApplicationInput"][1], "graduation_year": 1900}),
        ("consent", {**BODIES["ApplicationInput"][1], "consent": "yes"}),
        ("consent_version", {**BODIES["ApplicationInput"][1], "consent_version": "1999"}),
    ],
    "BroadcastInput": [
        ("scheduled_at", {"title": "t", "scheduled_at": -1}),
        ("scheduled_at", {"title": "t", "scheduled_at": True}),
        ("description", {"title": "t", "description": 5}),
    ],
    "BroadcastPatch": [("title", {"title": None}), ("colour", {"colour": "red"})],
}
CHECKS: dict[str, Any] = {
    "OpeningInput": validate_opening,
    "OpeningPatch": lambda d: validate_opening(d, current=_card()),
    "ApplicationInput": validate_application,
    "BroadcastInput": lambda d: broadcasts._validate(d, partial=False),
    "BroadcastPatch": lambda d: broadcasts._validate(d, partial=True),
}


def _card() -> Opening:
    fields = validate_opening(OPENING_EXAMPLE)
    return Opening(id="k7m2x9pq", broadcast_id="b4c5d6e7", created_at=1, updated_at=2, **fields)


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_every_accepted_body_is_one_its_schema_accepts(name):
    v = _validator(_schema(name))
    for body in ACCEPTED[name]:
        CHECKS[name](body)
        errors = [e.message for e in v.iter_errors(body)]
        assert not errors, (body, errors)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_every_refused_body_is_one_its_schema_refuses(name):
    v = _validator(_schema(name))
    for field, body in REFUSED[name]:
        assert _refuses(CHECKS[name], body, field), (field, body)
        assert not v.is_valid(body), (field, body)


def test_every_component_is_a_models_schema():
    """No schema is written by hand: each component is the schema of the model of its name."""
    import inspect

    from jobcast.chat import actions as chat_actions
    from jobcast.core import broadcasts as broadcast_models
    from jobcast.core.contract import json_schema
    from jobcast.openings import actions, applicant, models
    from jobcast.web.api import schemas
    from pydantic import BaseModel

    found: dict[str, type[BaseModel]] = {}
    for module in (schemas, models, applicant, broadcast_models, actions, chat_actions):
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, BaseModel):
                found.setdefault(value.__name__, value)
    components = document()["components"]["schemas"]
    assert {"Opening", "OpeningInput", "ApplicationInput", "BroadcastPatch", "Error"} <= set(
        components
    )
    for name, schema in components.items():
        assert name in found, name
        own, refs = json_schema(found[name])
        assert schema == own, name
        assert all(components[n] == s for n, s in refs.items()), name
    # Every reference in the document names a component.
    assert _refs(document()) <= set(components) | {f"E{c}" for c in range(400, 600)}


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[1]} if "$ref" in node else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def test_real_answers_match_their_components():
    """What the domain objects send is what their response components describe."""
    from jobcast.core.broadcasts import Broadcast
    from jobcast.openings.applications import _public
    from jobcast.openings.csvio import parse_openings

    card = _card()
    checks = [
        ("Opening", card.public()),
        ("Pinned", {"opening": card.public(), "pinned_at": 3}),
        ("OpeningList", {"openings": [card.public()], "cities": [card.city]}),
    ]
    b = Broadcast(
        id="b4c5d6e7",
        title="t",
        description="",
        scheduled_at=None,
        status="scheduled",
        created_at=1,
        updated_at=1,
        org="acme",
    )
    checks.append(("Broadcast", b.public()))
    checks.append(("BroadcastWithViewers", {**b.public(), "viewers": 0}))
    rows = "岗位名称,单位名称,工作地点,薪资\n电工,鸡西矿业,鸡西市,4k-6k\n,,,\n焊工,,鸡西市,x\n"
    report = parse_openings(rows.encode())
    checks.append(("ImportReport", report.public(dry_run=True)))
    # every field the preview sends is declared (the schema alone would allow extra ones)
    from jobcast.web.api import schemas

    assert set(report.public(dry_run=True)) <= set(schemas.ImportReport.model_fields)
    for row in report.rows:
        assert set(row) <= set(schemas.ImportRow.model_fields), row
    stored = {
        "id": "a1b2c3d4e5",
        "opening_id": card.id,
        "opening_title": card.title,
        "employer": card.employer.name,
        "status": "new",
        "created_at": "1",
        "updated_at": "1",
        "consented_at": "1",
        **{k: str(v) for k, v in validate_application(ACCEPTED["ApplicationInput"][0]).items()},
    }
    application = {
        **_public({k.encode(): v.encode() for k, v in stored.items()}),
        "same_phone": 0,
        "same_phone_ids": [],
    }
    checks.append(("Application", application))
    for name, answer in checks:
        errors = [e.message for e in _validator(_schema(name)).iter_errors(answer)]
        assert not errors, (name, errors)
    assert "org" not in _schema("Broadcast")["properties"]


def test_csv_columns_are_the_opening_models_fields():
    from jobcast.openings.csvio import EXPORT_COLUMNS, HEADERS
    from jobcast.openings.models import WRITABLE

    exported = [f for _, f in EXPORT_COLUMNS]
    assert exported[0] == "id"
    assert [f for f in exported if f != "employer_verified"][1:] == list(WRITABLE)
    assert all(h in HEADERS[f] for h, f in EXPORT_COLUMNS)


def test_chat_limits_match():
    """The chat action bodies name the same limits as the services."""
    from jobcast.chat.config import ChatConfig

    doc = document()
    answer = doc["paths"]["/api/broadcasts/{bid}/chat/question.answer"]["post"]["requestBody"]
    name = answer["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    props = doc["components"]["schemas"][name]["properties"]
    assert props["answer"]["maxLength"] == ChatConfig().answer_max_chars


async def test_served_document(client):
    r = await client.get("/api/openapi.json")
    assert r.status == 200
    assert r.content_type == "application/json"
    assert await r.json() == document()


def test_operations_are_those_recorded_before_the_contract_moved_to_models():
    """Paths, methods, who may call them and every status code of the operations in the
    hand-written document this one replaced (tests/data/openapi_operations.json, stored from
    it) are unchanged: deriving the document from the models changed no operation a client
    can see."""
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
    # operations added since (HLS, replays) are new; every recorded one is as it was
    kept = {path: {m: now.get(path, {}).get(m) for m in ops} for path, ops in recorded.items()}
    assert kept == recorded
