"""Every declared action (core/actions.py): reachable over the socket with its access rule
enforced, and, where a JSON API route serves it too, refused alike over both transports."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from jobcast.core.actions import Action
from jobcast.web.appkeys import WS_ACTIONS

from tests.chat_helpers import call
from tests.helpers import Host, Viewer, connect, login

# Who may send each socket action, as it was before the actions were declared.
ACCESS = {
    "chat.send": "viewer",
    "question.ask": "viewer",
    "question.vote": "viewer",
    "chat.hide": "staff",
    "chat.pin": "staff",
    "mod.after_end": "staff",
    "question.answer": "staff",
    "question.highlight": "staff",
    "question.hide": "staff",
    "question.restore": "staff",
    "review.decide": "staff",
    "mod.timeout": "staff",
    "mod.untimeout": "staff",
    "mod.ban": "staff",
    "mod.unban": "staff",
    "mod.slow_mode": "staff",
    "mod.words": "staff",
    "card.pin": "host",
    "card.pin_next": "host",
    "card.unpin": "host",
    "poll.vote": "viewer",
    "poll.mine": "viewer",
    "poll.create": "staff",
    "poll.jobs": "staff",
    "poll.close": "staff",
    "poll.remove": "staff",
}
ALLOWED = {
    "viewer": {"viewer", "moderator", "host"},
    "staff": {"moderator", "host"},
    "host": {"host"},
}
REFUSED = {
    "staff": {"code": "staff_only", "message": "hosts and moderators only"},
    "host": {"code": "host_only", "message": "only hosts may do this"},
}
FAST = {"ws_messages_per_second": 10_000.0, "ws_burst": 10_000}
# Values no field of any action accepts.
BAD_VALUES = ([[]], {"x": 1}, "", None)


class Room:
    """One broadcast with a host, a moderator (its own instance, so its own cookies) and a
    viewer, each on a socket of the broadcast."""

    client: TestClient
    host: Host
    bid: str
    sockets: dict[str, Viewer]


async def _room(app_factory: Any, redis_url: str) -> Room:
    room = Room()
    room.client = await app_factory(redis_url, **FAST)
    room.host = await login(room.client)
    room.bid = await room.host.create_broadcast()
    mod_client = await app_factory(redis_url, **FAST)
    await login(mod_client, "mod1", "moderator")
    viewer_client = await app_factory(redis_url, **FAST)
    room.sockets = {
        "host": await connect(room.client, room.bid, host=True),
        "moderator": await connect(mod_client, room.bid, host=True),
        "viewer": await connect(viewer_client, room.bid),
    }
    return room


def _declared(client: TestClient) -> dict[str, Action[Any]]:
    return client.server.app[WS_ACTIONS]


async def test_every_action_is_declared_with_its_access(app_factory, redis_url):
    client = await app_factory(redis_url)
    declared = _declared(client)
    assert {name: a.access for name, a in declared.items()} == ACCESS
    for name, action in declared.items():
        assert action.name == name
        assert action.summary, name


async def test_every_action_is_reachable_over_the_socket_with_its_access_enforced(
    app_factory, redis_url
):
    room = await _room(app_factory, redis_url)
    for name, action in sorted(_declared(room.client).items()):
        for role, sock in room.sockets.items():
            reply = await call(sock, name, {})
            if role in ALLOWED[action.access]:
                # Past the access check: the model or the handler answered.
                code = reply["data"].get("code") if reply["type"] == "error" else None
                assert code not in ("unknown_type", "staff_only", "host_only"), (name, role, reply)
            else:
                # Refused before the data is looked at (an empty body is not a 422 here).
                assert reply["type"] == "error", (name, role, reply)
                assert reply["data"] == REFUSED[action.access], (name, role, reply)


def _bad_bodies(action: Action[Any]) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = [{}]
    for field in action.model.model_fields:
        bodies += [{field: v} for v in BAD_VALUES]
    return bodies


async def test_http_routes_refuse_a_bad_body_as_the_socket_does(app_factory, redis_url):
    room = await _room(app_factory, redis_url)
    sock = room.sockets["host"]
    served = [a for a in _declared(room.client).values() if a.http and a.model.model_fields]
    assert {a.name for a in served} >= {"card.pin", "mod.ban", "question.answer"}
    for action in served:
        assert action.http is not None
        method, path = action.http
        url = path.replace("{bid}", room.bid)
        invalid = 0
        for body in _bad_bodies(action):
            over_socket = await call(sock, action.name, body)
            r = await room.host.client.request(
                method, url, json=body, headers={"X-CSRF-Token": room.host.csrf}
            )
            what = (action.name, body)
            if over_socket["type"] == "ack":
                assert r.status == 200, (*what, await r.text())
                continue
            assert r.status >= 400, what
            assert await r.json() == {"error": over_socket["data"]}, what
            if r.status == 422:
                assert over_socket["data"]["fields"], what
                invalid += 1
        assert invalid, f"{action.name}: no bad body was refused as invalid"


async def test_http_routes_ask_for_the_same_access(app_factory, redis_url):
    room = await _room(app_factory, redis_url)
    mod_client = await app_factory(redis_url)
    mod = await login(mod_client, "mod2", "moderator")
    anonymous = await app_factory(redis_url)
    for action in _declared(room.client).values():
        if action.http is None:
            continue
        method, path = action.http
        url = path.replace("{bid}", room.bid)
        r = await anonymous.request(method, url, json={})
        assert r.status == 401, action.name
        assert (await r.json())["error"]["code"] == "login_required"
        r = await mod_client.request(method, url, json={}, headers={"X-CSRF-Token": mod.csrf})
        if action.access == "host":
            assert r.status == 403, action.name
            assert (await r.json())["error"] == REFUSED["host"]
        else:
            assert r.status not in (401, 403), (action.name, await r.text())


def test_the_api_document_describes_each_served_action_by_its_models():
    """The chat action operations are generated from the declarations: the body is the data
    model's component, the answer the reply model's (no other model of the same name)."""
    from jobcast.core.contract import json_schema
    from jobcast.web.api.chat import STAFF
    from jobcast.web.api.openapi import document

    doc = document()
    components = doc["components"]["schemas"]

    def component(node: dict[str, Any]) -> dict[str, Any]:
        return components[node["content"]["application/json"]["schema"]["$ref"].rsplit("/")[-1]]

    for name, action in STAFF.items():
        assert action.http is not None and action.reply is not None, name
        method, path = action.http
        op = doc["paths"][path][method.lower()]
        assert (op["summary"], op["x-jobcast-access"]) == (action.summary, action.access)
        assert component(op["requestBody"]) == json_schema(action.model)[0], name
        assert component(op["responses"]["200"]) == json_schema(action.reply)[0], name
