"""The review console on whatever a producer can put on the review and decisions topics: arbitrary
bytes, and hostile but valid records (built with the project's models) whose every free string
carries markup, script URLs, bidirectional overrides, zero-width characters, spreadsheet formulas
or sheer length. Reading them never raises, and every page and export made from them answers,
escapes them, and stays what it claims to be (HTML with only the console's own tags and links, CSV
that no spreadsheet runs, JSON Lines that parse). No broker; every text is synthetic."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifiers.base import LABELS
from streams.console.audit import COLUMNS, FORMULA_STARTS
from streams.console.state import ConsoleState
from streams.kafka.follower import Followed
from streams.records import Review, SourcePosition
from streams.records.content import CONTROL, CONTROL_OR_BREAK, FIELD_LIMITS
from streams.records.decision import DECISION_LIMITS, REASON_MAX_CHARS
from streams.records.outputs import (
    Evidence,
    EvidenceModel,
    MatchBlock,
    ModelRef,
    Source,
    Subject,
    Thresholds,
    custody_step,
)
from streams.review.signing import sign
from tests import hostile
from tests.unit.console_support import Browser, Desk, desk, record, sample, with_text

FORMULAS = ('=HYPERLINK("http://x.test","y")', "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r\n=1+1", "\n@x")
"""What a spreadsheet would run, at the start of a CSV cell."""
PAYLOADS = (
    *FORMULAS,
    "<script>alert('pw')</script>",
    '<img src=x onerror="alert(1)">',
    '"><svg onload=alert(1)>',
    "'><iframe src=javascript:alert(1)>",
    "</textarea><b>bold</b>",
    "javascript:alert(document.cookie)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "{{ 7 * 7 }}{% raw %}",
    "&lt;script&gt;&amp;",
    "\u202e",  # right-to-left override
    "\u2066\u2069",  # isolates
    "\u200b\u200c\u200d\ufeff",  # zero-width
    "\u2028\u2029",  # line and paragraph separators
    "Grey Heron Front",
    *hostile.SPECIAL_TEXT,
)
"""Fragments a hostile producer puts in every string; the models refuse some of them in some
fields (controls, line breaks), so each field keeps what its model accepts (:func:`fit`)."""

pieces = st.lists(st.one_of(st.sampled_from(PAYLOADS), st.text(max_size=8)), min_size=1, max_size=6).map(
    "".join
)


def fit(value: str, refused: re.Pattern[str] | None, limit: int) -> str:
    """``value`` without what a field's model refuses, cut to its limit, never blank."""
    value = refused.sub("", value) if refused else value
    value = value[:limit]
    return value if value.strip() else "x" + value[: limit - 1]


def strings(refused: re.Pattern[str] | None = CONTROL_OR_BREAK, limit: int = 512) -> st.SearchStrategy[str]:
    return pieces.map(lambda value: fit(value, refused, limit))


free = strings(None, 4096)
"""A string field the models take as it is (a model name, a custody actor): controls too."""
edges = st.sampled_from((0.0, 1.0, 5e-324, 1 - 2**-53, 0.5))
"""Scores and thresholds at and beside the ends of 0..1."""
candidate_labels = st.lists(st.sampled_from(LABELS), min_size=1, max_size=4, unique=True).map(tuple)
timestamps = st.sampled_from(
    ("2026-11-18T06:00:00.000Z", "0001-01-02T00:00:00Z", "9999-12-30T23:59:59Z", "2026-11-18T06:00:00+23:59")
)
"""Valid RFC 3339 times, at the ends of the range and ahead of the tests' clock."""


