"""The records the pipeline and the reviewers' decisions write: referral, review, cleared and
example, the blocks they share (model, evidence, match, shadow, review), and their ids.

Each model's fields are its JSON Schema's properties, in the same order; the ids are
deterministic (:func:`referral_id`), so a redelivered item repeats its record."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, Strict

from streams.records.base import SCHEMA_VERSION, Labels, Record, ScoreMap, Timestamp, Unit
from streams.records.content import CONTROL, CONTROL_OR_BREAK, FIELD_LIMITS, ContentItem, safe_id
from streams.records.names import DecidedBy, DecisionName, MatchType, Role

REFERRAL_NAMESPACE = uuid.UUID("8f7c1f4e-6d0a-4d65-9a52-2b1f0e7c9a11")
SUBJECT_FIELDS = (
    "item_id",
    "url",
    "platform",
    "lang",
    "author_hash",
    "text",
    "content_sha256",
    "observed_at",
)
"""The fields that describe the content itself in referral and review records."""


def _id(value: str) -> str:
    if safe_id(value) is None:
        raise ValueError("must be an id: a non-blank string without control characters")
    return value


def _text(value: str) -> str:
    if not value.strip() or CONTROL.search(value):
        raise ValueError("must be a non-blank string without control characters")
    return value


def _short(name: str) -> AfterValidator:
    def check(value: str) -> str:
        if len(value) > FIELD_LIMITS[name] or CONTROL_OR_BREAK.search(value):
            raise ValueError("must be null or a short string without control characters")
        return value

    return AfterValidator(check)


Id = Annotated[str, AfterValidator(_id)]
Text = Annotated[str, AfterValidator(_text)]
Version = Annotated[Literal[3], Field(default=SCHEMA_VERSION)]
Decided = Annotated[DecidedBy, Strict(False)]


def referral_id(item_id: str, content_sha256: str, basis: str) -> str:
    """Deterministic: the same item and content, referred on the same basis (a model revision, a bank
    entry or a review), always gets the same id, so a redelivered referral repeats its id."""
    return str(uuid.uuid5(REFERRAL_NAMESPACE, f"{item_id}\n{content_sha256}\n{basis}"))


def author_hash(author: str | None, key: bytes | None) -> str | None:
    """HMAC-SHA256 of the author handle; the handle itself never leaves the pipeline."""
    if author is None or key is None:
        return None
    return "hmac-sha256:" + hmac.new(key, author.encode("utf-8"), hashlib.sha256).hexdigest()


class ModelRef(Record):
    """A model by name and revision."""

    name: str
    revision: str

    @property
    def basis(self) -> str:
        """What a referral by this model has its id from (:func:`referral_id`)."""
        return f"{self.name}\n{self.revision}"


class EvidenceModel(ModelRef):
    """The model that classified an item, and the backend it ran on."""

    backend: str


class Thresholds(Record):
    referral: ScoreMap
    review: ScoreMap


class MatchBlock(Record):
    """A hash bank hit: the ``match`` of a referral of known content."""

    type: MatchType
    entry_id: str
    similarity: Unit
    labels: Labels


class Source(Record):
    """Where a message was read: topic, partition and offset."""

    topic: str
    partition: int
    offset: int


class CustodyStep(Record):
    """One entry of an evidence block's chain of custody."""

    step: Literal[
        "captured",
        "ingested",
        "received",
        "hash_checked",
        "classified",
        "queued_for_review",
        "reviewed",
        "referred",
    ]
    at: Timestamp
    actor: str
    detail: dict[str, Any] | None


def custody_step(step: str, at: str, actor: str, **detail: Any) -> CustodyStep:
    """One entry of an evidence block's chain of custody."""
    return CustodyStep.model_validate({"step": step, "at": at, "actor": actor, "detail": detail or None})


class Evidence(Record):
    """What a referral or review rests on, and how the item got there."""

    captured_at: str | None
    content_sha256: str
    normalised_sha256: str
    normalisation: str
    model: EvidenceModel | None
    thresholds: Thresholds
    scores: ScoreMap
    match: MatchBlock | None
    source: Source
    chain_of_custody: Annotated[tuple[CustodyStep, ...], Strict(False), Field(min_length=1)]


class ShadowBlock(Record):
    """The shadow model's scores of an item, and whether it agrees with the live model."""

    model: ModelRef
    scores: ScoreMap
    labels: Labels
    flagged: bool
    agrees: bool


class ReviewBlock(Record):
    """The reviewer's decision that a referral, cleared verdict or example carries."""

    review_id: str
    decision_id: str
    decision: DecisionName
    reviewer: str
    reason: str | None
    decided_at: str
    supersedes: str | None
    override_reason: str | None
    role: Role | None = None
    """The reviewer's role (``reviewer`` or ``supervisor``) as the decision gave it: signed when
    the worker holds the decision keys. Absent from records written before signed decisions."""


