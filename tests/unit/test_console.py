"""The review console's pages and forms over HTTP, with its state fed from records in memory (no
broker): access, sessions and CSRF, escaping, claims, roles, decisions and their signatures, the
queue's order, the audit trail. Every text is synthetic; the groups are fictional."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from classifiers.base import LABELS
from streams.console.audit import COLUMNS
from streams.console.sessions import COOKIE, SESSION_MAX_AGE_S
from streams.console.views import LOGIN_FAILED
from streams.records import DecisionMessage, encode
from streams.review.signing import sign, verify
from tests.unit.console_support import Desk, desk, jsonl, record, sample, with_text

KEY = "k" * 40
SCRIPT = "<script>alert('pw')</script>"
IMG = '<img src=x onerror="alert(1)">'
QUEUED = 1_794_981_600.0
"""2026-11-18T06:00:00Z: when the test reviews were queued (``console_support.record``)."""


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Desk]:
    async with desk(tmp_path) as running:
        yield running


def rows(page: str, attribute: str = "data-review-id", cls: str = "queue-row") -> list[str]:
    return re.findall(rf'<tr class="{cls}"[^>]*?{attribute}="([^"]*)"', page)


# --- access ----------------------------------------------------------------------------------


async def test_every_page_but_the_login_page_sends_a_visitor_to_log_in(console: Desk) -> None:
    console.add_reviews(rv := record("rv-1"))
    async with console.browser() as visitor:
        for path in (
            "/",
            "/queue",
            "/next",
            f"/item/{rv['review_id']}",
            "/audit",
            "/audit.csv",
            "/audit.jsonl",
        ):
            async with visitor.session.get(path, allow_redirects=False) as response:
                assert (response.status, response.headers["Location"]) == (303, "/login"), path
        for path in ("/health", "/metrics", "/static/console.css", "/static/console.js"):
            async with visitor.session.get(path, allow_redirects=False) as response:
                assert response.status == 200, path
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                assert response.headers["Server"] == "propwatch" and COOKIE not in response.cookies
        async with visitor.session.get("/login") as response:
            headers = response.headers
            assert "default-src 'self'" in headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
            assert headers["X-Frame-Options"] == "DENY" and headers["Referrer-Policy"] == "no-referrer"
            page = await response.text()
        assert "<script>" not in page and "style=" not in page, (
            "no inline script or style (the CSP forbids them)"
        )


async def test_login_logout_and_one_answer_for_every_failure(console: Desk) -> None:
    async with console.browser() as visitor:
        wrong = await visitor.login("ria", "not the password")
        unknown = await visitor.login("nobody", "not the password")
        assert wrong.status == unknown.status == 200
        for response in (wrong, unknown):
            assert response.headers.get("Location") is None
        assert sample(console.metrics, "logins_total", outcome="failure") == 2
        status, page = await visitor.get("/queue")
        assert status == 303, "still not logged in"

        assert (await visitor.login("ria", "correct horse ria")).status == 303
        assert sample(console.metrics, "logins_total", outcome="success") == 1
        status, page = await visitor.get("/queue")
        assert status == 200 and 'id="current-user"' in page and "ria" in page

        refused = await visitor.post("/logout", {}, csrf=False)
        assert refused.status == 403, "logging out is a form too"
        out = await visitor.post("/logout", {})
        assert (out.status, out.headers["Location"]) == (303, "/login")
        assert (await visitor.get("/queue"))[0] == 303


async def test_the_failure_message_is_the_same_for_an_unknown_user(console: Desk) -> None:
    pages = []
    for name in ("ria", "nobody"):
        async with console.browser() as visitor:
            await visitor.get("/login")
            async with visitor.session.post(
                "/login", data={"csrf": visitor.csrf, "username": name, "password": "guess"}
            ) as response:
                pages.append(re.sub(r'name="csrf" value="[^"]+"', "", await response.text()))
    assert pages[0] == pages[1] and LOGIN_FAILED in pages[0]


async def test_a_form_without_its_csrf_token_is_refused(console: Desk) -> None:
    console.add_reviews(rv := record("rv-1"))
    async with console.browser() as visitor:
        await visitor.get("/login")
        no_token = await visitor.post(
            "/login", {"username": "ria", "password": "correct horse ria"}, csrf=False
        )
        assert no_token.status == 403
    async with console.browser() as other, console.browser("ria") as ria:
        await other.get("/login")  # another session's token
        await ria.get(f"/item/{rv['review_id']}")
        path = f"/item/{rv['review_id']}/decide"
        form = {"decision": "reject", "reason": "news report"}
        for token in ("", "forged", other.csrf):
            response = await ria.post(path, {**form, "csrf": token}, csrf=False)
            assert response.status == 403, token
    async with console.browser() as fresh:  # no session cookie at all
        response = await fresh.post("/login", {"username": "ria", "password": "x", "csrf": "x"}, csrf=False)
        assert response.status == 403
    assert sample(console.metrics, "refused_forms_total", reason="csrf") == 5
    assert console.recorder.sent == []


async def test_an_expired_or_changed_session_is_no_session(tmp_path: Path) -> None:
    async with desk(tmp_path) as console, console.browser("ria") as ria:
        assert (await ria.get("/queue"))[0] == 200
        cookie = ria.session.cookie_jar.filter_cookies(console.server.make_url("/"))[COOKIE].value
        ria.session.cookie_jar.update_cookies({COOKIE: cookie[:-3] + "AAA"}, console.server.make_url("/"))
        assert (await ria.get("/queue"))[0] == 303, "a changed cookie"
        ria.session.cookie_jar.update_cookies({COOKIE: cookie}, console.server.make_url("/"))
        assert (await ria.get("/queue"))[0] == 200
        console.clock.now += SESSION_MAX_AGE_S + 1
        assert (await ria.get("/queue"))[0] == 303, "expired"


async def test_the_session_cookie_is_httponly_strict_and_secure(tmp_path: Path) -> None:
    async with desk(tmp_path, console_cookie_secure=True) as console, console.browser() as visitor:
        async with visitor.session.get("/login") as response:
            cookie = response.cookies[COOKIE]
        assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Strict"
        assert cookie["path"] == "/"


# --- what a page shows ------------------------------------------------------------------------


async def test_hostile_content_is_shown_as_text(console: Desk) -> None:
    rv = record(
        "rv-<b>1</b>",
        f"{SCRIPT} and {IMG} from the Grey Heron Front",
        url="javascript:alert(document.cookie)",
        platform="<i>forum</i>",
        lang="en",
    )
    safe = record("rv-2", "A second post of the Grey Heron Front", url="https://example.test/p?a=1&b=<x>")
    console.add_reviews(rv, safe)
    console.feed(
        "decisions",
        DecisionMessage(
            review_id=safe["review_id"],
            decision="reject",
            reviewer="<svg onload=alert(1)>",
            reason=f"{SCRIPT} =HYPERLINK('x')",
        ).to_json(),
    )
    async with console.browser("sue") as sue:
        pages = [
            (await sue.get(path))[1]
            for path in ("/queue", f"/item/{rv['review_id']}", f"/item/{safe['review_id']}", "/audit")
        ]
    everything = "\n".join(pages)
    for payload in (SCRIPT, IMG, "<b>1</b>", "<i>forum</i>", "<svg onload=alert(1)>"):
        assert payload not in everything
    assert "&lt;script&gt;alert(&#39;pw&#39;)&lt;/script&gt;" in pages[1]
    assert "&lt;img src=x onerror=" in pages[1]
    assert "javascript:" in pages[1] and 'href="javascript:' not in everything
    assert 'class="unsafe-url"' in pages[1]
    assert 'href="https://example.test/p?a=1&amp;b=&lt;x&gt;"' in pages[2], (
        "an http(s) url is a link, escaped"
    )
    assert "&lt;svg onload=alert(1)&gt;" in pages[3]
    assert len(re.findall(r"<script\b", everything)) == 4, "only the console's own script tag, once a page"


async def test_a_huge_text_is_bounded_and_hostile_records_are_skipped(console: Desk) -> None:
    long = with_text(record("rv-long"), "Grey Heron Front. " * 20_000)
    console.add_reviews(long)
    assert console.feed("review", b"\xff\xfe not json") is not None
    assert console.feed("review", b'{"review_id": "forged"}') is not None
    forged = {**record("rv-x"), "text": "changed after the hash"}
    assert "content_sha256" in (console.feed("review", encode(forged)) or "")
    assert console.feed("decisions", b"[1, 2]") is not None
    assert (
        console.feed("decisions", b'{"review_id": "' + b"a" * 5000 + b'", "decision": "approve"}') is not None
    )
    async with console.browser("ria") as ria:
        status, queue = await ria.get("/queue")
        assert status == 200 and rows(queue) == [long["review_id"]]
        status, page = await ria.get(f"/item/{long['review_id']}")
    assert status == 200 and 'id="text-cut"' in page
    assert len(page) < 60_000 < len(long["text"])


async def test_the_item_page_shows_scores_evidence_and_the_known_content_match(console: Desk) -> None:
    rv = record("rv-1", url="https://example.test/post/1", observed_at="2026-11-17T10:00:00Z")
    rv["evidence"]["match"] = {
        "type": "near",
        "entry_id": "bank:e-17",
        "similarity": 0.81,
        "labels": ["threat"],
    }
    console.add_reviews(rv)
    async with console.browser("ada") as ada:
        status, page = await ada.get(f"/item/{rv['review_id']}")
    assert status == 200
    assert re.findall(r'<tr data-label="(\w+)"', page) == list(LABELS)
    for shown in (rv["content_sha256"], "https://example.test/post/1", "2026-11-17T10:00:00Z", "scripted"):
        assert shown in page
    assert "bank:e-17" in page and 'id="known-match"' in page
    assert '<details id="item-text"' in page and '<details id="item-text" open' not in page, "collapsed"
    assert 'id="approve-form"' not in page and 'id="decide-unavailable"' in page, "an auditor reads only"


async def test_the_queue_is_ordered_by_priority_and_filtered(console: Desk) -> None:
    low = {label: 0.35 for label in LABELS}
    console.add_reviews(
        a := record(
            "rv-a", "Grey Heron Front post a", scores={**low, "recruitment": 0.45}, labels=("recruitment",)
        ),
        b := record(
            "rv-b", "Grey Heron Front post b", scores={**low, "threat": 0.45}, labels=("threat",), lang="de"
        ),
        c := record(
            "rv-c",
            "Grey Heron Front post c",
            scores={**low, "recruitment": 0.45},
            labels=("recruitment",),
            classified_at="2026-11-16T06:00:00.000Z",
            platform="video",
        ),
    )
    async with console.browser("ria") as ria:
        _, page = await ria.get("/queue")
        # c: 0.7 * 0.45 * (1 + 53h/24) > b: 1.0 * 0.45 * (1 + 5h/24) > a: 0.7 * 0.45 * (1 + 5h/24)
        assert rows(page) == [c["review_id"], b["review_id"], a["review_id"]]
        assert re.search(r'id="pending-count"[^>]*>3<', page) and "2 d 5 h" in page
        assert rows((await ria.get("/queue?label=threat"))[1]) == [b["review_id"]]
        assert rows((await ria.get("/queue?lang=de"))[1]) == [b["review_id"]]
        assert rows((await ria.get("/queue?platform=video"))[1]) == [c["review_id"]]
        assert rows((await ria.get("/queue?label=nonsense"))[1]) == rows(page), "an unknown label: no filter"
        next_item = await ria.session.get("/next", allow_redirects=False)
        assert next_item.headers["Location"] == f"/item/{c['review_id']}"
    assert sample(console.metrics, "pending_reviews") == 3
    assert (
        sample(console.metrics, "oldest_pending_review_age_seconds") == console.clock.now - QUEUED + 2 * 86400
    )


# --- claims, roles and decisions ---------------------------------------------------------------


async def test_two_reviewers_cannot_both_decide_a_claimed_item(console: Desk) -> None:
    console.add_reviews(rv := record("rv-1"))
    path = f"/item/{rv['review_id']}"
    async with console.browser("ria") as ria, console.browser("rob") as rob:
        _, page = await ria.get(path)
        assert "You hold this item" in page and 'id="approve-form"' in page
        _, queue = await rob.get("/queue")
        assert 'data-claimed-by="ria"' in queue and sample(console.metrics, "claimed_reviews") == 1
        _, page = await rob.get(path)
        assert 'data-claimed-by="ria"' in page and 'id="approve-form"' not in page
        refused = await rob.post(f"{path}/decide", {"decision": "reject", "reason": "news", "supersedes": ""})
        assert refused.status == 409 and sample(console.metrics, "refused_forms_total", reason="claimed") == 1
        assert (await rob.session.get("/next", allow_redirects=False)).headers["Location"] == "/queue"

        console.clock.now += console.console.settings.console_claim_s + 1  # ria's claim lapses
        _, page = await rob.get(path)
        assert "You hold this item" in page
        sent = await rob.post(f"{path}/decide", {"decision": "reject", "reason": "news", "supersedes": ""})
        assert sent.status == 303
        late = await ria.decide(rv["review_id"], "approve", labels=["recruitment"])
        assert late.status == 409, "decided (sent) meanwhile"
    assert [m.reviewer for m, _ in console.recorder.sent] == ["rob"]


async def test_an_approval_leaves_the_queue_at_once_and_for_good(console: Desk) -> None:
    console.add_reviews(rv := record("rv-1"), other := record("rv-2", "Another Grey Heron Front post"))
    async with console.browser("ria") as ria:
        response = await ria.decide(
            rv["review_id"], "approve", labels=["recruitment"], note="matches the call"
        )
        assert (response.status, response.headers["Location"]) == (303, f"/queue?decided={rv['review_id']}")
        _, queue = await ria.get(response.headers["Location"])
        assert rows(queue) == [other["review_id"]] and 'id="notice"' in queue
        [(message, key)] = console.recorder.sent
        assert key == b"rv-1" and message.review_id == rv["review_id"]
        assert (message.decision, message.labels, message.reviewer, message.role) == (
            "approve",
            ("recruitment",),
            "ria",
            "reviewer",
        )
        assert message.reason == "Note: matches the call" and message.decision_id and message.decided_at
        assert message.signature is None, "no key set"
        console.read_back()
        _, queue = await ria.get("/queue")
        assert rows(queue) == [other["review_id"]]
        _, page = await ria.get(f"/item/{rv['review_id']}")
        assert 'data-decision="approve"' in page and 'data-status="in force"' in page
    assert sample(console.metrics, "decisions_total", role="reviewer", outcome="approve") == 1
    assert sample(console.metrics, "time_to_decision_seconds_count") == 1
    assert sample(console.metrics, "time_to_decision_seconds_sum") == console.clock.now - QUEUED
    assert sample(console.metrics, "pending_reviews") == 1


async def test_a_rejection_needs_a_reason_and_carries_the_note(console: Desk) -> None:
    console.add_reviews(rv := record("rv-1"))
    async with console.browser("ria") as ria:
        response = await ria.decide(rv["review_id"], "reject", reason="  ")
        assert response.status == 400
        response = await ria.decide(
            rv["review_id"], "reject", reason="a news report\r\non it", note="see desk 4"
        )
        assert response.status == 303
    [(message, _)] = console.recorder.sent
    assert message.reason == "a news report\non it\n\nNote: see desk 4" and message.labels is None


async def test_labels_outside_the_candidates_need_an_override_reason(console: Desk) -> None:
    console.add_reviews(rv := record("rv-1", labels=("recruitment",)))
    async with console.browser("ria") as ria:
        refused = await ria.decide(rv["review_id"], "approve", labels=["recruitment", "instruction"])
        assert refused.status == 400
        assert sample(console.metrics, "refused_forms_total", reason="invalid") == 1
        assert (await ria.decide(rv["review_id"], "approve", labels=["unknown-label"])).status == 400
        sent = await ria.decide(
            rv["review_id"], "approve", labels=["instruction"], override_reason="it gives steps"
        )
        assert sent.status == 303
    [(message, _)] = console.recorder.sent
    assert message.labels == ("instruction",) and message.override_reason == "it gives steps"


async def test_the_form_error_is_shown_on_the_item_page(console: Desk) -> None:
    console.add_reviews(rv := record("rv-1", labels=("recruitment",)))
    async with console.browser("ria") as ria:
        await ria.get(f"/item/{rv['review_id']}")
        async with ria.session.post(
            f"/item/{rv['review_id']}/decide",
            data=[("csrf", ria.csrf), ("decision", "approve"), ("labels", "threat"), ("supersedes", "")],
        ) as response:
            page = await response.text()
    assert response.status == 400 and 'id="form-error"' in page and "override reason" in page


async def test_an_auditor_reads_everything_and_decides_nothing(console: Desk) -> None:
    console.add_reviews(rv := record("rv-1"))
    async with console.browser("ria") as ria:
        await ria.decide(rv["review_id"], "reject", reason="news")
    console.read_back()
    console.add_reviews(pending := record("rv-2", "Another Grey Heron Front post"))
    async with console.browser("ada") as ada:
        _, page = await ada.get(f"/item/{pending['review_id']}")
        assert 'id="approve-form"' not in page and 'id="claim-status"' not in page, "reading claims nothing"
        refused = await ada.post(
            f"/item/{pending['review_id']}/decide", {"decision": "reject", "reason": "x"}
        )
        assert refused.status == 403
        _, audit = await ada.get("/audit")
        assert rows(audit, "data-reviewer", "audit-row") == ["ria"]
        out = await ada.post("/logout", {})
        assert out.status == 303
    assert sample(console.metrics, "refused_forms_total", reason="forbidden") == 1
    assert len(console.recorder.sent) == 0


async def test_a_supervisor_supersedes_a_decision_and_a_reviewer_cannot(console: Desk) -> None:
    console.add_reviews(rv := record("rv-1"))
    path = f"/item/{rv['review_id']}"
    async with console.browser("ria") as ria:
        await ria.decide(rv["review_id"], "approve", labels=["recruitment"])
        [(first, _)] = console.recorder.sent
        _, page = await ria.get(path)
        assert 'id="awaiting"' in page and 'id="approve-form"' not in page
        console.read_back()
        _, page = await ria.get(path)
        assert 'id="approve-form"' not in page and "Only a supervisor" in page
        refused = await ria.decide(rv["review_id"], "reject", reason="no", supersedes=first.decision_id)
        assert refused.status == 403
    async with console.browser("sue") as sue:
        _, page = await sue.get(path)
        assert "Supersede: reject" in page and f'name="supersedes" value="{first.decision_id}"' in page
        stale = await sue.decide(rv["review_id"], "reject", reason="a film review", supersedes="not-it")
        assert stale.status == 409
        none = await sue.decide(rv["review_id"], "reject", reason="a film review")
        assert none.status == 409, "a supersede must name the decision in force"
        sent = await sue.decide(
            rv["review_id"], "reject", reason="a film review", supersedes=first.decision_id
        )
        assert sent.status == 303
        [(second, _)] = console.recorder.sent
        assert (second.supersedes, second.role, second.reviewer) == (first.decision_id, "supervisor", "sue")
        console.read_back()
        _, page = await sue.get(path)
        assert 'data-decision="reject"' in page
        assert re.findall(r'data-status="([^"]+)"', page) == ["superseded", "in force"]
    assert sample(console.metrics, "decisions_total", role="supervisor", outcome="reject") == 1
    assert sample(console.metrics, "time_to_decision_seconds_count") == 1, "a correction is no first decision"


async def test_decisions_are_signed_and_unsigned_ones_count_for_nothing(tmp_path: Path) -> None:
    async with desk(tmp_path, decision_key=KEY) as console:
        console.add_reviews(rv := record("rv-1"), other := record("rv-2", "Another Grey Heron Front post"))
        forged = DecisionMessage(review_id=other["review_id"], decision="approve", reviewer="ria")
        assert "unsigned_decision" in (console.feed("decisions", forged.to_json()) or "")
        badly = {**forged.as_json(), "decision_id": "d-1", "decided_at": "2026-11-18T07:00:00Z"}
        badly["signature"] = sign(badly, b"another key")
        assert console.feed("decisions", encode(badly)) is not None
        async with console.browser("ria") as ria:
            assert (await ria.decide(rv["review_id"], "approve", labels=["threat"])).status == 303
            [(message, _)] = console.recorder.sent
            fields = message.as_json()
            assert verify(fields, fields.pop("signature"), [KEY.encode()]) is None
            assert (
                verify({**fields, "labels": ["recruitment"]}, message.signature, [KEY.encode()]) is not None
            )
            console.read_back()
            _, queue = await ria.get("/queue")
            assert rows(queue) == [other["review_id"]], "the forged approval does not decide rv-2"
            _, audit = await ria.get("/audit")
            assert re.findall(r'data-status="([^"]+)"', audit) == ["in force", "unsigned", "unsigned"]


async def test_a_failed_send_leaves_the_item_pending(console: Desk) -> None:
    console.add_reviews(rv := record("rv-1"))
    console.recorder.fail = True
    async with console.browser("ria") as ria:
        response = await ria.decide(rv["review_id"], "reject", reason="news")
        assert response.status == 503
        _, queue = await ria.get("/queue")
        assert rows(queue) == [rv["review_id"]]
        console.recorder.fail = False
        assert (await ria.decide(rv["review_id"], "reject", reason="news")).status == 303
    assert sample(console.metrics, "decision_send_errors_total") == 1


async def test_earlier_decisions_on_near_duplicates(console: Desk) -> None:
    text = "The Grey Heron Front wants new members for the coming season, message us on the usual channel"
    console.add_reviews(
        first := record("rv-1", text), record("rv-9", "Unrelated weather report for Valemoor")
    )
    async with console.browser("ria") as ria:
        await ria.decide(first["review_id"], "approve", labels=["recruitment"], note="clear call")
        console.read_back()
        console.add_reviews(again := record("rv-2", text + "!!"), near := record("rv-3", text + " today"))
        _, page = await ria.get(f"/item/{again['review_id']}")
        assert re.findall(r'<tr class="earlier" data-review-id="([^"]+)"', page) == [first["review_id"]]
        assert "exact 1.00" in page and "Note: clear call" in page
        _, page = await ria.get(f"/item/{near['review_id']}")
        assert re.findall(r'<tr class="earlier" data-review-id="([^"]+)"', page) == [first["review_id"]]
        assert "near 0." in page
        _, page = await ria.get(f"/item/{first['review_id']}")
        assert 'id="earlier-none"' in page, "an item is not its own near-duplicate"


# --- audit ---------------------------------------------------------------------------------------


async def test_the_audit_shows_each_reviewer_their_own_and_a_supervisor_everyones(console: Desk) -> None:
    console.add_reviews(*(record(f"rv-{i}", f"Grey Heron Front post number {i}") for i in range(3)))
    ids = list(console.console.state.queue.records)
    async with console.browser("ria") as ria, console.browser("rob") as rob:
        await ria.decide(ids[0], "reject", reason='=HYPERLINK("http://x.test")')
        await rob.decide(ids[1], "approve", labels=["threat"], note="-2+3")
        console.read_back()
        _, own = await ria.get("/audit?reviewer=rob")
        assert rows(own, "data-reviewer", "audit-row") == ["ria"], "a reviewer sees only their own"
        async with ria.session.get("/audit.jsonl?reviewer=rob") as response:
            assert [row["reviewer"] for row in jsonl(await response.text())] == ["ria"]
    async with console.browser("sue") as sue:
        _, everyone = await sue.get("/audit")
        assert rows(everyone, "data-reviewer", "audit-row") == ["rob", "ria"]
        _, robs = await sue.get("/audit?reviewer=rob")
        assert rows(robs, "data-reviewer", "audit-row") == ["rob"]
        async with sue.session.get("/audit.csv") as response:
            assert response.headers["Content-Type"].startswith("text/csv")
            assert "attachment" in response.headers["Content-Disposition"]
            csv_text = await response.text()
        async with sue.session.get("/audit.jsonl") as response:
            lines = jsonl(await response.text())
    header, *data = csv_text.splitlines()
    assert header.split(",") == list(COLUMNS)
    assert "'=HYPERLINK" in csv_text and "\n=" not in csv_text and ",=" not in csv_text
    assert "'Note: -2+3" not in csv_text and "Note: -2+3" in csv_text
    assert [(row["reviewer"], row["status"], row["role"]) for row in lines] == [
        ("rob", "in force", "reviewer"),
        ("ria", "in force", "reviewer"),
    ]
    assert lines[1]["reason"] == '=HYPERLINK("http://x.test")', "JSON Lines keep the value as it is"
    assert len(data) == 2


async def test_a_trusted_proxy_header_names_the_user_and_turns_the_login_form_off(tmp_path: Path) -> None:
    async with desk(tmp_path, console_proxy_user_header="X-Remote-User") as console:
        console.add_reviews(rv := record("rv-1"))
        async with console.browser() as visitor:
            assert (await visitor.get("/queue"))[0] == 303, "no header: no user"
            status, page = await visitor.get("/queue", headers={"X-Remote-User": "mallory"})
            assert status == 303, "a name that is not in the users file: no user"
            _, page = await visitor.get("/login")
            assert 'id="login-proxy"' in page and 'id="login-form"' not in page
            refused = await visitor.post("/login", {"username": "ria", "password": "correct horse ria"})
            assert refused.status == 403
            status, page = await visitor.get(f"/item/{rv['review_id']}", headers={"X-Remote-User": "ria"})
            assert status == 200 and "You hold this item" in page and 'id="logout-form"' not in page
            async with visitor.session.post(
                f"/item/{rv['review_id']}/decide",
                data=[("csrf", visitor.csrf), ("decision", "reject"), ("reason", "news"), ("supersedes", "")],
                headers={"X-Remote-User": "ria"},
                allow_redirects=False,
            ) as response:
                assert response.status == 303, "the form still needs its CSRF token, which it has"
        [(message, _)] = console.recorder.sent
        assert message.reviewer == "ria"