@st.composite
def reviews(draw: st.DrawFn) -> dict[str, Any]:
    """A valid review record (its hashes and id agree) with a hostile value in every free field."""
    body = draw(strings(CONTROL, 20_000))
    subject = Subject(
        item_id=draw(strings(limit=FIELD_LIMITS["id"])),
        url=draw(
            st.one_of(
                st.none(),
                strings(limit=FIELD_LIMITS["url"]),
                st.sampled_from(
                    (
                        "javascript:alert(1)",
                        "data:text/html;base64,PHNjcmlwdD4=",
                        "https://x.test/\u202egnp.exe",
                    )
                ),
            )
        ),
        platform=draw(st.none() | strings(limit=FIELD_LIMITS["platform"])),
        lang=draw(st.none() | strings(limit=FIELD_LIMITS["lang"])),
        author_hash=draw(st.none() | free),
        text=body,
        content_sha256=hashlib.sha256(body.encode()).hexdigest(),
        observed_at=draw(st.none() | timestamps),
    )
    scores = draw(st.fixed_dictionaries({label: edges for label in LABELS}))
    match = draw(
        st.none()
        | st.builds(
            MatchBlock,
            type=st.sampled_from(("exact", "near")),
            entry_id=free,
            similarity=edges,
            labels=candidate_labels,
        )
    )
    custody = draw(
        st.lists(
            st.builds(
                custody_step,
                step=st.sampled_from(("received", "classified", "queued_for_review")),
                at=timestamps,
                actor=free,
            ),
            min_size=1,
            max_size=3,
        )
    )
    evidence = Evidence(
        captured_at=draw(st.none() | free),
        content_sha256=subject.content_sha256,
        normalised_sha256=draw(free),
        normalisation=draw(free),
        model=EvidenceModel(name=draw(free), revision=draw(free), backend=draw(free)),
        thresholds=Thresholds(referral=scores, review=scores),
        scores=scores,
        match=match,
        source=Source(
            topic=draw(free), partition=draw(st.integers(0, 2**63)), offset=draw(st.integers(0, 2**63))
        ),
        chain_of_custody=tuple(custody),
    )
    return Review.of(
        subject,
        model=ModelRef(name=draw(free), revision=draw(free)),
        labels=draw(candidate_labels),
        scores=scores,
        thresholds=draw(st.fixed_dictionaries({label: edges for label in LABELS})),
        review_thresholds=draw(st.fixed_dictionaries({label: edges for label in LABELS})),
        classified_at=draw(timestamps),
        evidence=evidence,
    ).as_json()


reasons = st.one_of(
    strings(CONTROL, REASON_MAX_CHARS),
    st.sampled_from(FORMULAS).map(
        lambda start: fit(start + "x" * REASON_MAX_CHARS, CONTROL, REASON_MAX_CHARS)
    ),
)
"""Free text as a decision carries it: formula prefixes, line breaks, up to the 4,096 characters."""
ids = strings(limit=DECISION_LIMITS["decision_id"])


@st.composite
def decisions(draw: st.DrawFn, review_ids: list[str], earlier: list[str]) -> dict[str, Any]:
    """A decision that parses (or nearly: a hostile time or label set) on one of ``review_ids``."""
    approve = draw(st.booleans())
    fields: dict[str, Any] = {
        "review_id": draw(st.sampled_from(review_ids) | ids) if review_ids else draw(ids),
        "decision": "approve" if approve else "reject",
        "reviewer": draw(strings(limit=DECISION_LIMITS["reviewer"])),
        "reason": draw(st.none() | reasons),
        "decision_id": draw(st.none() | ids),
        "decided_at": draw(st.none() | timestamps | hostile.timestamps),
        "role": draw(st.sampled_from((None, "reviewer", "supervisor"))),
        "supersedes": draw(st.none() | st.sampled_from(earlier)) if earlier else None,
    }
    if approve:
        fields["labels"] = draw(st.none() | candidate_labels.map(list))
        fields["override_reason"] = draw(st.none() | reasons)
    return {name: value for name, value in fields.items() if value is not None}


@dataclass
class Case:
    reviews: list[dict[str, Any]]
    decisions: list[dict[str, Any]]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    found = draw(st.lists(reviews(), min_size=1, max_size=3))
    made: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 5))):
        earlier = [d["decision_id"] for d in made if "decision_id" in d]
        made.append(draw(decisions([r["review_id"] for r in found], earlier)))
    return Case(found, made)


def message(topic: str, offset: int, value: bytes | None) -> Followed:
    return Followed(None, value, SourcePosition(topic, 0, offset), 1_795_000_000.0)