class Subject(Record):
    """The content's own fields as referral and review records carry them (author only as HMAC)."""

    item_id: Id
    url: Annotated[str, _short("url")] | None
    platform: Annotated[str, _short("platform")] | None
    lang: Annotated[str, _short("lang")] | None
    author_hash: str | None
    text: Text
    content_sha256: str
    observed_at: Timestamp | None

    @classmethod
    def of(cls, item: ContentItem, author_key: bytes | None) -> Subject:
        return cls(
            item_id=item.id,
            url=item.url,
            platform=item.platform,
            lang=item.lang,
            author_hash=author_hash(item.author, author_key),
            text=item.text,
            content_sha256=item.content_sha256,
            observed_at=item.observed_at,
        )


class Referral(Record):
    """Content referred: over a threshold, known content, or approved by a reviewer."""

    schema_version: Version
    referral_id: str
    item_id: str
    url: str | None
    platform: str | None
    lang: str | None
    author_hash: str | None
    text: str
    content_sha256: str
    observed_at: str | None
    labels: Labels
    decided_by: Decided
    scores: ScoreMap
    thresholds: ScoreMap
    model: ModelRef | None
    match: MatchBlock | None = None
    review: ReviewBlock | None = None
    shadow: ShadowBlock | None = None
    classified_at: str
    evidence: Evidence

    @classmethod
    def of(cls, subject: Subject, *, basis: str, **fields: Any) -> Referral:
        """The referral of ``subject``; ``basis`` makes its id (:func:`referral_id`)."""
        rid = referral_id(subject.item_id, subject.content_sha256, basis)
        return cls(referral_id=rid, **subject.model_dump(), **fields)


class Review(Record):
    """An item whose scores fall between the review and referral thresholds, for a reviewer."""

    schema_version: Annotated[Literal[2, 3], Field(default=SCHEMA_VERSION)]
    """Version 2 review records may wait on the topic across an upgrade: a worker still decides them."""
    review_id: Id
    item_id: Id
    url: Annotated[str, _short("url")] | None
    platform: Annotated[str, _short("platform")] | None
    lang: Annotated[str, _short("lang")] | None
    author_hash: str | None
    text: Text
    content_sha256: str
    observed_at: Timestamp | None
    labels: Annotated[Labels, Field(min_length=1)]
    scores: ScoreMap
    thresholds: ScoreMap
    review_thresholds: ScoreMap
    model: ModelRef
    shadow: ShadowBlock | None = None
    classified_at: Timestamp
    evidence: Evidence

    @classmethod
    def of(cls, subject: Subject, *, model: ModelRef, **fields: Any) -> Review:
        """The review record of ``subject``; its id follows from the item, the text and the model."""
        rid = referral_id(subject.item_id, subject.content_sha256, "review\n" + model.basis)
        return cls(review_id=rid, **subject.model_dump(), model=model, **fields)

    @property
    def subject(self) -> Subject:
        return Subject.model_validate(self.model_dump(include=set(SUBJECT_FIELDS)))

    def check(self, labels: tuple[str, ...]) -> str | None:
        """Why this is not a review record this pipeline wrote, or None: besides its types (checked
        when it was read), the hashes must agree (``content_sha256`` is the text's, ``review_id``
        follows from the item id, that hash and the model) and every label be in the taxonomy, and
        named once (as the schema says: a record that repeats a label a hundred thousand times is
        not one this pipeline wrote, and would cost every page that lists it). A record that fails
        is forged or corrupt, and no decision on it refers anything."""
        if self.content_sha256 != hashlib.sha256(self.text.encode("utf-8")).hexdigest():
            return "content_sha256 is not the SHA-256 of the text"
        basis = "review\n" + self.model.basis
        if self.review_id != referral_id(self.item_id, self.content_sha256, basis):
            return "review_id does not follow from item_id, content_sha256 and model"
        if not _distinct(self.labels, labels):
            return f"labels must be a non-empty list of distinct labels of {list(labels)}"
        if self.evidence.match is not None and not _distinct(self.evidence.match.labels, labels):
            return f"evidence.match.labels must be a non-empty list of distinct labels of {list(labels)}"
        for name in ("scores", "thresholds", "review_thresholds"):
            if not all(label in labels for label in getattr(self, name)):
                return f"{name} must map taxonomy labels to numbers from 0 to 1"
        return None


def _distinct(values: tuple[str, ...], labels: tuple[str, ...]) -> bool:
    """Whether ``values`` are one or more of ``labels``, none twice."""
    return bool(values) and len(set(values)) == len(values) and all(value in labels for value in values)


class Cleared(Record):
    """Content the model, or a reviewer, found below every threshold."""

    schema_version: Version
    item_id: str
    platform: str | None
    lang: str | None
    content_sha256: str
    scores: ScoreMap
    model: ModelRef
    decided_by: Decided = DecidedBy.MODEL
    review: ReviewBlock | None = None
    shadow: ShadowBlock | None = None
    classified_at: str
    observed_at: str | None


class ExampleReview(ReviewBlock):
    item_id: str


class Example(Record):
    """A reviewer's decision as a labelled example, in the corpus format ``propwatch evaluate`` reads."""

    schema_version: Version
    id: str
    text: str
    labels: Labels
    lang: str | None
    category: Literal["review_approved", "review_rejected"]
    split: Literal["review"] = "review"
    review: ExampleReview
    model: ModelRef
    scores: ScoreMap
