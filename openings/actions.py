"""The data of the pinned-card actions (host console socket frames and the JSON API's bodies),
as pydantic models."""

from __future__ import annotations

from typing import Annotated

from jobcast.core.actions import ActionData, Refusal
from pydantic import StrictStr, StringConstraints


class Pin(ActionData):
    # A missing, empty or non-string id gets the one answer it always got.
    opening_id: Annotated[
        StrictStr, StringConstraints(min_length=1), Refusal("opening_id is required")
    ]