def encoded(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


# --- reading: never raises --------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=hostile.raw_values(
        reviews() | hostile.records({"review_id": hostile.values, "text": hostile.texts})
    )
)
def test_any_bytes_on_the_review_topic_are_a_reason_or_a_review(value: bytes | None) -> None:
    """Valid hostile reviews, the same with a field spliced into what no Python value encodes
    to, and anything else: each is taken, or refused with a reason."""
    state = ConsoleState(LABELS)
    outcome = state.apply_review(message("review", 0, value))
    assert outcome is None or isinstance(outcome, str)
    assert (outcome is None) == bool(state.queue.records)


@settings(max_examples=150, deadline=None)
@given(
    value=hostile.raw_values(
        hostile.records(
            {
                "review_id": ids,
                "decision": st.sampled_from(("approve", "reject")),
                "reviewer": ids,
                "reason": reasons,
            },
            keys=("review_id", "decision"),
        )
    )
)
def test_any_bytes_on_the_decisions_topic_are_a_reason_or_a_decision(value: bytes | None) -> None:
    for keys in ((), (b"k" * 32,)):
        state = ConsoleState(LABELS, keys=keys)
        outcome = state.apply_decision(message("decisions", 0, value))
        assert outcome is None or isinstance(outcome, str)
        assert len(state.read) <= 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(review=reviews(), surrogate=st.characters(categories=("Cs",)))
def test_hostile_valid_reviews_are_taken_and_lone_surrogates_refused(
    review: dict[str, Any], surrogate: str
) -> None:
    state = ConsoleState(LABELS)
    assert state.apply_review(message("review", 0, encoded(review))) is None
    assert state.review(review["review_id"]) == Review.model_validate(review)
    escaped = json.dumps(review).replace('"text": "', f'"text": "\\u{ord(surrogate):04x}', 1)
    refused = state.apply_review(message("review", 1, escaped.encode()))
    assert refused is not None and "surrogate" in refused


# --- pages and exports: always answered, always escaped ----------------------------------------------

TEMPLATES = files("streams.console").joinpath("templates")
OWN_TAGS = frozenset(
    tag.lower()
    for name in ("base.html", "queue.html", "item.html", "audit.html", "error.html", "login.html")
    for tag in re.findall(r"</?([a-zA-Z][a-zA-Z0-9]*)", TEMPLATES.joinpath(name).read_text())
)
"""Every HTML element the console's templates write: a page holds no other."""
BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069]")


