"""The records propwatch reads and writes, as typed models.

Every record that leaves the pipeline is plain JSON with a ``schema_version``, written by a frozen,
strict pydantic model (:class:`Record`: ``to_json``/``from_json``) and described by a JSON Schema in
``schemas/``. Reading never raises past one documented exception (:class:`RecordError`) whatever
the bytes; a content message and a decision read to a value instead (a :class:`Rejection` with a
stable error code). Every field that reaches an output is bounded, so that every record fits the
producer's request size by design.

- :mod:`~streams.records.content`: content items, validation, rejections, field limits;
- :mod:`~streams.records.outputs`: referral, review, cleared and example records and their blocks;
- :mod:`~streams.records.decision`: reviewers' decisions, as sent and as read;
- :mod:`~streams.records.dead_letter`: the dead letter of a message;
- :mod:`~streams.records.names`: decided-by, match and decision names;
- :mod:`~streams.records.times`: timestamps; :mod:`~streams.records.base`: the base model.
"""

from streams.records.base import SCHEMA_VERSION, Record, RecordError, encode, load_schema
from streams.records.content import (
    OUTPUT_OVERHEAD_BYTES,
    ContentItem,
    ErrorCode,
    Rejection,
    Stage,
    parse_item,
    safe_id,
)
from streams.records.dead_letter import DeadLetter, SourcePosition
from streams.records.decision import Decision, DecisionMessage, parse_decision
from streams.records.names import DECISIONS, MATCH_TYPES, DecidedBy
from streams.records.outputs import Cleared, Example, ModelRef, Referral, Review, Subject
from streams.records.times import OBSERVED_AT_EARLIEST, parse_rfc3339, plausible_timestamp, utc_now

__all__ = [
    "DECISIONS",
    "MATCH_TYPES",
    "OBSERVED_AT_EARLIEST",
    "OUTPUT_OVERHEAD_BYTES",
    "SCHEMA_VERSION",
    "Cleared",
    "ContentItem",
    "DeadLetter",
    "DecidedBy",
    "Decision",
    "DecisionMessage",
    "ErrorCode",
    "Example",
    "ModelRef",
    "Record",
    "RecordError",
    "Referral",
    "Rejection",
    "Review",
    "SourcePosition",
    "Stage",
    "Subject",
    "encode",
    "load_schema",
    "parse_decision",
    "parse_item",
    "parse_rfc3339",
    "plausible_timestamp",
    "safe_id",
    "utc_now",
]
