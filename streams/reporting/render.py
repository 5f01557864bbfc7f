"""The report as Markdown for publication (:func:`format_markdown`), safe to render whatever the
records held: every value from a record goes through one table cell escape."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence

from streams.io import one_line
from streams.kafka.topics import REFERRALS
from streams.records import OBSERVED_AT_EARLIEST
from streams.reporting.figures import Report, ratio, rfc3339

CELL_CHARS = 80
"""Longest value a Markdown table cell shows; longer ones are cut and end with an ellipsis."""
_MARKDOWN_SPECIAL = re.compile(r"[\\|`\[\]]")


def _cell(value: object) -> str:
    """``value`` as one table cell, safe whatever a producer wrote into it: cut to
    :data:`CELL_CHARS` characters; control characters, line breaks (a row is one line),
    bidirectional overrides and lone surrogates written as ``\\uXXXX`` (:func:`one_line`), so
    that neither a terminal nor a page is driven or reordered by them; ``\\ | ` [ ]`` escaped,
    so that no value ends the row, opens code or makes a link or remote image; ``& < >`` as HTML
    entities, so that a page rendering the Markdown shows any HTML as text. Emphasis (``* _ ~``)
    is left: it hides nothing."""
    text = str(value)
    if len(text) > CELL_CHARS:
        text = text[: CELL_CHARS - 1] + "\u2026"
    return html.escape(_MARKDOWN_SPECIAL.sub(r"\\\g<0>", one_line(text)), quote=False)


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], text: Sequence[int] = (0,)) -> list[str]:
    """A Markdown table; the columns numbered in ``text`` are left-aligned, the others (numbers) right."""
    rule = "|" + "|".join("---" if i in text else "---:" for i in range(len(headers))) + "|"
    lines = ["| " + " | ".join(headers) + " |", rule]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    if len(lines) == 2:
        lines.append("| " + " | ".join(["none", *[""] * (len(headers) - 1)]) + " |")
    return lines


def _percent(rate: float | None) -> str:
    """A rate as a percentage to one place; ``n/a`` when nothing was counted."""
    return "n/a" if rate is None else f"{rate * 100:.1f} %"


def duration(seconds: float | None) -> str:
    """Seconds as a person reads them (``12.5 s``, ``3 min 4 s``, ``1 h 5 min``, ``2 d 3 h``); ``n/a``
    when nothing was timed."""
    if seconds is None:
        return "n/a"
    sign, rest = ("-" if seconds < 0 else ""), abs(seconds)
    if rest < 60:
        return f"{sign}{rest:.1f} s"
    if rest < 3600:
        return f"{sign}{int(rest // 60)} min {int(rest % 60)} s"
    if rest < 86400:
        return f"{sign}{int(rest // 3600)} h {int(rest % 3600 // 60)} min"
    return f"{sign}{int(rest // 86400)} d {int(rest % 86400 // 3600)} h"


def _by_count(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """The largest counts first, ties by key."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def format_markdown(report: Report) -> str:
    """The report as Markdown, readable as a published transparency report."""
    p, t = report.period, report.totals
    since = rfc3339(p.since) or "the oldest record kept"
    until = rfc3339(p.until) or "the time of the report"
    lines = [
        "# Transparency report: terrorist content detection",
        "",
        f"Period: from {since} (inclusive) to {until} (exclusive).",
    ]
    if p.first_verdict_at is not None:
        lines.append(f"Verdicts counted: {rfc3339(p.first_verdict_at)} to {rfc3339(p.last_verdict_at)}.")
    if report.generated_at is not None:
        lines.append(f"Generated: {rfc3339(report.generated_at)}.")
    lines += [
        "",
        "Figures for the transparency reports of Regulation (EU) 2021/784 (TCO), Articles 7 and 8, "
        "as seen by the detection pipeline; removal orders, complaints and penalties are not in it. "
        "Messages can be delivered more than once, so every count is after de-duplication: one "
        "referral per referral id, one verdict per item, one dead letter per input message.",
        "",
        "## Summary",
        "",
        *_table(
            ("Figure", "Count", "Meaning"),
            [
                ("Items with a verdict", t.items, "distinct items referred, cleared or awaiting review"),
                ("Referrals", t.referrals, "items reported as suspected terrorist content"),
                ("Cleared", t.cleared, "items assessed and not referred, by the model or a reviewer"),
                ("Awaiting review", t.pending_review, "items queued for a person, undecided at the end"),
                ("Processing failures", t.dlq, "items that could not be processed (dead-letter topic)"),
            ],
            text=(0, 2),
        ),
        "",
        "## Referrals by label",
        "",
        f"A referral with several labels counts under each; {report.multi_label_referrals} of "
        f"{t.referrals} referrals had more than one, so the column can add up to more than the total.",
        "",
        *_table(
            ("Label", "Referrals", "Share of referrals"),
            [(k, v, _percent(ratio(v, t.referrals))) for k, v in report.referrals_by_label.items()],
        ),
    ]
    for title, column, counts in (
        ("Referrals by platform", "Platform", report.referrals_by_platform),
        ("Referrals by language", "Language", report.referrals_by_lang),
        (
            "Referrals by model",
            "Model (name@revision; hashbank: known-content match)",
            report.referrals_by_model,
        ),
        ("Referrals by decision route", "Decided by", report.referrals_by_decided_by),
    ):
        lines += ["", f"## {title}", "", *_table((column, "Referrals"), _by_count(counts))]
    lines += [
        "",
        "## Referral rates",
        "",
        "Verdicts are referrals plus clearances; the rate is the share of verdicts that were referrals.",
    ]
    for column, rates in (("Platform", report.verdicts_by_platform), ("Language", report.verdicts_by_lang)):
        lines += [
            "",
            *_table(
                (column, "Verdicts", "Referrals", "Cleared", "Referral rate"),
                [
                    (k, r.verdicts, r.referrals, r.cleared, _percent(r.referral_rate))
                    for k, r in rates.items()
                ],
            ),
        ]
    latency = report.time_to_referral
    lines += [
        "",
        "## Time from observation to referral",
        "",
        "From when the content was observed (observed_at) to the referral (classified_at), over referrals "
        "that say when their content was observed; the review route includes the time a person took. "
        f"{report.input[REFERRALS.name].implausible_observed_at} referrals with an observed_at that is not a "
        f"plausible capture time (not a timestamp, before {rfc3339(OBSERVED_AT_EARLIEST)} or after the "
        "referral) are not timed.",
        "",
        *_table(
            ("Decided by", "Referrals timed", "Median", "90th percentile"),
            [
                ("all", latency.count, duration(latency.median_s), duration(latency.p90_s)),
                *[
                    (k, v.count, duration(v.median_s), duration(v.p90_s))
                    for k, v in report.time_to_referral_by_decided_by.items()
                ],
            ],
        ),
    ]
    r = report.review
    d = r.decisions_received
    lines += [
        "",
        "## Human review",
        "",
        "Events in the period: an item queued before it and decided in it counts as decided only.",
        "",
        *_table(
            ("Figure", "Count"),
            [
                ("Queued for review", r.queued),
                ("Approved (referred)", r.approved),
                ("Rejected (cleared)", r.rejected),
                ("Queued and still pending", r.pending),
                ("Reviewer decisions received", d.get("total", 0)),
                ("... of which not approve or reject (dead-lettered)", d.get("other", 0)),
            ],
        ),
        "",
        "## Known-content matches",
        "",
        "Referrals decided by the hash bank of content already referred: exact (same normalised text) "
        "or near (similar text).",
        "",
        *_table(
            ("Match type", "Referrals"),
            [*report.known_content_by_type.items(), ("all", sum(report.known_content_by_type.values()))],
        ),
        "",
        "## Processing failures",
        "",
        *_table(("Error code", "Items"), _by_count(report.dlq_by_code)),
    ]
    if report.shadow:
        lines += [
            "",
            "## Shadow model evaluation",
            "",
            "A candidate model scored the same items without deciding anything. Flag rates are over the "
            "items it scored; live is the model in service; agreement is the share of items where both "
            "decided alike.",
            "",
            *_table(
                ("Shadow model", "Items", "Shadow flag rate", "Live flag rate", "Agreement"),
                [
                    (
                        name,
                        s.items,
                        _percent(s.shadow_flag_rate),
                        _percent(s.live_flag_rate),
                        _percent(s.agreement_rate),
                    )
                    for name, s in report.shadow.items()
                ],
            ),
        ]
    lines += [
        "",
        "## Records read",
        "",
        "Records read per topic and what became of them: duplicates are redeliveries of a record "
        "already counted; out of period: verdict time outside the period.",
        "",
        *_table(
            ("Topic", "Read", "Duplicates", "Out of period", "Undated", "Invalid", "Unreadable", "In period"),
            [
                (name, i.read, i.duplicates, i.out_of_period, i.undated, i.invalid, i.unreadable, i.in_period)
                for name, i in report.input.items()
            ],
        ),
    ]
    return "\n".join(lines) + "\n"
