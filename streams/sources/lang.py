"""The language of a found text, offline: py3langid's naive Bayes model, restricted to
:data:`LANGUAGES`.

Chosen by measurement on the seed corpus's short texts (``python -m streams.sources.lang_eval``;
the figures are in ``docs/sources.md``, "Language identification"): as accurate on short Dutch,
Arabic and English as lingua's high-accuracy mode restricted the same way, at a ninth of its
memory and a twentieth of its time per text.

:func:`detect_language` reads text an adversary wrote: it bounds what it reads, drops what says
nothing about a language (links, addresses, mentions, hashtags), lowers a shouted text's case,
answers ``None`` when too few letters are left or the model is unsure, and never raises.
"""

from __future__ import annotations

import functools
import logging
import re

from py3langid.langid import MODEL_FILE, LanguageIdentifier

log = logging.getLogger(__name__)

LANGUAGES = frozenset(
    # The EU's official languages but Maltese (lingua, which the evaluation compares, has no
    # model for it),
    "bg cs da de el en es et fi fr ga hr hu it lt lv nl pl pt ro sk sl sv".split()
    # and the languages of the propaganda and the communities an EU referral unit meets most:
    # Arabic, Persian, Urdu, Turkish, Azerbaijani, Russian, Ukrainian, Bosnian, Serbian, Albanian,
    # Somali, Indonesian, Hindi, Bengali, Chinese.
    + "ar fa ur tr az ru uk bs sr sq so id hi bn zh".split()
)
"""The languages :func:`detect_language` chooses among (ISO 639-1). Leaving out languages the
unit does not meet (Afrikaans beside Dutch, Luxembourgish beside German, Catalan and Galician
beside Spanish and Portuguese) removes the confusions that cost accuracy on short texts; a text in
a language outside the set gets a low confidence, and so ``None``, more often than a wrong code."""

MIN_LETTERS = 8
"""Fewer letters than this (after links, mentions and hashtags are dropped) say too little."""
MIN_CONFIDENCE = 0.5
"""The model's probability (normalised over :data:`LANGUAGES`) under which the answer is ``None``."""
MAX_CHARS = 2_000
"""What is read of a text: its language shows in its first paragraphs, and the time is bounded."""

_NOISE = re.compile(r"(?:https?://|www\.)\S*|\S+@\S+\.\S+|[@#]\w+", re.IGNORECASE)


@functools.cache
def _identifier() -> LanguageIdentifier:
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(sorted(LANGUAGES))
    return identifier


def _clean(text: str) -> str:
    cleaned = _NOISE.sub(" ", text[: 4 * MAX_CHARS])[:MAX_CHARS]
    upper = sum(ch.isupper() for ch in cleaned)
    if upper > 0.5 * sum(ch.isalpha() and (ch.isupper() or ch.islower()) for ch in cleaned):
        cleaned = cleaned.lower()  # a shouted text: the model knows words in their usual case
    return cleaned


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code of ``text``'s language, or ``None`` when it is too short to tell or the
    model is unsure. Never raises."""
    if not isinstance(text, str):
        return None
    cleaned = _clean(text)
    if sum(ch.isalpha() for ch in cleaned) < MIN_LETTERS:
        return None
    try:
        code, confidence = _identifier().classify(cleaned)
    except Exception as exc:  # a text must never stop its source: no answer is an answer
        log.warning("language identification failed: %s", type(exc).__name__)
        return None
    return code if confidence >= MIN_CONFIDENCE else None
