"""Who is acting: a viewer (signed cookie id, address, display name) or a host/moderator."""

from __future__ import annotations

import hashlib
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
    lang: str = "zh-CN"  # the viewer's page language: their default name is in it

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
        return default_name(self.viewer_id, self.lang)

    @property
    def by(self) -> str:
        """How moderation records name who acted."""
        return self.username or self.viewer_id


def default_name(viewer_id: str, lang: str = "zh-CN") -> str:
    """A viewer's name until they choose one: "观众 4821" / "Viewer 4821", the number stable
    per viewer. Not the id's own characters: those include `_` and `-` ("观众_Mrl" looked
    broken) and would show part of the viewer's cookie id to the room."""
    n = int.from_bytes(hashlib.sha256(viewer_id.encode()).digest()[:4], "big") % 9000 + 1000
    return f"{'Viewer' if lang == 'en' else '观众'} {n}"
