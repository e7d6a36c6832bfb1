"""Property tests with hypothesis against a running app.

The WebSocket protocol: any frame (text or binary, not JSON, any JSON value, objects with any
type/id/data, every registered action with each of its fields replaced by any value) gets one
answer, an `ack`, `pong` or an `error` with a code, carrying the frame's id when it had a
usable one; the socket stays open; nothing is logged as an error or with a traceback.

The CSV import: any bytes, in any encoding, with any headers and rows, answer a clean 200/201,
413 or 422 (with the per-row report), never 500; a dry run never writes; a refused import
writes nothing either.

Hypothesis runs in a worker thread; each step runs on the test's loop (where the app serves)
through run_coroutine_threadsafe. Runs are derandomized, so CI sees the same inputs each time.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from jobcast.core import keys
from jobcast.openings.csvio import HEADERS
from jobcast.web.api import polls as polls_api
from jobcast.web.api.openapi import CHAT_EXAMPLES, OPENING_EXAMPLE
from jobcast.web.appkeys import REDIS, WS_ACTIONS

from tests.helpers import connect, login
from tests.strategies import AWKWARD_TEXT, TEXT, deeply_nested, json_values

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("JOBCAST_FUZZ_EXAMPLES", "20"))
FRAME_MAX = 8 * 1024


def _settings(n: int) -> Any:
    return settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


def _on_loop(loop: asyncio.AbstractEventLoop) -> Callable[[Awaitable[Any]], Any]:
    def run(coro: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=15)  # type: ignore[arg-type]

    return run


def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info is not None
    ]
    assert not bad, bad


# -- WebSocket frames -----------------------------------------------------------------------

# One valid `data` per socket action: the properties replace one field at a time. A new action
# registered in app[WS_ACTIONS] without an entry here fails the test.
VIEWER_ACTIONS = {
    "ping": {"t": 1},
    "set_name": {"name": "小王"},
    "chat.send": {"text": "请问几点开始？"},
    "question.ask": {"text": "招应届生吗？", "anonymous": False},
    "question.vote": {"id": "1", "up": True},
    "card.pin": {"opening_id": "set per test"},
    "card.pin_next": {},
    "card.unpin": {},
    "poll.vote": {"id": "1", "option": 0},
    "poll.mine": {},
}
# The staff actions' bodies are the API document's examples (chat's and the polls').
ACTIONS = {**VIEWER_ACTIONS, **CHAT_EXAMPLES, **polls_api.EXAMPLES}


def _frames(actions: dict[str, dict[str, Any]]) -> st.SearchStrategy[bytes | str]:
    """Mostly well-formed frames for real actions (each field in turn given any value), then
    frames of any shape, then text and bytes that are not JSON at all."""
    ids = st.one_of(st.integers(0, 10**6), st.text(max_size=20))
    wild_ids = st.one_of(st.text(max_size=70), json_values(4))
    action = st.sampled_from(sorted(actions))

    def replace_one(name: str) -> st.SearchStrategy[dict[str, Any]]:
        example = actions[name]
        field = st.sampled_from([*example, "unexpected"])
        return st.builds(
            lambda f, v, i: {"type": name, "id": i, "data": {**example, f: v}},
            field,
            json_values(),
            ids,
        )

    def frame(t: Any, d: Any, i: Any) -> dict[str, Any]:
        return {"type": t, "id": i, "data": d}

    as_json = st.one_of(
        st.builds(frame, action, action.map(lambda a: actions[a]), ids),  # as documented
        action.flatmap(replace_one),
        action.flatmap(replace_one),
        st.builds(frame, action, json_values(), ids),
        st.builds(frame, st.one_of(TEXT, json_values(3)), json_values(4), wild_ids),
        st.dictionaries(
            st.one_of(st.sampled_from(["type", "id", "data"]), TEXT), json_values(4), max_size=4
        ),
        json_values(),
    ).map(lambda v: json.dumps(v, ensure_ascii=False))
    return st.one_of(
        as_json,
        as_json,
        as_json.map(lambda s: s.encode()),  # the same JSON in a binary frame
        st.text(max_size=300),
        st.binary(max_size=300),
        AWKWARD_TEXT,
    )


def _expected_id(frame: bytes | str) -> Any:
    """The id the server echoes (None: an answer without id), parsed as the server parses."""
    raw = frame.encode() if isinstance(frame, str) else frame
    if len(raw) > FRAME_MAX:
        return None
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(msg, dict):
        return None
    id_ = msg.get("id")
    if isinstance(id_, (int, str)) and len(str(id_)) <= 64:
        return id_
    return None


class Exchange:
    """Send one frame on a socket and wait for its answer."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.answered: set[int] = set()  # id() of the events already taken as answers

    async def __call__(self, frame: bytes | str) -> dict[str, Any]:
        want = _expected_id(frame)
        if isinstance(frame, bytes):
            await self.sock.ws.send_bytes(frame)
        else:
            await self.sock.ws.send_str(frame)
        answer = await self.sock.wait_for(
            lambda e: (
                e["type"] in ("ack", "error", "pong")
                and id(e) not in self.answered
                and (e.get("id") == want if want is not None else "id" not in e)
            ),
            timeout=10,
        )
        self.answered.add(id(answer))
        return answer


