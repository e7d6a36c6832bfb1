"""Limits the chat services work with, passed in by whoever builds them (web from Settings)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChatConfig:
    max_chars: int = 300  # chat message and question length, in characters
    answer_max_chars: int = 1000
    recent: int = 200  # chat messages in the snapshot
    keep: int = 1000  # approved messages kept addressable (for hide and moderation by id)
    questions_in_snapshot: int = 200
    rate: float = 1.0  # per-viewer chat token bucket: sustained messages per second
    burst: int = 10
    ip_rate: float = 20.0  # per-IP bucket (halls and mobile carriers share addresses)
    ip_burst: int = 60
    review_questions: bool = True  # every question waits for a moderator
    review_contacts: bool = True  # messages with a phone number, WeChat/QQ id or link wait
    review_max: int = 1000  # held items kept; the oldest beyond this are dropped
    batch_s: float = 0.05  # messages a process accepts within this are published together
    votes_interval: float = 0.5  # seconds between `question.votes`; 0: one event per vote
    votes_per_address: int = 3  # viewers from one address whose votes count for a question
