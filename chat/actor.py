"""Who is acting: a viewer (signed cookie id, address, display name) or a host/moderator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["viewer", "host", "moderator"]
NAME_MAX = 24


@dataclass(frozen=True)
class Actor:
    viewer_id: str
    ip: str
    name: str = ""
    role: Role = "viewer"
    username: str = ""  # hosts and moderators

    @property
    def is_staff(self) -> bool:
        return self.role != "viewer"

    @property
    def display_name(self) -> str:
        """The name shown in the room: the chosen one, else a stable default per viewer."""
        if self.name:
            return self.name[:NAME_MAX]
        if self.is_staff:
            return ("主持人" if self.role == "host" else "管理员") + " " + self.username[:12]
        return "观众" + self.viewer_id[-4:]

    @property
    def by(self) -> str:
        """How moderation records name who acted."""
        return self.username or self.viewer_id
