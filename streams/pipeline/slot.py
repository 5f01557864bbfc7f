"""One message on its way through a batch: each step fills its part, or records a failure."""

from __future__ import annotations

from dataclasses import dataclass

from classifiers.base import Scores
from classifiers.policy import Verdict
from streams.known_content.index import Match
from streams.known_content.signature import Signature
from streams.pipeline.messages import Message
from streams.records import ContentItem, Rejection
from streams.records.outputs import ShadowBlock


@dataclass
class Slot:
    """validate fills ``item``; match ``signature`` and ``match``; score ``scores`` (and
    ``shadow_scores``); decide ``verdict`` and ``shadow``. A step that cannot fills ``failure``,
    which becomes the message's dead letter."""

    message: Message
    item: ContentItem | None = None
    signature: Signature | None = None
    match: Match | None = None
    scores: Scores | None = None
    shadow_scores: Scores | None = None
    verdict: Verdict | None = None
    shadow: ShadowBlock | None = None
    failure: Rejection | None = None

    @property
    def live(self) -> bool:
        return self.failure is None

    @property
    def item_id(self) -> str | None:
        return self.item.id if self.item else None
