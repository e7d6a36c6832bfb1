"""Live polls wired into the app: socket actions, JSON API, snapshot part and the throttled
results publisher.

Viewers vote over their socket (`poll.vote`) and ask for their own choice after joining
(`poll.mine`: the snapshot is shared by every socket, so it cannot carry it). Hosts and
moderators start, close and remove polls over the host socket or
`POST /api/broadcasts/{bid}/polls/<action>`; both run the same declared action.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from jobcast.chat import actions as chat_actions
from jobcast.chat.polls import PollService
from jobcast.core.actions import Action, Caller, NoData, given
from jobcast.web.access.requests import viewer_id as request_viewer_id
from jobcast.web.api.actions import StaffActions, declare
from jobcast.web.api.chat import actor_of
from jobcast.web.api.openings import OPENINGS
from jobcast.web.appkeys import BROADCASTS, EVENT_LOG, REDIS, SETTINGS, SNAPSHOT_PARTS
from jobcast.web.jsonutil import json_response

routes = web.RouteTableDef()

POLLS = web.AppKey("polls", PollService)


# -- viewers ----------------------------------------------------------------------------------


async def _vote(caller: Caller, data: chat_actions.PollVoteInput) -> dict[str, Any]:
    return await caller.app[POLLS].vote(caller.bid, actor_of(caller), data.id, data.option)


async def _mine(caller: Caller, data: NoData) -> dict[str, Any]:
    return await caller.app[POLLS].mine(caller.bid, actor_of(caller))


VIEWER = (
    Action(
        "poll.vote",
        chat_actions.PollVoteInput,
        "viewer",
        _vote,
        summary="Choose one option of the open poll (again: change the choice)",
        reply=chat_actions.PollVoted,
    ),
    Action(
        "poll.mine",
        NoData,
        "viewer",
        _mine,
        summary="The shown poll's id and this viewer's choice in it",
        reply=chat_actions.PollChoice,
    ),
)

# -- hosts and moderators ---------------------------------------------------------------------

_FAMILY = StaffActions("polls", POLLS, actor_of, noun="poll")
_staff = _FAMILY.action

STAFF: dict[str, Action[Any]] = {
    a.name: a
    for a in (
        _staff(
            "poll.create",
            chat_actions.PollInput,
            "Start a poll: a question and 2-6 options",
            chat_actions.Poll,
            lambda s, b, d, a: s.create(b, given(d), a),
        ),
        _staff(
            "poll.jobs",
            chat_actions.JobsPollInput,
            "Start 'which of these jobs interests you?' over the first published openings",
            chat_actions.Poll,
            lambda s, b, d, a: s.create_jobs(b, given(d), a),
        ),
        _staff(
            "poll.close",
            chat_actions.PollRef,
            "Stop the voting; the results stay shown, marked closed",
            chat_actions.Poll,
            lambda s, b, d, a: s.close(b, d.id, a),
        ),
        _staff(
            "poll.remove",
            chat_actions.PollRef,
            "Take the poll off every screen",
            chat_actions.PollRemoved,
            lambda s, b, d, a: s.remove(b, d.id, a),
        ),
    )
}
ACTIONS: tuple[Action[Any], ...] = (*VIEWER, *STAFF.values())

# Request examples for the API document.
EXAMPLES: dict[str, dict[str, Any]] = {
    "poll.create": {"question": "你最关心哪方面？", "options": ["薪资", "地点", "五险一金"]},
    "poll.jobs": {},
    "poll.close": {"id": "1"},
    "poll.remove": {"id": "1"},
}


# `POST /api/broadcasts/{id}/polls/<action>` with the action's data as the JSON body.
_FAMILY.serve(routes)


@routes.get("/api/broadcasts/{bid}/poll")
async def poll_state(request: web.Request) -> web.Response:
    """The poll shown now (or null) and the calling viewer's choice in it."""
    bid = request.match_info["bid"]
    await request.app[BROADCASTS].get(bid)
    service = request.app[POLLS]
    poll = await service.current(bid)
    choice = None
    vid = request_viewer_id(request)
    if poll is not None and vid:
        choice = await service.choice_of(bid, poll["id"], vid)
    return json_response({"poll": poll, "choice": choice})


async def _lineup_of(app: web.Application, bid: str) -> list[tuple[str, str]]:
    service = app.get(OPENINGS)
    if service is None:
        return []
    out = []
    for o in await service.list(bid):
        label = o.title if not o.employer.name else f"{o.title} · {o.employer.name}"
        out.append((o.id, label))
    return out


async def _polls_ctx(app: web.Application) -> AsyncIterator[None]:
    async def lineup(bid: str) -> list[tuple[str, str]]:
        return await _lineup_of(app, bid)

    service = PollService(
        app[REDIS], app[EVENT_LOG], app[SETTINGS].qa_votes_interval, lineup=lineup
    )
    app[POLLS] = service
    service.start()
    yield
    await service.close_task()


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)

    async def part(bid: str, host: bool) -> dict[str, Any]:
        return await app[POLLS].snapshot(bid, host)

    app[SNAPSHOT_PARTS].append(part)
    declare(app, *ACTIONS)
    app.cleanup_ctx.append(_polls_ctx)
