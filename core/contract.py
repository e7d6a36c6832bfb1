"""What every request and response model shares: the base models, the 422 every bad field is
named in, and the export of the models as OpenAPI components.

A request model (`Input`) parses leniently on purpose: each field has a plain validator that
takes what people actually send (a salary as "8,000", a degree as "本科及以上", a list as one
comma-separated cell) and raises `refuse(message)`, while the field's `json_schema_input_type`
states what is accepted. `check()` runs a model and turns a pydantic ValidationError into one
`Invalid` whose `fields` map names every bad field with its message, as the API always did.

A response model (`Output`) states what the server sends; its schema is the serialization one
(computed fields present, excluded fields absent). A field with a default may be absent from
a response unless the model sets `json_schema_serialization_defaults_required`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from jobcast.core.errors import Invalid
from jobcast.core.text import clean, raise_if
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode
from pydantic_core import PydanticCustomError, core_schema

M = TypeVar("M", bound=BaseModel)
REF = "#/components/schemas/{model}"
# Unknown field names are cut to this length in `fields` (inside a nested object: 30).
KEY_MAX = 40
NESTED_KEY_MAX = 30

Id = Annotated[str, Field(description="a short public id (letters and digits, no 0 o 1 l i)")]
Ms = Annotated[int, Field(description="Unix milliseconds")]


def refuse(message: str, *, at: str | None = None) -> PydanticCustomError:
    """The error a validator raises: `message` as the field's message in `fields`; `at` names
    a part of the field instead (the employer given as a number is `employer.name`'s fault)."""
    ctx: dict[str, Any] = {"message": message}
    if at is not None:
        ctx["at"] = at
    return PydanticCustomError("jobcast", "{message}", ctx)


class Input(BaseModel):
    """A request body: unknown fields are refused by name, every bad field is reported."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _absent_is_null(cls, data: Any) -> Any:
        """A required field that is absent is checked as null, so that its own validator says
        what is missing ("required", or what consent means) as for an empty value."""
        if isinstance(data, dict):
            absent = [n for n, f in cls.model_fields.items() if f.is_required() and n not in data]
            if absent:
                return {**dict.fromkeys(absent), **data}
        return data


class Output(BaseModel):
    """A response body (or a part of one)."""


def check(model: type[M], data: Any, *, context: dict[str, Any] | None = None) -> M:
    """`data` parsed by `model`, or Invalid naming every bad field."""
    if not isinstance(data, dict):
        raise Invalid("expected a JSON object", fields={"body": "must be an object"})
    try:
        return model.model_validate(data, context=context)
    except ValidationError as e:
        raise_if(bad_fields(e))
        raise  # a ValidationError always names a field


def bad_fields(e: ValidationError) -> dict[str, str]:
    """`{"employer.name": "required", ...}` in the model's field order, unknown fields last."""
    out: dict[str, str] = {}
    for err in e.errors(include_url=False):
        loc = [str(x) for x in err["loc"]]
        if err["type"] == "extra_forbidden":
            loc[-1] = loc[-1][: KEY_MAX if len(loc) == 1 else NESTED_KEY_MAX]
            message = "unknown field"
        elif err["type"] == "missing":
            message = "required"
        else:
            message = err["msg"]
            at = (err.get("ctx") or {}).get("at")
            if at:
                loc.append(at)
        out[".".join(loc)] = message
    return out


# -- lenient field types ---------------------------------------------------------------------


def plain_text(raw: Any, max_len: int, *, required: bool = False, multiline: bool = False) -> str:
    """Text as a person typed it: control characters stripped, counted in characters."""
    if raw is None or raw == "":
        if required:
            raise refuse("required")
        return ""
    if not isinstance(raw, str):
        raise refuse("must be a string")
    value = clean(raw, multiline=multiline)
    if required and not value:
        raise refuse("required")
    if len(value) > max_len:
        raise refuse(f"at most {max_len} characters")
    return value


def text(max_len: int, *, required: bool = False, multiline: bool = False) -> PlainValidator:
    """The validator of a text field: `title: Annotated[str, text(60, required=True)]`."""
    accepts = Annotated[
        str,
        Field(
            max_length=max_len,
            min_length=1 if required else None,
            description="may contain line breaks" if multiline else None,
        ),
    ]

    def parse(raw: Any) -> str:
        return plain_text(raw, max_len, required=required, multiline=multiline)

    return PlainValidator(parse, json_schema_input_type=accepts)


def one_of(*values: Any) -> Any:
    """`Literal[values]` for values known only when the module runs (for a schema)."""
    return Literal[values]


def partial(model: type[M], name: str, **types: Any) -> type[M]:
    """`model` with every field optional (a PATCH body): the same validators, run only on the
    fields sent. `types` replaces a field's type (a nested model by its own partial form)."""
    fields: dict[str, Any] = {}
    for field_name, f in model.model_fields.items():
        annotation = types.get(field_name, f.annotation)
        if f.metadata and field_name not in types:
            annotation = Annotated[(annotation, *f.metadata)]
        fields[field_name] = (
            annotation,
            Field(None, description=f.description, json_schema_extra=no_default),
        )
    doc = f"{model.__name__} where every field may be left out."
    return create_model(name, __base__=model, __doc__=doc, __module__=model.__module__, **fields)


def no_default(schema: dict[str, Any]) -> None:
    """For `Field(json_schema_extra=...)`: the schema shows no default (the absent value is not
    one a client could send)."""
    schema.pop("default", None)


# -- OpenAPI components ----------------------------------------------------------------------


class _Schema(GenerateJsonSchema):
    """JSON schemas without titles, and responses without defaults (nothing is filled in)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def model_schema(self, schema: core_schema.ModelSchema) -> dict[str, Any]:
        out = super().model_schema(schema)
        out.pop("title", None)
        return out

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> dict[str, Any]:
        if self.mode == "serialization":
            return self.generate_inner(schema["schema"])
        return super().default_schema(schema)


def json_schema(model: type[BaseModel]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the model's schema, the schemas of the models it refers to), with OpenAPI refs:
    responses (`Output`) in serialization mode, requests in validation mode."""
    mode: JsonSchemaMode = "serialization" if issubclass(model, Output) else "validation"
    schema = model.model_json_schema(ref_template=REF, schema_generator=_Schema, mode=mode)
    return schema, schema.pop("$defs", {})


def components(*models: type[BaseModel]) -> dict[str, Any]:
    """`components.schemas` for `models` and every model they refer to, each by its name."""
    out: dict[str, Any] = {}

    def add(name: str, schema: dict[str, Any]) -> None:
        if out.setdefault(name, schema) != schema:
            raise ValueError(f"two different schemas are both called {name}")

    for model in models:
        schema, refs = json_schema(model)
        for name, s in refs.items():
            add(name, s)
        add(model.__name__, schema)
    return out
