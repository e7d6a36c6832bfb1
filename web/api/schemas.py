"""The shapes the JSON API sends and reads beyond the domain models (openings, broadcasts and
applications have theirs beside their validation): list and state wrappers, the error shape,
sessions, the chat state and the media answers. Services build these answers as dicts; the
models describe them for the API document (web/api/openapi.py), and tests/test_fuzz.py holds
every real answer to them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from jobcast.core.broadcasts import Broadcast
from jobcast.core.contract import Id, Input, Ms, Output
from jobcast.openings.applications import STATUSES as APPLICATION_STATUSES
from jobcast.openings.models import Opening, Pinned
from jobcast.web.access.auth import USERNAME_MAX
from jobcast.web.redis_errors import HEALTH_KINDS, Refusal
from pydantic import ConfigDict, Field

# -- shared --------------------------------------------------------------------------------


class ErrorBody(Output):
    """Some codes add context: `limit`, `report`, `ignored_columns`, `until`."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(min_length=1)
    message: str
    fields: dict[str, str] = Field(None, description="one message per bad field (422)")
    retry_after: float = Field(
        None, ge=0, description="seconds (429, 503; also the Retry-After header)"
    )
    redis: Refusal = Field(None, description="503 `unavailable`: how Redis refused")


class Error(Output):
    model_config = ConfigDict(extra="forbid")

    error: ErrorBody


class Label(Output):
    code: str
    zh: str
    en: str


class Ok(Output):
    ok: Literal[True]


class Healthy(Output):
    ok: Literal[True]
    redis: Literal["up"]


class Unhealthy(Output):
    ok: Literal[False]
    redis: Literal[HEALTH_KINDS]


# -- sessions ------------------------------------------------------------------------------


class Login(Input):
    username: str = Field(max_length=USERNAME_MAX)
    password: str


class Session(Output):
    username: str
    role: Literal["host", "moderator"]
    csrf: str


class Me(Output):
    viewer_id: str | None
    csrf: str | None
    host: Session | None


# -- broadcasts and openings -----------------------------------------------------------------


class BroadcastList(Output):
    broadcasts: list[Broadcast]


class BroadcastWithViewers(Broadcast):
    viewers: int = Field(ge=0)


class OpeningList(Output):
    openings: list[Opening]
    cities: list[str]


class Deleted(Output):
    deleted: Id


class Lineup(Output):
    order: list[Id]
    pinned: Id | None


class LineupInput(Input):
    order: list[Id] = Field(json_schema_extra={"uniqueItems": True})


class LineupSaved(Output):
    order: list[Id]


class PinState(Output):
    pinned: Pinned | None


class UnpinnedCard(Output):
    opening_id: Id | None


class Unpinned(Output):
    unpinned: UnpinnedCard
    pinned: None


class ImportRow(Output):
    row: int = Field(description="spreadsheet line (header: 1)")
    title: str
    ok: bool
    errors: dict[str, str] = Field(None, description="each bad field (rows that are not ok)")
    # the preview the host checks: as stored for a valid row, as the file has it for a bad one
    employer: str = ""
    city: str = ""
    salary: str = Field("", description="'min-max' yuan a month, or the file's text")
    deadline: str = Field("", description="YYYY-MM-DD, or the file's text if unreadable")
    deadline_ms: int = Field(0, description="end of the deadline day, ms (0: none or unread)")
    status: Literal["draft", "published", "closed", ""] = Field(
        "", description="the row's status once imported ('' if the cell is unreadable)"
    )


class ImportReport(Output):
    dry_run: bool
    ok: bool
    encoding: str
    total: int
    valid: int
    invalid: int
    ignored_columns: list[str]
    columns: dict[str, str] = Field(
        description="field -> the file's own column name (or its usual Chinese name): "
        "errors are shown by column"
    )
    rows: list[ImportRow]
    created: list[Id]


# -- applications ----------------------------------------------------------------------------


class ConsentText(Output):
    zh: str
    en: str


class Consent(Output):
    version: str
    text: ConsentText
    degrees: list[Label]
    education: list[Label]


class ApplyResult(Output):
    application_id: Id
    opening_id: Id
    applied: Literal[True]


class Applied(Output):
    opening_ids: list[Id]
    applications: dict[str, Id] = Field(description="opening id -> application id")


ApplicationStatus = Literal[APPLICATION_STATUSES]


class Application(Output):
    """An application as hosts see it, with the others to its opening from the same number."""

    id: Id
    opening_id: str
    opening_title: str
    employer: str
    name: str
    phone: str
    email: str
    school: str
    major: str
    degree: str
    degree_label: str
    graduation_year: int | None
    note: str
    status: ApplicationStatus
    created_at: Ms
    updated_at: Ms
    consent_version: str
    consented_at: Ms
    same_phone: int
    same_phone_ids: list[Id]


class ApplicationList(Output):
    total: int
    applications: list[Application]


class ApplicationCounts(Output):
    application_counts: dict[str, int]
    applications_total: int


class StatusChange(Input):
    status: ApplicationStatus


class ApplicationDeleted(Output):
    deleted: Id
    count: int


# -- chat ------------------------------------------------------------------------------------


class Message(Output):
    id: str
    name: str
    role: Literal["viewer", "host", "moderator"]
    text: str
    ts: Ms


