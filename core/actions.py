"""An action declared once: its name, the pydantic model of its data, who may call it and the
function that does it.

The viewer socket, the host console socket and the JSON API all run an action through
`Action.__call__`: the same access rule, then the same parsing, then the handler. A model
parses what the transport used to check by hand (which fields must be there, what an absent
one means) and documents the canonical form of the rest with its JSON schema; the service
behind the handler checks the values, in its own order and with its own messages, so which
error a bad body gets is what it always was.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar, get_args

from jobcast.core.errors import Forbidden, Invalid
from pydantic import BaseModel, ConfigDict, ValidationError

# `viewer`: anyone on a socket (viewers, hosts and moderators); `staff`: hosts and moderators;
# `host`: hosts only.
Access = Literal["viewer", "staff", "host"]
ACCESS: tuple[str, ...] = get_args(Access)


class Caller(Protocol):
    """Who runs an action, whichever transport it came over."""

    @property
    def app(self) -> Any: ...
    @property
    def bid(self) -> str: ...
    @property
    def viewer_id(self) -> str: ...
    @property
    def ip(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def user(self) -> Any: ...
    @property
    def is_staff(self) -> bool: ...
    @property
    def is_host(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Refusal:
    """What a field's bad value is told (put in the field's `Annotated[...]`); without one a
    missing field is "<name> is required"."""

    message: str
    field: str = "required"


def documented(*required: str, **extra: Any) -> ConfigDict:
    """A model config whose JSON schema names `required` (what the canonical form needs, even
    where the model leaves the check to the service) and adds `extra`; a field's default of
    None, which only marks it absent, is not shown."""

    def adjust(schema: dict[str, Any]) -> None:
        for prop in schema.get("properties", {}).values():
            if "default" in prop and prop["default"] is None:
                del prop["default"]
        if required:
            schema["required"] = list(required)
        schema.update(extra)

    return ConfigDict(json_schema_extra=adjust)


class ActionData(BaseModel):
    """Base of every action's data: unknown fields are ignored, as they always were."""

    model_config = ConfigDict(extra="ignore", frozen=True, **documented())


class NoData(ActionData):
    """The data of an action that reads none (whatever is sent is ignored)."""


def given(data: BaseModel) -> dict[str, Any]:
    """The fields the caller sent, with the values as sent (for services that read a dict and
    tell a missing field from one sent as null)."""
    sent = data.model_fields_set
    return {k: getattr(data, k) for k in type(data).model_fields if k in sent}


def refusal(model: type[BaseModel], e: ValidationError) -> Invalid:
    """The one Invalid a failed parse answers with: the first bad field, in the model's order."""
    err = e.errors(include_url=False)[0]
    name = str(err["loc"][0]) if err["loc"] else "body"
    info = model.model_fields.get(name)
    for meta in info.metadata if info is not None else ():
        if isinstance(meta, Refusal):
            return Invalid(meta.message, fields={name: meta.field})
    if err["type"] == "missing":
        return Invalid(f"{name} is required", fields={name: "required"})
    return Invalid(f"bad {name}", fields={name: err["msg"]})


M = TypeVar("M", bound=BaseModel)
Reply = dict[str, Any] | None
Handler = Callable[[Any, M], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Action(Generic[M]):
    name: str
    model: type[M]
    access: Access
    handler: Handler[M]
    summary: str = ""
    # The reply's shape, for the API document.
    reply: type[BaseModel] | None = None
    # (method, path) of the JSON API route that serves the same action, if there is one.
    http: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if self.access not in ACCESS:
            raise ValueError(f"{self.name}: access must be one of {ACCESS}, not {self.access!r}")

    def check_access(self, caller: Caller) -> None:
        """A viewer asking for a staff action gets `staff_only`; anyone but a host asking for
        a host action gets `host_only`."""
        if self.access == "staff" and not caller.is_staff:
            raise Forbidden("hosts and moderators only", code="staff_only")
        if self.access == "host" and not caller.is_host:
            raise Forbidden("only hosts may do this", code="host_only")

    def parse(self, data: dict[str, Any]) -> M:
        try:
            return self.model.model_validate(data)
        except ValidationError as e:
            raise refusal(self.model, e) from None

    async def __call__(self, caller: Caller, data: dict[str, Any]) -> Reply:
        self.check_access(caller)
        return await self.handler(caller, self.parse(data))