ANSWERS: dict[str, int] = {}


def _check_answer(answer: dict[str, Any], frame: Any) -> None:
    code = (
        answer["data"].get("code", answer["type"]) if answer["type"] == "error" else answer["type"]
    )
    ANSWERS[code] = ANSWERS.get(code, 0) + 1
    if answer["type"] == "error":
        data = answer["data"]
        assert isinstance(data.get("code"), str) and data["code"], (frame, answer)
        assert isinstance(data.get("message"), str), (frame, answer)
        assert data["code"] != "internal", (frame, answer)
    else:
        assert isinstance(answer["data"], dict), (frame, answer)


async def _ws_setup(client: Any) -> tuple[Any, Any, str]:
    host = await login(client)
    viewer_bid = await host.create_broadcast("viewers")
    host_bid = await host.create_broadcast("console")
    oids = {}
    for bid in (viewer_bid, host_bid):
        r = await host.post(f"/api/broadcasts/{bid}/openings", OPENING_EXAMPLE)
        assert r.status == 201, await r.text()
        oids[bid] = (await r.json())["id"]
    viewer = await connect(client, viewer_bid)
    # The host console is on another broadcast, so its bans and time-outs never close the
    # viewer socket under test (closing a banned viewer's socket is what a ban does).
    console = await connect(client, host_bid, host=True)
    return viewer, console, oids[host_bid]


async def test_websocket_answers_every_frame_and_stays_open(app_factory, redis_url, caplog):
    caplog.set_level(logging.WARNING)
    client = await app_factory(
        redis_url,
        ws_messages_per_second=10_000.0,
        ws_burst=10_000,
        chat_rate=10_000.0,
        chat_burst=10_000,
        chat_ip_rate=10_000.0,
        chat_ip_burst=10_000,
        chat_batch_ms=0,
    )
    registered = set(client.server.app[WS_ACTIONS]) | {"ping", "set_name"}
    assert registered <= set(ACTIONS), f"give an example for {registered - set(ACTIONS)}"
    viewer, console, oid = await _ws_setup(client)
    actions = {**ACTIONS, "card.pin": {"opening_id": oid}}
    run = _on_loop(asyncio.get_running_loop())
    sockets = {"viewer": Exchange(viewer), "host": Exchange(console)}

    def prop() -> None:
        @_settings(EXAMPLES * 40)
        @given(frame=_frames(actions), who=st.sampled_from(sorted(sockets)))
        @example(
            frame=json.dumps({"type": "ping", "id": 1, "data": {"t": deeply_nested(400)}}),
            who="viewer",
        )
        @example(frame=json.dumps({"type": "ping", "id": 2, "data": {"t": 10**40}}), who="host")
        @example(frame="x" * (FRAME_MAX + 1), who="viewer")
        @example(frame=b"\xff\xfe\x00", who="host")
        @example(
            frame=json.dumps({"type": "set_name", "id": True, "data": {"name": "a"}}), who="viewer"
        )
        def check(frame: bytes | str, who: str) -> None:
            answer = run(sockets[who](frame))
            _check_answer(answer, frame)

        check()

    ANSWERS.clear()
    await asyncio.to_thread(prop)
    print(f"answers: {dict(sorted(ANSWERS.items()))}")
    assert ANSWERS.get("ack", 0) > 10 and ANSWERS.get("bad_frame", 0) > 10
    for name, sock in (("viewer", viewer), ("host", console)):
        assert not sock.closed.is_set(), f"{name} socket closed"
        await sock.send("ping", {"t": "end"}, id_="last")
        pong = await sock.wait_for(lambda e: e.get("id") == "last")
        assert pong == {"type": "pong", "id": "last", "data": {"t": "end"}}
    assert len(sockets["viewer"].answered) > 20 and len(sockets["host"].answered) > 20
    _no_errors_logged(caplog)


