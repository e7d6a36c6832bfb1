"""The data of every chat action (socket frames and the JSON API's bodies) and the shape of
its reply, as pydantic models.

A field the service checks (a question id's digits, the seconds of a time-out, ...) is taken
as sent (`Any`) and documented in its canonical form (`WithJsonSchema`); the service refuses a
bad value with its own message, before or after looking anything up, as it always did. What
the model itself decides is which fields must be there and what an absent one means (`up` is
true). A field the canonical form requires but whose absence the service reports itself
(`review.decide`'s `approve`, a time-out's `seconds`) is required in the schema only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from jobcast.chat.config import ChatConfig
from jobcast.chat.moderation import SLOW_MAX, TIMEOUT_MAX, TIMEOUT_MIN, WORD_MAX_CHARS, WORDS_MAX
from jobcast.core.actions import ActionData, documented
from jobcast.core.contract import Ms, Output
from pydantic import ConfigDict, WithJsonSchema

_CONFIG = ChatConfig()

ITEM_ID = {
    "anyOf": [{"type": "string", "pattern": "^[0-9]{1,12}$"}, {"type": "integer", "minimum": 0}],
    "description": "a message or question id (a number, as a string or an integer)",
}
BOOL = {"type": "boolean"}


def _text(max_len: int, *, required: bool = False, multiline: bool = False) -> dict[str, Any]:
    """Plain text, counted in characters after control characters are stripped."""
    s: dict[str, Any] = {"type": "string", "maxLength": max_len}
    if required:
        s["minLength"] = 1
    if multiline:
        s["description"] = "may contain line breaks"
    return s


def _canonical(*required: str, who: bool = False) -> ConfigDict:
    """The schema's `required` (and, for an action about a viewer, which fields say who)."""
    if not who:
        return documented(*required)
    return documented(
        *required,
        description="the viewer an action is about: `viewer_id`, or the author of `message_id` "
        "or `question_id`",
        anyOf=[{"required": [k]} for k in ("viewer_id", "message_id", "question_id")],
    )


ItemId = Annotated[Any, WithJsonSchema(ITEM_ID)]
Bool = Annotated[Any, WithJsonSchema(BOOL)]
Text = Annotated[Any, WithJsonSchema(_text(_CONFIG.max_chars, required=True))]
AnswerText = Annotated[Any, WithJsonSchema(_text(_CONFIG.answer_max_chars, multiline=True))]
OpeningRef = Annotated[
    Any,
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "null"}], "description": "opening id"}),
]
VoteUp = Annotated[Any, WithJsonSchema({**BOOL, "description": "false withdraws the vote"})]
MaybeItemId = Annotated[Any, WithJsonSchema({"anyOf": [ITEM_ID, {"type": "null"}]})]
ReviewKind = Annotated[Any, WithJsonSchema({"enum": ["message", "question"]})]
ViewerId = Annotated[Any, WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 64})]
TimeoutSeconds = Annotated[
    Any, WithJsonSchema({"type": "integer", "minimum": TIMEOUT_MIN, "maximum": TIMEOUT_MAX})
]
WithAddress = Annotated[
    Any, WithJsonSchema({**BOOL, "description": "false: the viewer id only, not its address"})
]
SlowSeconds = Annotated[Any, WithJsonSchema({"type": "integer", "minimum": 0, "maximum": SLOW_MAX})]
WordList = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "string", "maxLength": WORD_MAX_CHARS},
            "maxItems": WORDS_MAX,
        }
    ),
]


# -- viewers ----------------------------------------------------------------------------------


class ChatMessageInput(ActionData):
    model_config = _canonical("text")
    text: Text = None


class QuestionInput(ActionData):
    model_config = _canonical("text")
    text: Text = None
    anonymous: Bool = False
    opening_id: OpeningRef = None


class VoteInput(ActionData):
    id: ItemId
    up: VoteUp = True


# -- hosts and moderators ---------------------------------------------------------------------


class ItemRef(ActionData):
    id: ItemId


class AnswerInput(ActionData):
    id: ItemId
    answer: AnswerText = None
    answered: Bool = True


class HighlightInput(ActionData):
    id: MaybeItemId = None


class ReviewDecision(ActionData):
    model_config = _canonical("kind", "id", "approve")
    kind: ReviewKind = None
    id: ItemId = None
    approve: Bool = None


class Who(ActionData):
    model_config = _canonical(who=True)
    viewer_id: ViewerId = None
    message_id: ItemId = None
    question_id: ItemId = None


class TimeoutInput(Who):
    model_config = _canonical("seconds", who=True)
    seconds: TimeoutSeconds = None


class BanInput(Who):
    ip: WithAddress = True


class SlowModeInput(ActionData):
    model_config = _canonical("seconds")
    seconds: SlowSeconds = None


class AfterEndInput(ActionData):
    model_config = _canonical("open")
    open: Bool = None


class PinInput(ActionData):
    id: MaybeItemId = None


class WordsInput(ActionData):
    model_config = documented(minProperties=1)
    set: WordList = None
    add: WordList = None
    remove: WordList = None


# -- replies (for the API document: the services build them as dicts) --------------------


class Hidden(Output):
    id: str
    hidden: Literal[True]


class Highlighted(Output):
    id: str | None


class Decided(Output):
    kind: Literal["message", "question"]
    id: str
    approved: bool


class Muted(Output):
    viewer_id: str
    until: Ms
    by: str


class ViewerRef(Output):
    viewer_id: str


class Banned(Output):
    viewer_id: str
    ip_banned: bool
    at: Ms
    by: str


class SlowModeSet(Output):
    slow_mode: int


class AfterEndSet(Output):
    open_after_end: bool


class PinnedChatMessage(Output):
    id: str
    name: str
    role: str
    text: str
    ts: Ms


class MessagePinned(Output):
    message: PinnedChatMessage | None


class BlockedWords(Output):
    words: list[str]


# -- polls (chat/polls.py) --------------------------------------------------------------------

PollId = Annotated[Any, WithJsonSchema({**ITEM_ID, "description": "a poll id (a number)"})]
PollQuestion = Annotated[Any, WithJsonSchema(_text(140, required=True))]
PollOptions = Annotated[
    Any,
    WithJsonSchema(
        {"type": "array", "items": _text(80, required=True), "minItems": 2, "maxItems": 6}
    ),
]
OptionIndex = Annotated[
    Any, WithJsonSchema({"type": "integer", "minimum": 0, "description": "the option's index"})
]


class PollInput(ActionData):
    model_config = _canonical("question", "options")
    question: PollQuestion = None
    options: PollOptions = None


class JobsPollInput(ActionData):
    question: Annotated[
        Any,
        WithJsonSchema({**_text(140), "description": "empty: each page asks in its language"}),
    ] = None


class PollRef(ActionData):
    model_config = _canonical("id")
    id: PollId = None


class PollVoteInput(ActionData):
    model_config = _canonical("id", "option")
    id: PollId = None
    option: OptionIndex = None


class PollOption(Output):
    text: str
    opening_id: str | None


class Poll(Output):
    id: str
    kind: Literal["free", "jobs"]
    question: str
    options: list[PollOption]
    status: Literal["open", "closed"]
    ts: Ms
    closed_at: Ms | None
    totals: list[int]
    voters: int


class PollVoted(Output):
    id: str
    choice: int
    changed: bool
    totals: list[int]
    voters: int


class PollChoice(Output):
    id: str | None
    choice: int | None


class PollRemoved(Output):
    id: str
    removed: Literal[True]


class PollState(Output):
    poll: Poll | None
    choice: int | None
