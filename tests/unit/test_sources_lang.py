"""Language identification of found texts (streams/sources/lang.py) and its evaluation on the seed
corpus (streams/sources/lang_eval.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.sources.lang import LANGUAGES, MAX_CHARS, detect_language
from streams.sources.lang_eval import BUCKETS, EVALUATED, Measured, measure, prefix, samples, table

CLEAR = {
    "nl": [
        "Het regent vandaag in Utrecht en de treinen rijden met vertraging.",
        "De gemeenteraad besprak gisteren de nieuwe plannen voor het park.",
        "WAAROM ZIT JE NOG ACHTER JE SCHERM? KOM NAAR DE VERGADERING",
    ],
    "ar": [
        "الطقس اليوم مشمس في المدينة والأسواق مزدحمة بالناس.",
        "ناقش المجلس البلدي خطة جديدة لتحسين الحدائق العامة.",
    ],
    "en": [
        "The weather in the city is sunny today and the markets are busy.",
        "The council discussed a new plan for the public gardens yesterday. #LocalNews https://example.org/a",
    ],
    "de": ["Das Wetter in der Stadt ist heute sonnig und die Märkte sind voll."],
    "fr": ["Le temps est ensoleillé aujourd'hui et les marchés sont pleins de monde."],
    "tr": ["Bugün şehirde hava güneşli ve pazarlar insanlarla dolu."],
}


@pytest.mark.parametrize(("lang", "text"), [(lang, text) for lang, texts in CLEAR.items() for text in texts])
def test_clear_sentences_are_identified(lang: str, text: str) -> None:
    assert detect_language(text) == lang


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t ",
        "😀🔥🙏🏽👍",
        "ok",
        "12345 678 90!!!",
        "https://example.org/a/very/long/path?with=query&and=more",
        "@someone #tag #another @name",
        "mail@example.org",
    ],
)
def test_nothing_to_tell_gives_none(text: str) -> None:
    assert detect_language(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "\ud800\udfff lone surrogates \udc00 in een zin die verder gewoon Nederlands is",
        "\x00\x01\x02 control \x1b[31m characters \u202e reversed \u2066 isolate",
        "Het weer is mooi vandaag. " * 100_000,
        "a" * 1_000_000,
        "ﷺ" * 5_000,
        "\u0301" * 10_000,
        "Zalgo t̷̢̛e̸̡x̴̧t̵̨ h̶̢e̸̛r̷̡ȩ̶",
    ],
)
def test_hostile_text_never_raises(text: str) -> None:
    assert detect_language(text) in {None, *LANGUAGES}


def test_only_the_text_start_is_read() -> None:
    dutch = "Het regent vandaag in Utrecht en de treinen rijden met vertraging. "
    english = "The weather in the city is sunny today and the markets are busy. "
    assert detect_language(dutch * (MAX_CHARS // len(dutch) + 1) + english * 1_000) == "nl"


@pytest.mark.parametrize("value", [None, b"Het regent vandaag in Utrecht", 42, ["text"]])
def test_a_value_that_is_no_text_gives_none(value: object) -> None:
    assert detect_language(value) is None  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_none_or_a_code_of_the_set(text: str) -> None:
    assert detect_language(text) in {None, *LANGUAGES}


def test_the_codes_are_iso_639_1() -> None:
    assert all(len(code) == 2 and code.isascii() and code.islower() for code in LANGUAGES)
    assert set(EVALUATED) <= LANGUAGES


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("one two three", "one two three"),
        ("Het regent vandaag in Utrecht en de treinen rijden", "Het regent vandaag in Utrecht en de"),
        ("x" * 60, "x" * 40),
    ],
)
def test_prefix_keeps_whole_words_within_the_limit(text: str, kept: str) -> None:
    assert prefix(text) == kept


def test_the_samples_cover_every_language_and_bucket_once_per_text() -> None:
    chosen = samples()
    assert {(s.lang, s.bucket) for s in chosen} == {(lang, b) for lang in EVALUATED for b in BUCKETS}
    assert all(len(s.text) <= 40 for s in chosen if s.bucket == BUCKETS[0])
    full = [s.text for s in chosen if s.bucket != BUCKETS[0]]
    assert len(full) == len(set(full))


def test_detect_language_holds_its_measured_accuracy_on_the_seed_corpus() -> None:
    """The figures docs/sources.md reports for ``propwatch``: wrong answers are rarer than
    abstentions, and the short texts are nearly all identified."""
    measured = Measured.from_json(measure("propwatch").to_json())
    tallies = measured.tallies.values()
    total = sum(t.total for t in tallies)
    assert total == len(samples())
    assert sum(t.correct for t in tallies) >= 0.98 * total
    assert sum(t.wrong for t in tallies) <= 0.002 * total
    for lang in ("nl", "ar", "en"):
        short = measured.tallies[f"{lang} {BUCKETS[0]}"]
        assert short.correct >= 0.95 * short.total
    rendered = table([measured])
    correct = sum(t.correct for t in tallies)
    assert f"| all | {total} | {100 * correct / total:.1f} |" in rendered
    for lang in EVALUATED:
        for b in BUCKETS:
            assert f"| {lang} {b} | {measured.tallies[f'{lang} {b}'].total} | " in rendered
    assert "\n| propwatch | " in rendered