# -- CSV import ---------------------------------------------------------------------------

ENCODINGS = ["utf-8", "utf-8-sig", "gb18030", "utf-16", "utf-16-le", "latin-1", "big5"]
KNOWN_HEADERS = sorted({h for aliases in HEADERS.values() for h in aliases})
GOOD = {
    "title": "电工",
    "employer": "鸡西矿业",
    "city": "鸡西市",
    "salary_min": "4000",
    "salary_max": "6000",
    "salary": "4k-6k",
    "education": "大专及以上",
    "deadline": "2026/9/15",
    "status": "已发布",
    "headcount": "3",
}


FIELD_OF = {h: f for f, aliases in HEADERS.items() for h in aliases}
REQUIRED = [
    ["岗位名称", "title"],
    ["单位名称", "employer"],
    ["工作地点", "city"],
    ["薪资", "salary"],
]


@st.composite
def csv_files(draw: Any) -> bytes:
    """A CSV file: the required columns or any headers, known and unknown; cells good for
    their column or hostile; any delimiter and encoding; sometimes cut short or with a byte
    changed. One in three is clean (every cell good for its column), so imports succeed too."""
    clean = draw(st.integers(0, 2)) == 0
    extra = st.lists(st.one_of(st.sampled_from(KNOWN_HEADERS), TEXT), max_size=5)
    if clean or draw(st.integers(0, 2)):
        names = [draw(st.sampled_from(pair)) for pair in REQUIRED] + draw(extra)
        names = draw(st.permutations(names))
    else:
        names = draw(extra.filter(bool))

    def cell(header: str) -> st.SearchStrategy[str]:
        good = GOOD.get(FIELD_OF.get(header, header), "")
        if clean:
            return st.just(good)
        hostile = st.one_of(TEXT, st.sampled_from(["=1+1", '"', "0", "-5", "99999999999"]))
        return st.one_of(*[st.just(good)] * 4, hostile)

    row = st.tuples(*[cell(h) for h in names]).map(list)
    ragged = st.lists(st.one_of(TEXT, st.sampled_from(list(GOOD.values()))), max_size=10)
    rows = draw(st.lists(row if clean else st.one_of(row, row, row, ragged), max_size=6))
    delimiter = draw(st.sampled_from([",", "\t", ";"]))
    buf = io.StringIO()
    if draw(st.booleans()):
        end = draw(st.sampled_from(["\r\n", "\n"]))
        w = csv.writer(buf, delimiter=delimiter, lineterminator=end)
        w.writerow(names)
        w.writerows(rows)
    else:  # no quoting at all: stray quotes and delimiters inside cells stay as they are
        buf.write("\n".join(delimiter.join(r) for r in [names, *rows]))
    encoding = draw(st.sampled_from(ENCODINGS[:4] if clean else ENCODINGS))
    data = buf.getvalue().encode(encoding, errors="replace")
    if not clean and draw(st.integers(0, 3)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    if not clean and data and draw(st.integers(0, 3)) == 0:
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]
    return data


