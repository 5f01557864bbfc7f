"""The demo's summary: per-language figures, example referrals and cleared hard negatives, chosen
by score and the sample's expected outcomes, never by the order records arrive in; and its bundled
feed, served on a loopback port and read by the sources service."""

from __future__ import annotations

import asyncio
import json
import random
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from streams.dev.demo import (
    LANGUAGES,
    SampleItem,
    cleared_hard_negatives,
    example_referrals,
    language_rows,
    sample_items,
    sample_path,
)
from streams.dev.demo_feed import PLATFORM, feed_config, feed_outcomes, serve_feed
from streams.metrics import SourcesMetrics
from streams.records import Cleared, DeadLetter, Referral, Review
from streams.records.dead_letter import Error
from streams.settings import Settings
from streams.sources.service import SourcesService
from streams.sources.state import SourcesState
from tests.unit.test_sources_service import RecordingProducer

ITEMS = {
    "a": SampleItem("en", "referral", "incitement", "call to violence"),
    "b": SampleItem("ar", "referral", "recruitment", "join the fictional group"),
    "c": SampleItem("en", "cleared", "manual", "password manager tutorial"),
    "d": SampleItem("de", "cleared", "news", "suspects arrested"),
    "e": SampleItem("fr", "cleared", "counter_speech", "do not fall for it"),
    "f": SampleItem("de", "cleared", "news", "a year after the attack"),
    "g": SampleItem("en", "referral", "incitement", "another call"),
    "h": SampleItem("nl", "referral", "threat", "a threat"),
}


def _referral(item_id: str, label: str, score: float) -> Referral:
    return Referral.model_construct(item_id=item_id, labels=[label], scores=_scores(**{label: score}))


def _scores(**scores: float) -> dict[str, float]:
    return {"incitement": 0.0, "recruitment": 0.0, "instruction": 0.0, "threat": 0.0, **scores}


# The fields the summary reads; the records are built without validation (model_construct), as
# the demo's own worker would have written them in full.
RECORDS = [
    ("referrals", _referral("c", "instruction", 0.99)),
    ("referrals", _referral("a", "incitement", 0.91)),
    ("referrals", _referral("g", "incitement", 0.97)),
    ("review", Review.model_construct(item_id="b", labels=["recruitment"], scores=_scores(recruitment=0.4))),
    ("cleared", Cleared.model_construct(item_id="d", scores=_scores(threat=0.2))),
    ("cleared", Cleared.model_construct(item_id="e", scores=_scores(incitement=0.1))),
    ("cleared", Cleared.model_construct(item_id="f", scores=_scores(threat=0.3))),
    ("referrals", _referral("h", "recruitment", 0.95)),
    ("dlq", DeadLetter.model_construct(error=Error.model_construct(code="invalid_json"))),
]


def test_example_referrals_are_ones_a_reviewer_would_agree_with() -> None:
    """The password-manager tutorial scored highest but the sample expects it cleared: not shown;
    nor is a threat referred as recruitment. Per label, the highest score wins."""
    examples = example_referrals(RECORDS, ITEMS)
    assert [(item_id, label) for item_id, label, _, _ in examples] == [("g", "incitement")]


def test_cleared_hard_negatives_are_the_closest_call_of_each_kind() -> None:
    shown = cleared_hard_negatives(RECORDS, ITEMS)
    assert [(item_id, kind) for item_id, kind, _, _ in shown] == [("f", "news"), ("e", "counter_speech")]


def test_languages_in_the_corpus_order() -> None:
    rows = language_rows(RECORDS, ITEMS)
    assert rows == [
        ("en", 3, 3, 0, 0, 2),
        ("nl", 1, 1, 0, 0, 1),
        ("ar", 1, 0, 0, 1, 0),
        ("de", 2, 0, 2, 0, 2),
        ("fr", 1, 0, 1, 0, 1),
    ]


def test_the_order_records_arrive_in_changes_nothing() -> None:
    first = (example_referrals(RECORDS, ITEMS), cleared_hard_negatives(RECORDS, ITEMS))
    rng = random.Random(7)
    for _ in range(50):
        records = rng.sample(RECORDS, len(RECORDS))
        assert (example_referrals(records, ITEMS), cleared_hard_negatives(records, ITEMS)) == first


def test_the_sample_covers_the_six_languages_and_keeps_its_invalid_lines() -> None:
    lines = [line for line in sample_path().read_bytes().splitlines() if line.strip()]
    items = sample_items(lines)
    assert len(lines) - len(items) == 8, "the deliberately invalid lines"
    per_language = Counter((item.lang, item.expected) for item in items.values())
    for lang in LANGUAGES:
        assert per_language[(lang, "referral")] >= 5, lang
        assert per_language[(lang, "cleared")] >= per_language[(lang, "referral")], f"{lang}: hard negatives"
    kinds = {(item.lang, item.kind) for item in items.values()}
    for lang in LANGUAGES:
        assert {(lang, "news"), (lang, "counter_speech"), (lang, "court")} <= kinds, lang
    ids = []
    for line in lines:
        try:
            ids.append(json.loads(line)["id"])
        except (ValueError, KeyError, TypeError):
            continue
    assert len(ids) == len(set(ids)), "ids are unique"


# --- the bundled feed, read by the sources service -------------------------------------------------


def test_the_bundled_feed_is_served_and_read_by_the_sources_service(tmp_path: Path) -> None:
    with serve_feed() as url:
        with pytest.raises(urllib.error.HTTPError, match="404"):  # the feed, not the data folder
            urllib.request.urlopen(url.replace("feed.xml", "sample.jsonl"), timeout=10)
        producer = RecordingProducer()
        with SourcesState(tmp_path / "sources.sqlite3") as state:
            service = SourcesService(
                feed_config(url, tmp_path),
                Settings(),
                producer,  # type: ignore[arg-type]
                SourcesMetrics(CollectorRegistry()),
                state,
            )
            (result,) = asyncio.run(service.run_once())
            service.close()
    assert (result.sent, result.duplicates, dict(result.failures)) == (6, 0, {})
    items = producer.items()
    assert {item.platform for item in items} == {PLATFORM}
    assert Counter(item.lang for item in items) == {"en": 3, "nl": 2, "ar": 1}
    assert all(item.url and item.url.startswith("https://watch.example.org/") for item in items)
    assert sum("Ashen Vanguard gives it meaning" in item.text for item in items) == 1, (
        "the one propaganda-like post"
    )


def test_the_feed_outcomes_are_the_feed_items_verdicts() -> None:
    def referral(item_id: str, platform: str) -> Referral:
        return Referral.model_construct(
            item_id=item_id,
            platform=platform,
            lang="en",
            labels=["recruitment"],
            scores=_scores(recruitment=0.9),
        )

    records = [
        ("referrals", referral("f2", PLATFORM)),
        ("referrals", referral("s1", "forum")),
        ("cleared", Cleared.model_construct(item_id="f3", platform=PLATFORM)),
        ("cleared", Cleared.model_construct(item_id="s2", platform=None)),
        ("referrals", referral("f1", PLATFORM)),
        ("dlq", DeadLetter.model_construct(error=Error.model_construct(code="invalid_json"))),
    ]
    counts, referrals = feed_outcomes(records)
    assert counts == {"referral": 2, "cleared": 1}
    assert [r.item_id for r in referrals] == ["f1", "f2"]
