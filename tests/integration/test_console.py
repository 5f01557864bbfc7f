"""The review console as ``propwatch console`` runs it, on the real broker beside a worker: a reviewer
logs in over HTTP, approves one queued item and rejects another, and the worker turns the
decisions into a referral and a cleared verdict, read with the independent client."""

from __future__ import annotations

import http.cookiejar
import json
import re
import time
import urllib.parse
import urllib.request

from streams.io import produce_lines
from streams.kafka.producer import Producer
from streams.review.signing import verify
from tests.integration.conftest import Deployment
from tests.integration.test_review import REVIEW_ALL, TEXTS, post

KEY = "integration-decision-key-0123456789"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Visitor:
    """A plain HTTP client with its own cookies (redirects followed)."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self.csrf = ""

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=10) as response:
            page = response.read().decode()
        found = CSRF.search(page)
        self.csrf = found.group(1) if found else self.csrf
        return page

    def post(self, path: str, fields: list[tuple[str, str]]) -> tuple[str, str]:
        """The page the form leads to, and its path."""
        body = urllib.parse.urlencode([*fields, ("csrf", self.csrf)]).encode()
        with self.opener.open(self.base + path, data=body, timeout=30) as response:
            return response.read().decode(), urllib.parse.urlsplit(response.url).path


def queued(page: str) -> set[str]:
    return set(re.findall(r'<tr class="queue-row"[^>]*?data-review-id="([^"]+)"', page))


def test_a_reviewer_decides_in_the_console_and_the_worker_refers(deployment: Deployment) -> None:
    deployment.start_worker(**REVIEW_ALL, PROPWATCH_DECISION_KEY=KEY)
    with Producer(deployment.settings) as producer:  # hostile records the console skips and counts
        producer.send(deployment.topic("review"), b'{"review_id": "<script>forged</script>"}')
        producer.flush()
    deployment.send("decisions", [{"review_id": "no-such-review", "decision": "approve", "reviewer": "ria"}])
    console = deployment.start_console(
        {"ria": ("reviewer", "a long pass phrase")}, PROPWATCH_DECISION_KEY=KEY
    )
    produce_lines(deployment.settings, [post(i, text) for i, text in enumerate(TEXTS[:2])])
    records = deployment.read_outputs(expected=0, ids={"rv-0", "rv-1"}, topics=("review",))["review"]
    reviews = {r["item_id"]: r["review_id"] for _, r in records if "item_id" in r}

    ria = Visitor(console.url)
    assert "login-form" in ria.get("/queue"), "not logged in: the login page"
    page, path = ria.post("/login", [("username", "ria"), ("password", "a long pass phrase")])
    assert path == "/queue" and 'data-role="reviewer"' in page
    deadline = time.monotonic() + 60
    while queued(page) != set(reviews.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
        page = ria.get("/queue")
    assert queued(page) == set(reviews.values())

    approve, reject = reviews["rv-0"], reviews["rv-1"]
    ria.get(f"/item/{approve}")
    page, path = ria.post(
        f"/item/{approve}/decide",
        [("decision", "approve"), ("labels", "recruitment"), ("supersedes", ""), ("note", "calls to join")],
    )
    assert path == "/queue" and approve not in queued(page), "it leaves the queue at once"
    ria.get(f"/item/{reject}")
    page, _ = ria.post(
        f"/item/{reject}/decide", [("decision", "reject"), ("reason", "traffic news"), ("supersedes", "")]
    )
    assert queued(page) == set()

    out = deployment.read_outputs(expected=0, ids={"rv-0", "rv-1"}, topics=("referrals", "cleared"))
    [(key, referral)] = out["referrals"]
    assert key == "rv-0" and referral["decided_by"] == "review" and referral["labels"] == ["recruitment"]
    assert (referral["review"]["reviewer"], referral["review"]["reason"]) == ("ria", "Note: calls to join")
    [(key, cleared)] = out["cleared"]
    assert key == "rv-1" and cleared["review"]["reason"] == "traffic news"

    decisions = deployment.read_outputs(expected=3, topics=("decisions",))["decisions"]
    ours = [d for _, d in decisions if d["review_id"] in reviews.values()]
    assert len(ours) == 2
    for decision in ours:
        assert decision["role"] == "reviewer"
        assert verify(decision, decision["signature"], [KEY.encode()]) is None
    with urllib.request.urlopen(f"{console.url}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert 'propwatch_console_decisions_total{outcome="approve",role="reviewer"} 1.0' in metrics
    assert "propwatch_console_pending_reviews 0.0" in metrics
    assert 'propwatch_console_followed_invalid_records_total{topic="review"} 1.0' in metrics
    assert 'propwatch_console_followed_invalid_records_total{topic="decisions"} 1.0' in metrics, "unsigned"
    deadline = time.monotonic() + 30
    while (health := json.loads(ria.get("/health")))["decisions"] < 3 and time.monotonic() < deadline:
        time.sleep(0.5)  # the console reads its two decisions back (and had read the unsigned one)
    assert (health["decisions"], health["pending"], health["reviews"]) == (3, 0, 2)
    audit = ria.get("/audit")
    assert re.findall(r'data-status="([^"]+)"', audit) == ["in force", "in force", "unsigned"]
