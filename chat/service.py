"""One object that holds the chat services of an app, built from a Redis client, the event
log and a ChatConfig, and the review decisions that span messages and questions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobcast.chat.actor import Actor
from jobcast.chat.config import ChatConfig
from jobcast.chat.gate import Gate
from jobcast.chat.messages import ChatService, publish_messages
from jobcast.chat.moderation import ModerationService
from jobcast.chat.names import NameService
from jobcast.chat.questions import OpeningLookup, QuestionService
from jobcast.chat.review import ReviewQueue
from jobcast.chat.votes import VoteCoalescer
from jobcast.core.errors import Invalid
from jobcast.core.events import EventLog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline


@dataclass(eq=False)
class ChatRoom:
    redis: Redis
    log: EventLog
    config: ChatConfig
    opening_lookup: OpeningLookup | None = None
    gate: Gate = field(init=False)
    review: ReviewQueue = field(init=False)
    votes: VoteCoalescer = field(init=False)
    messages: ChatService = field(init=False)
    questions: QuestionService = field(init=False)
    moderation: ModerationService = field(init=False)
    names: NameService = field(init=False)

    def __post_init__(self) -> None:
        redis, log, config = self.redis, self.log, self.config
        self.gate = Gate(redis, config)
        self.review = ReviewQueue(redis, log, config.review_max)
        self.votes = VoteCoalescer(redis, log, config.votes_interval)
        self.messages = ChatService(redis, log, config, self.gate, self.review)
        self.questions = QuestionService(
            redis, log, config, self.gate, self.review, self.votes, self.opening_lookup
        )
        self.moderation = ModerationService(redis, log)
        self.names = NameService(redis)

    async def decide(self, bid: str, data: dict[str, Any], by: Actor) -> dict[str, Any]:
        """Approve or reject a held message or question: `kind`, `id`, `approve` (bool)."""
        kind = data.get("kind")
        approve = data.get("approve")
        if not isinstance(approve, bool):
            raise Invalid("approve must be true or false", fields={"approve": "a boolean"})
        effects: Callable[[Pipeline, dict[str, Any]], None]
        if kind == "message":
            config = self.config

            def publish(pipe: Pipeline, m: dict[str, Any]) -> None:
                if approve:
                    publish_messages(pipe, self.log, bid, [m], config)

            effects = publish
        elif kind == "question":
            effects = (
                self.questions.approve_effects(bid)
                if approve
                else self.questions.reject_effects(bid)
            )
        else:
            raise Invalid(
                "kind must be message or question", fields={"kind": "message or question"}
            )
        item = await self.review.decide(
            bid, kind, data.get("id"), approve=approve, by=by.by, effects=effects
        )
        if not approve and item.get("vid"):  # the author learns it, not only the hosts
            await self.moderation.tell(item["vid"], bid, "rejected", item=kind, id=item["id"])
        return {"kind": kind, "id": item["id"], "approved": approve}

    async def snapshot(self, bid: str, host: bool) -> dict[str, Any]:
        """The chat part of a snapshot: recent messages, questions, room settings; for hosts
        also the review queue and moderation state."""
        part: dict[str, Any] = {
            "chat": await self.messages.recent(bid),
            "chat_settings": await self.moderation.settings(bid),
            "chat_pinned": await self.messages.pinned(bid),
        }
        part.update(await self.questions.listing(bid, host=host))
        if host:
            part["review"] = await self.review.items(bid)
            part["moderation"] = await self.moderation.state(bid)
        return part