def _valid_file(enc: str) -> bytes:
    head = ["岗位名称", "单位名称", "工作地点", "薪资下限", "薪资上限", "状态"]
    row = ["电工", "鸡西矿业", "鸡西市", "4000", "6000", "已发布"]
    return ("\r\n".join(",".join(r) for r in [head, row]) + "\r\n").encode(enc)


async def _import_state(client: Any, bid: str) -> tuple[int, int]:
    redis = client.server.app[REDIS]
    return await redis.hlen(keys.openings(bid)), await redis.xlen(keys.events(bid))


async def test_csv_import_any_file(app_factory, redis_url, caplog):
    caplog.set_level(logging.WARNING)
    limit = 64 * 1024
    client = await app_factory(redis_url, max_upload_bytes=limit)
    host = await login(client)
    bid = await host.create_broadcast("csv")
    run = _on_loop(asyncio.get_running_loop())
    path = f"/api/broadcasts/{bid}/openings/import"
    headers = {"X-CSRF-Token": host.csrf}
    outcomes: dict[int, int] = {}

    async def upload(data: bytes, query: str, multipart: bool) -> tuple[int, dict[str, Any]]:
        if multipart:
            form = aiohttp.FormData()
            form.add_field("file", data, filename="岗位.csv", content_type="text/csv")
            r = await client.post(path + query, data=form, headers=headers)
        else:
            r = await client.post(
                path + query, data=data, headers={**headers, "Content-Type": "text/csv"}
            )
        return r.status, await r.json()

    def check_body(status: int, body: dict[str, Any], dry: bool) -> None:
        outcomes[status] = outcomes.get(status, 0) + 1
        assert status in ((200, 413, 422) if dry else (201, 409, 413, 422)), (status, body)
        if status >= 400:
            assert set(body) == {"error"} and body["error"]["code"], body
            if body["error"]["code"] == "import_invalid":
                report = body["error"]["report"]
                assert report["invalid"] > 0
                assert all(r["ok"] or r["errors"] for r in report["rows"])
        else:
            assert body["dry_run"] is dry and body["total"] == len(body["rows"])
            assert body["valid"] + body["invalid"] == body["total"]
            for r in body["rows"]:
                assert isinstance(r["row"], int) and r["row"] >= 2
                assert r["ok"] or r["errors"]

    def prop() -> None:
        @_settings(EXAMPLES * 12)
        @given(data=st.one_of(csv_files(), st.binary(max_size=500)), multipart=st.booleans())
        @example(data=b"\xff\xfeA", multipart=False)  # UTF-16 cut in the middle of a unit
        @example(data=b"\xef\xbb\xbf\xff\xfe", multipart=True)  # BOM, then not UTF-8
        @example(data=b"\xfe\xff\xd8\x00\x00A", multipart=False)  # lone surrogate
        @example(data=b"a" * (limit + 1), multipart=False)
        @example(data=_valid_file("gb18030"), multipart=True)
        @example(data=_valid_file("utf-16"), multipart=False)
        def check(data: bytes, multipart: bool) -> None:
            before = run(_import_state(client, bid))
            status, body = run(upload(data, "?dry_run=1", multipart))
            check_body(status, body, dry=True)
            assert run(_import_state(client, bid)) == before, "a dry run wrote"
            status, body = run(upload(data, "", multipart))
            check_body(status, body, dry=False)
            after = run(_import_state(client, bid))
            if status == 201:
                assert after[0] == before[0] + len(body["created"])
            else:
                assert after == before, f"a refused import ({status}) wrote"

        check()

    await asyncio.to_thread(prop)
    print(f"csv outcomes: {dict(sorted(outcomes.items()))}")
    assert outcomes.get(201, 0) >= 2 and outcomes.get(422, 0) > 10 and outcomes.get(413)
    _no_errors_logged(caplog)
