"""What every record shares: a frozen, strict pydantic model that writes its wire form
(:meth:`Record.to_json`) and reads one back from untrusted bytes (:meth:`Record.from_json`), which
raises only :class:`RecordError`."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationError

from streams import safejson
from streams.records.times import parse_rfc3339

SCHEMA_VERSION = 3


class RecordError(ValueError):
    """Bytes that are not the record asked for; the message says why (bounded, printable)."""


class Record(BaseModel):
    """A record propwatch writes or reads. Its fields are the JSON Schema's properties
    (``tests/unit/test_records.py`` checks each model against its ``schemas/*.schema.json``)."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid", allow_inf_nan=False)

    def as_json(self) -> dict[str, Any]:
        """The record as a JSON object (what :meth:`to_json` encodes)."""
        return self.model_dump(mode="json")

    def to_json(self) -> bytes:
        """The wire form: compact UTF-8 JSON (:func:`encode`)."""
        return encode(self.as_json())

    @classmethod
    def from_json(cls, raw: bytes) -> Self:
        """The record in ``raw``. Raises :class:`RecordError`, and only that, whatever the bytes:
        they are parsed by :mod:`streams.safejson` before the model sees them."""
        data = safejson.parse_object(raw)
        if isinstance(data, safejson.NotJson):
            raise RecordError(f"record is {data.message}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise RecordError(problem(exc)) from None


def problem(exc: ValidationError) -> str:
    """The first thing wrong, as ``field.path: what``, without the offending value."""
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "record"
    return safejson.for_terminal(f"{where}: {first['msg']}")[:300]


def encode(record: Any) -> bytes:
    """The wire form of an output record (:func:`streams.safejson.encode`)."""
    return safejson.encode(record)


def load_schema(name: str) -> dict[str, Any]:
    """One of the shipped JSON Schemas, e.g. ``content``, ``referral``, ``cleared`` or ``dlq``."""
    schema: dict[str, Any] = json.loads(
        files("streams.records").joinpath(f"schemas/{name}.schema.json").read_text()
    )
    return schema


def _timestamp(value: str) -> str:
    if parse_rfc3339(value) is None:
        raise ValueError("must be an RFC 3339 timestamp")
    return value


Timestamp = Annotated[str, AfterValidator(_timestamp)]
"""An RFC 3339 timestamp."""
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
"""A score or threshold: a finite number from 0 to 1."""
ScoreMap = dict[str, Unit]
"""Label to score or threshold."""
Labels = Annotated[tuple[str, ...], Strict(False)]
"""Taxonomy labels; a JSON array (lax: a list becomes the tuple)."""