class Tags(HTMLParser):
    """A page as a browser parses it: its elements with their attributes, and the text it shows
    (but the item's own text, which is shown as it was written, inside ``dir="auto"``)."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.shown: list[str] = []
        self._in_text = False
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))
        self._in_text = self._in_text or ("id", "item-text-body") in attrs

    def handle_endtag(self, tag: str) -> None:
        if tag == "div":
            self._in_text = False

    def handle_data(self, data: str) -> None:
        if not self._in_text:
            self.shown.append(data)


def check_html(page: str) -> None:
    parsed = Tags(page)
    tags = {tag for tag, _ in parsed.found}
    assert tags <= OWN_TAGS, tags - OWN_TAGS
    assert [tag for tag, _ in parsed.found].count("script") == 1, "only the console's own script"
    for tag, attrs in parsed.found:
        for name, value in attrs:
            assert not name.startswith("on") and name not in ("style", "srcdoc", "formaction"), (tag, name)
            if name in ("href", "src", "action"):
                assert value and (value.startswith("/") or re.match(r"https?://", value)), (tag, value)
    shown = "".join(parsed.shown)
    assert not CONTROL.search(shown), "controls are shown as escapes"
    assert not BIDI.search(shown), "bidirectional controls are shown as escapes (but in the item's text)"


def check_csv(body: str, rows: int) -> None:
    table = list(csv.reader(io.StringIO(body, newline="")))
    assert table[0] == list(COLUMNS) and len(table) == rows + 1
    for row in table[1:]:
        assert len(row) == len(COLUMNS)
        for cell in row:
            assert not cell.startswith(FORMULA_STARTS), cell[:40]


def check_jsonl(body: str, rows: int) -> None:
    lines = body.split("\n")
    assert lines[-1] == "" and len(lines) == rows + 1
    parsed = [json.loads(line) for line in lines[:-1]]
    assert all(set(row) == set(COLUMNS) for row in parsed)
    assert len(body.splitlines()) == rows, "no line break but the newline between rows"


@contextmanager
def serving(tmp_path: Path, **config: Any) -> Iterator[tuple[asyncio.AbstractEventLoop, Desk, Browser]]:
    """One console (and a supervisor logged in) for every example of a test."""
    loop = asyncio.new_event_loop()
    stack = AsyncExitStack()
    try:
        running = loop.run_until_complete(stack.enter_async_context(desk(tmp_path, **config)))
        sue = loop.run_until_complete(stack.enter_async_context(running.browser("sue")))
        yield loop, running, sue
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()


def reset(running: Desk) -> ConsoleState:
    """A console that has read nothing yet."""
    old = running.console.state
    running.console.state = ConsoleState(LABELS, keys=old.log.keys, clock=running.clock)
    running.offsets = {"review": 0, "decisions": 0}
    return running.console.state


async def pages(running: Desk, sue: Browser, case: Case, key: bytes | None = None) -> None:
    """Feed ``case`` to a console that has read nothing (signing every other decision with
    ``key``), then read every page and export a supervisor can."""
    state = reset(running)
    for review in case.reviews:
        assert running.feed("review", encoded(review)) is None
    for i, decision in enumerate(case.decisions):
        if key is not None and i % 2 == 0:
            decision = {**decision, "signature": sign(decision, key)}
        outcome = running.feed("decisions", encoded(decision))
        assert outcome is None or isinstance(outcome, str)
    first = case.reviews[0]
    reviewer = case.decisions[0]["reviewer"] if case.decisions else first["item_id"]
    queries = {
        "lang": first["lang"] or "",
        "platform": first["platform"] or "",
        "label": first["labels"][0],
        "decided": first["review_id"],
    }
    html = ["/queue", "/audit"] + [f"/item/{review['review_id']}" for review in case.reviews]
    for path in html:
        status, page = await sue.get(path)
        assert status == 200, (path, page[-500:])
        check_html(page)
    for path, params in (("/queue", queries), ("/audit", {"reviewer": reviewer})):
        async with sue.session.get(path, params=params, allow_redirects=False) as response:
            assert response.status == 200
            check_html(await response.text())
    rows = len(state.read)
    async with sue.session.get("/audit.csv") as response:
        assert response.status == 200
        check_csv(await response.text(), rows)
    async with sue.session.get("/audit.jsonl") as response:
        assert response.status == 200
        check_jsonl(await response.text(), rows)


def test_every_page_and_export_of_hostile_records_answers_and_escapes(tmp_path: Path) -> None:
    with serving(tmp_path) as (loop, running, sue):

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(case=cases())
        def check(case: Case) -> None:
            loop.run_until_complete(pages(running, sue, case))

        check()


def test_signed_decisions_of_hostile_reviewers_answer_and_escape(tmp_path: Path) -> None:
    key = "k" * 40
    with serving(tmp_path, decision_key=key) as (loop, running, sue):

        @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(case=cases())
        def check(case: Case) -> None:
            loop.run_until_complete(pages(running, sue, case, key.encode()))

        check()


# --- what the properties found ---------------------------------------------------------------------


def test_repeated_candidate_labels_and_a_match_outside_the_taxonomy_are_refused() -> None:
    """The schema says a review's labels are distinct taxonomy labels, and so are its match's; a
    record that names ``threat`` 50,000 times would list them on every queue page it is on."""
    state = ConsoleState(LABELS)
    base = record("rv-1")
    repeated = {**base, "labels": ["threat"] * 50_000}
    assert "distinct" in (state.apply_review(message("review", 0, encoded(repeated))) or "")
    match = {"type": "near", "entry_id": "bank:1", "similarity": 0.8, "labels": ["<b>not a label</b>"]}
    for wrong in (match, {**match, "labels": ["threat", "threat"]}, {**match, "labels": []}):
        forged = {**base, "evidence": {**base["evidence"], "match": wrong}}
        assert "evidence.match.labels" in (state.apply_review(message("review", 1, encoded(forged))) or "")
    beyond = {
        **base,
        "evidence": {**base["evidence"], "match": {**match, "labels": ["threat"], "similarity": 7.5}},
    }
    assert "similarity" in (state.apply_review(message("review", 2, encoded(beyond))) or "")
    assert state.queue.records == {}
    fine = {**base, "evidence": {**base["evidence"], "match": {**match, "labels": ["threat"]}}}
    assert state.apply_review(message("review", 3, encoded(fine))) is None


async def test_thousands_of_decisions_on_one_review_do_not_stall_the_audit(tmp_path: Path) -> None:
    """Each decision's status was worked out from every prefix of its review's decisions: the audit
    of k decisions on one review took k³ steps (400 took seconds, 4,000 an hour, with the event
    loop blocked). Anyone who can write the decisions topic chooses k."""
    chain = 3000
    async with desk(tmp_path) as running, running.browser("sue") as sue:
        running.add_reviews(rv := record("rv-1"))
        for i in range(chain):
            decision = {
                "review_id": rv["review_id"],
                "decision": "reject",
                "reviewer": f"r{i % 7}",
                "reason": "=1+1",
            }
            decision.update(decision_id=f"d-{i}", **({"supersedes": f"d-{i - 1}"} if i else {}))
            assert running.feed("decisions", encoded(decision)) is None
        async with sue.session.get("/audit.jsonl") as response:
            rows = [json.loads(line) for line in (await response.text()).split("\n")[:-1]]
        status, page = await sue.get(f"/item/{rv['review_id']}")
        _, audit = await sue.get("/audit")
    assert [row["status"] for row in rows] == ["in force"] + ["superseded"] * (chain - 1)
    assert status == 200 and 'data-decision-id="d-2999"' in page
    assert len(re.findall(r'class="audit-row"', audit)) == 500


async def test_a_body_that_is_not_a_form_is_refused_not_a_500(tmp_path: Path) -> None:
    """aiohttp raises on a multipart body without its boundary, a field that is not in its charset,
    or a charset it does not know: each was an internal error (500) on every form, login included."""
    async with desk(tmp_path) as running, running.browser("ria") as ria:
        running.add_reviews(rv := record("rv-1"))
        await ria.get(f"/item/{rv['review_id']}")
        fields = {"csrf": ria.csrf.encode(), "decision": b"reject", "reason": b"\xff\xfe not utf-8"}
        multipart = aiohttp.MultipartWriter("form-data")
        for name, value in fields.items():
            multipart.append(value, {"Content-Type": "text/plain; charset=utf-8"}).set_content_disposition(
                "form-data", name=name
            )
        urlencoded = "application/x-www-form-urlencoded"
        bodies: list[tuple[Any, dict[str, str]]] = [
            (multipart, {}),
            (b"csrf=x&decision=reject", {"Content-Type": f"{urlencoded}; charset=no-such-charset"}),
            (b"\xff" * 64, {"Content-Type": "multipart/form-data; boundary=nowhere"}),
        ]
        for path in (f"/item/{rv['review_id']}/decide", "/login", "/logout"):
            for body, headers in bodies:
                async with ria.session.post(
                    path, data=body, headers=headers, allow_redirects=False
                ) as response:
                    assert response.status == 400, (path, headers)
                    assert "The form could not be read." in await response.text()
    assert sample(running.metrics, "refused_forms_total", reason="invalid") == 9
    assert running.recorder.sent == []


async def test_a_400_kb_hostile_text_is_cut_and_escaped(tmp_path: Path) -> None:
    """The largest text the worker takes (``PROPWATCH_MAX_TEXT_BYTES``), all markup and overrides."""
    unit = "<script>alert('pw')</script>\u202e<img src=x onerror=alert(1)>\u200b Grey Heron Front. "
    text = (unit * (400_000 // len(unit.encode())))[:400_000]
    async with desk(tmp_path) as running, running.browser("ria") as ria:
        running.add_reviews(rv := with_text(record("rv-big"), text))
        pages = [await ria.get(path) for path in ("/queue", f"/item/{rv['review_id']}")]
    for status, page in pages:
        assert status == 200
        check_html(page)
    item = pages[1][1]
    assert 'id="text-cut"' in item and len(item) < 200_000 < len(rv["text"].encode())
    assert "&lt;script&gt;alert(&#39;pw&#39;)&lt;/script&gt;\u202e&lt;img src=x onerror=alert(1)&gt;" in item