class Author(Output):
    viewer_id: str
    name: str


class Question(Output):
    id: str
    name: str | None
    anonymous: bool
    text: str
    opening_id: str | None
    ts: Ms
    status: Literal["open", "answered"]
    answer: str | None
    answered_at: Ms | None
    votes: int
    hidden: bool
    author: Author = None
    voters: int = Field(None, description="hosts: every viewer's vote, counted or not")
    addresses: int = Field(None, description="hosts: addresses the votes came from")


class ReviewItem(Output):
    kind: Literal["message", "question"]
    id: str
    text: str
    ts: Ms
    reason: Literal["phone", "contact", "link", "question"]
    author: Author
    anonymous: bool = None
    opening_id: str | None = None


class ChatSettings(Output):
    slow_mode: int


class Ban(Output):
    ip_banned: bool


class Moderation(Output):
    blocked_words: list[str]
    muted: dict[str, Annotated[int, Field(description="Unix milliseconds")]]
    banned: dict[str, Ban]


class ChatState(Output):
    chat: list[Message]
    chat_settings: ChatSettings
    questions: list[Question]
    highlighted_question: str | None
    review: list[ReviewItem] = None
    moderation: Moderation = None


# -- media -----------------------------------------------------------------------------------


class Codecs(Output):
    video: str = None
    audio: str = None


class VideoHealth(Output):
    kbps: int
    fps: float
    keyframe_s: float | None = Field(description="seconds between the last keyframes")
    since_keyframe_s: float | None = Field(description="seconds since the last keyframe")


class AudioHealth(Output):
    kbps: int


class IngestHealth(Output):
    age_s: float | None = Field(description="seconds since the publisher's last frame")
    video: VideoHealth = None
    audio: AudioHealth = None


class ViewerModes(Output):
    total: int = Field(description="viewers with the page open (presence)")
    webrtc: int = Field(description="playing over WebRTC on every process")
    other: int = Field(description="the rest: over HLS, or not playing")


class StreamHealth(Output):
    state: Literal["offline", "starting", "live"]
    viewers: ViewerModes
    ingest: IngestHealth = Field(None, description="while a publisher is connected")
    verdict: Literal["good", "warn", "bad"] = None
    reasons: list[Literal["stalled", "no_video", "low_fps", "rare_keyframes"]] = None


class StreamState(Output):
    state: Literal["offline", "starting", "live"]
    session: str = Field(
        None,
        description="public id of the WHIP session (new when a publisher takes over); not the"
        " resource id in the publisher's Location",
    )
    whep: str = None
    codecs: Codecs = None
    hls: str | None = Field(
        None, description="the live HLS playlist while HLS is written (else null: see hls_state)"
    )
    hls_state: Literal["on", "off", "disk_full", "video_codec", "audio_only"] = Field(
        None,
        description="on; off (disabled); disk_full; video_codec (VP8: WebRTC only); audio_only",
    )


class StreamKeyInfo(Output):
    has_key: bool
    created_at: Ms | None
    whip_url: str


class StreamKey(Output):
    stream_key: str
    created_at: Ms
    whip_url: str


class Recording(Output):
    name: str
    bytes: int
    modified_at: Ms
    in_progress: bool


class Chapter(Output):
    opening_id: str
    title: str
    at: Ms = Field(description="when the card was pinned")
    offset: float = Field(description="seconds into the replay where it was presented")
    opening: Opening


class Replay(Output):
    broadcast_id: str
    duration: float = Field(description="seconds")
    bytes: int
    segments: int
    ended: bool = Field(description="the playlist is complete (EXT-X-ENDLIST)")
    live: bool = Field(description="the broadcast is live and the playlist still grows")
    started_at: Ms | None
    modified_at: Ms
    playlist: str = Field(description="the whole stream's HLS playlist")
    chapters: list[Chapter]


class ReplaySummary(Output):
    broadcast_id: str
    title: str
    status: str
    duration: float = Field(description="seconds")
    bytes: int
    segments: int
    ended: bool
    started_at: Ms | None
    modified_at: Ms
    playlist: str


class ReplayList(Output):
    replays: list[ReplaySummary]


class ReplayDeleted(Output):
    deleted: bool


class RecordingList(Output):
    recordings: list[Recording]


# -- the notifier's dead letters (web/api/notifier.py) ----------------------------------------


class DeadLetter(Output):
    """A notice the webhook did not take after every attempt; no personal data."""

    id: str
    kind: str
    broadcast_id: str
    application_id: str | None = Field(None, description="the application it is about")
    lang: str
    created_at: Ms | None = None
    attempts: int = Field(ge=0, description="attempts made before it was given up")
    error: str = Field(
        description="the last failure: `http 500`, an exception name such as `TimeoutError`,"
        " or `expired`"
    )
    failed_at: Ms | None = None


class NotifierCounts(Output):
    outbox: int = Field(ge=0, description="notices in the outbox (delivered ones included)")
    retrying: int = Field(ge=0, description="notices waiting for their next attempt")
    dead: int = Field(ge=0, description="dead letters (all organizations)")


class DeadLetters(Output):
    enabled: bool = Field(description="whether notifier_url is set")
    items: list[DeadLetter]
    counts: NotifierCounts


class Requeued(Output):
    queued: bool
    item: DeadLetter
