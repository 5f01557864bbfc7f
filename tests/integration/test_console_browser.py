"""The review console in a real browser: Debian's Chromium driven by Playwright, against the embedded
broker, a worker and ``propwatch console``, shared by the module's tests (one worker, one console,
their own topics). Reviewers log in, work the queue with the mouse and the keyboard, and the
worker's referral and cleared records are read back with the independent client; the tests also
try what an attacker would: no session, no CSRF token, script in an item's text, a second
reviewer on a claimed item, a decision written straight to the topic without a signature.

The tests save screenshots under pytest's temporary folder; with ``CONSOLE_SCREENSHOTS_DIR`` set
(``make screenshots``: ``docs/images``) they also write the queue and item pages the README shows
there, as small PNGs."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)

from classifiers.base import LABELS
from streams.console.users import Role
from streams.dev.broker import EmbeddedBroker
from streams.dev.console_process import ConsoleProcess
from streams.dev.demo import sample_items, sample_path
from streams.io import produce_lines
from streams.kafka.producer import Producer
from streams.kafka.reader import read_to_end
from streams.review.signing import sign
from tests.integration.conftest import Deployment, deployed

KEY = "browser-test-decision-key-0123456789"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
EXPECT_TIMEOUT_MS = 20_000
"""How long an assertion on a page waits for it to hold (Playwright's default, 5 s, is short on
a busy 2-core CI machine); navigation waits 30 s."""
VIEWPORT: ViewportSize = {"width": 1200, "height": 800}
SCREENSHOTS_ENV = "CONSOLE_SCREENSHOTS_DIR"
SCREENSHOT_COLOURS = 64
"""The published screenshots are palette PNGs: a console page has few colours, and the README's
images stay small (tens of kilobytes)."""

USERS: dict[str, tuple[Role, str]] = {
    "ria": ("reviewer", "ria's long pass phrase"),
    "ben": ("reviewer", "ben's long pass phrase"),
    "sam": ("supervisor", "sam's long pass phrase"),
}
# The tiny model scores every text here between 0.2 and 0.9 on some label (0.39 to 0.74 on
# incitement): every item lands in review, with the labels at or above 0.2 as candidates.
THRESHOLDS = {
    "PROPWATCH_THRESHOLDS": json.dumps(dict.fromkeys(LABELS, 0.9)),
    "PROPWATCH_REVIEW_THRESHOLDS": json.dumps(dict.fromkeys(LABELS, 0.2)),
}
SCRIPT = "<script>window.pwned = true; alert('pwned')</script>"
IMAGE = "<img src=x onerror=\"window.pwned = true; alert('pwned')\">"
SAMPLE = sample_items([line for line in sample_path().read_bytes().splitlines() if line.strip()])


@dataclass(frozen=True)
class Item:
    id: str
    text: str
    lang: str
    platform: str
    url: str


def sampled(item_id: str, platform: str) -> Item:
    """One of the demo sample's synthetic items (fictional groups)."""
    item = SAMPLE[item_id]
    return Item(item_id, item.text, item.lang, platform, f"https://{platform}.example.org/p/{item_id[-4:]}")


ITEMS = {
    "approve": sampled("demo-0217", "forum"),  # fictional recruitment: referred
    "reject": sampled("demo-0003", "microblog"),  # an idiom ("start a revolution"): cleared
    "csrf": sampled("demo-0191", "chat"),  # a game (nl)
    "claimed": sampled("demo-0122", "blog"),  # research
    "unsigned": sampled("demo-0351", "video"),  # counter-speech (fr)
    "script": Item("post-0001", SCRIPT, "en", "forum", "javascript:window.pwned = true"),
    "image": Item("post-0002", IMAGE, "en", "forum", "https://forum.example.org/p/0002"),
}
NEVER_DECIDED = ("csrf", "unsigned", "script", "image")
"""Items no test decides in force: every test may expect them pending."""


@dataclass
class Site:
    """The module's deployment: a worker and a console with the decision key, and the review
    record of each of :data:`ITEMS`, by name."""

    deployment: Deployment
    console: ConsoleProcess
    reviews: dict[str, dict]

    def review_id(self, name: str) -> str:
        return self.reviews[name]["review_id"]

    def wait_for(self, name: str, topic: str) -> list[dict]:
        """The records on ``topic`` for the item ``name`` (by item id or key), once there is one."""
        item_id = ITEMS[name].id
        records = self.deployment.read_outputs(expected=0, ids={item_id}, topics=(topic,))[topic]
        return [record for key, record in records if (record.get("item_id") or key) == item_id]


def _content(item: Item) -> bytes:
    return json.dumps(
        {
            "id": item.id,
            "text": item.text,
            "lang": item.lang,
            "platform": item.platform,
            "url": item.url,
            "observed_at": "2026-11-28T10:00:00Z",
        }
    ).encode()


@pytest.fixture(scope="module")
def site(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path
) -> Iterator[Site]:
    with deployed(broker, tmp_path_factory.mktemp("console-browser"), tiny_model_dir) as deployment:
        deployment.start_worker(**THRESHOLDS, PROPWATCH_DECISION_KEY=KEY)
        console = deployment.start_console(USERS, PROPWATCH_DECISION_KEY=KEY)
        produce_lines(deployment.settings, [_content(item) for item in ITEMS.values()])
        ids = {item.id: name for name, item in ITEMS.items()}
        out = deployment.read_outputs(expected=0, ids=set(ids), topics=("review", "referrals", "cleared"))
        assert not out["referrals"] and not out["cleared"], "every item goes to review: see THRESHOLDS"
        reviews = {ids[record["item_id"]]: record for _, record in out["review"]}
        assert set(reviews) == set(ITEMS)
        deadline = time.monotonic() + 60
        while (read := _reviews_read(console)) < len(ITEMS) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert read == len(ITEMS), "the console reads every review"
        yield Site(deployment, console, reviews)


def _reviews_read(console: ConsoleProcess) -> int:
    with urllib.request.urlopen(f"{console.url}/health", timeout=10) as response:
        return int(json.loads(response.read())["reviews"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium (``apt-get install chromium``; ``.ci/run`` installs it): Playwright's own
    browser download is not used."""
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).is_file():
        pytest.fail("the browser tests need Debian's chromium: apt-get install chromium (.ci/run does)")
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    playwright: Playwright = sync_playwright().start()
    try:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
    finally:
        playwright.stop()


@pytest.fixture
def visitor(browser: Browser, site: Site) -> Iterator[Callable[[str | None], Page]]:
    """A page in a browser context of its own (its own cookies), logged in as the user named
    (through the login form), or not logged in at all (None)."""
    contexts: list[BrowserContext] = []

    def visit(name: str | None) -> Page:
        context = browser.new_context(viewport=VIEWPORT, base_url=site.console.url)
        contexts.append(context)
        page = context.new_page()
        if name is not None:
            page.goto("/login")
            page.fill("#username", name)
            page.fill("#password", USERS[name][1])
            page.click("#login-button")
            page.wait_for_url("**/queue")
            expect(page.locator("#current-user")).to_have_attribute("data-role", USERS[name][0])
        return page

    yield visit
    for context in contexts:
        context.close()


@pytest.fixture(scope="module")
def screenshot(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Save a page as ``NAME.png`` under pytest's temporary folder, and a palette copy in
    ``$CONSOLE_SCREENSHOTS_DIR`` when it is set."""
    folder = tmp_path_factory.mktemp("screenshots")
    published = os.environ.get(SCREENSHOTS_ENV)

    def take(page: Page, name: str, *, full_page: bool = False) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width == VIEWPORT["width"]
            if published:
                small = image.convert("RGB").quantize(SCREENSHOT_COLOURS, method=Image.Quantize.MEDIANCUT)
                small.save(Path(published) / path.name, optimize=True)
        return path

    return take


def row(name: str) -> str:
    """The queue's row of the item ``name``."""
    return f'tr.queue-row[data-item-id="{ITEMS[name].id}"]'


def queued(page: Page) -> set[str]:
    rows = page.locator("tr.queue-row")
    return {rows.nth(i).get_attribute("data-item-id") or "" for i in range(rows.count())}


def refused_csrf(page: Page) -> float:
    """The console's count of forms refused for their CSRF token."""
    metric = 'propwatch_console_refused_forms_total{reason="csrf"} '
    lines = page.request.get("/metrics").text().splitlines()
    return sum(float(line.removeprefix(metric)) for line in lines if line.startswith(metric))


def test_a_reviewer_logs_in_and_sees_the_queue(
    site: Site, visitor: Callable[[str | None], Page], screenshot: Callable[..., Path]
) -> None:
    ben = visitor("ben")
    ben.goto(f"/item/{site.review_id('unsigned')}")  # ben holds one item: ria sees his claim
    expect(ben.locator("#claim-status")).to_have_attribute("data-claimed-by", "ben")

    page = visitor("ria")
    assert {ITEMS[name].id for name in NEVER_DECIDED} <= queued(page)
    assert int(page.locator("#pending-count").inner_text()) == len(queued(page))
    assert int(page.locator("#oldest-age").get_attribute("data-seconds") or "-1") >= 0
    expect(page.locator(f"{row('unsigned')} .claimed")).to_have_attribute("data-claimed-by", "ben")
    expect(page.locator("#claimed-count")).not_to_have_text("0")
    screenshot(page, "console-queue")

    page.select_option("#filter-lang", "nl")
    page.click("#filter-apply")
    page.wait_for_url("**/queue?*lang=nl*")
    assert queued(page) == {ITEMS["csrf"].id}, "the sample's only Dutch item"
    page.select_option("#filter-lang", "")
    page.select_option("#filter-platform", "forum")
    page.click("#filter-apply")
    assert {ITEMS["script"].id, ITEMS["image"].id} <= queued(page) <= {item.id for item in ITEMS.values()}
    assert all(item.platform == "forum" for item in ITEMS.values() if item.id in queued(page))


def test_a_reviewer_reveals_and_approves_with_the_keyboard(
    site: Site, visitor: Callable[[str | None], Page]
) -> None:
    page = visitor("ria")
    page.click(f"{row('approve')} a.open-item")
    page.wait_for_url(f"**/item/{site.review_id('approve')}")
    expect(page.locator("#item")).to_have_attribute("data-pending", "true")
    expect(page.locator("#claim-status")).to_have_attribute("data-claimed-by", "ria")
    expect(page.locator("#item-text-body")).to_be_hidden()  # collapsed until revealed
    page.keyboard.press("r")
    expect(page.locator("#item-text-body")).to_be_visible()
    expect(page.locator("#item-text-body")).to_have_text(ITEMS["approve"].text)
    expect(page.locator("#scores tr[data-label]")).to_have_count(len(LABELS))
    expect(page.locator("#evidence-url a")).to_have_attribute("href", ITEMS["approve"].url)
    candidates = site.reviews["approve"]["labels"]
    for label in LABELS:
        expect(page.locator(f"#label-{label}")).to_be_checked(checked=label in candidates)

    page.fill("#approve-note", "recruits for a fictional armed group")
    page.locator("#approve-note").blur()
    page.keyboard.press("a")
    expect(page.locator("#approve-button")).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url("**/queue?decided=*")
    expect(page.locator("#notice")).to_contain_text(site.review_id("approve"))
    assert ITEMS["approve"].id not in queued(page), "it leaves the queue at once"

    [referral] = site.wait_for("approve", "referrals")
    assert referral["decided_by"] == "review" and set(referral["labels"]) == set(candidates)
    assert referral["review"]["reviewer"] == "ria"
    assert "recruits for a fictional armed group" in referral["review"]["reason"]


def test_a_reviewer_rejects_and_the_item_is_cleared(
    site: Site, visitor: Callable[[str | None], Page], screenshot: Callable[..., Path]
) -> None:
    page = visitor("ria")
    page.click(f"{row('reject')} a.open-item")
    page.click("#reveal-text")
    expect(page.locator("#item-text-body")).to_have_text(ITEMS["reject"].text)
    page.keyboard.press("x")
    expect(page.locator("#reject-reason")).to_be_focused()
    page.keyboard.type("An idiom about a meeting, not a threat.")
    screenshot(page, "console-item", full_page=True)
    page.click("#reject-button")
    page.wait_for_url("**/queue?decided=*")

    [cleared] = site.wait_for("reject", "cleared")
    assert cleared["decided_by"] == "review"
    assert cleared["review"]["reason"] == "An idiom about a meeting, not a threat."
    assert cleared["review"]["reviewer"] == "ria"


def test_every_page_but_the_login_page_redirects_a_visitor_without_a_session(
    site: Site, visitor: Callable[[str | None], Page]
) -> None:
    page = visitor(None)
    paths = [
        "/",
        "/queue",
        "/queue?label=threat",
        "/next",
        f"/item/{site.review_id('csrf')}",
        "/item/no-such-review",
        "/audit",
        "/audit.csv",
        "/audit.jsonl",
    ]
    for path in paths:
        response = page.request.get(path, max_redirects=0)
        assert (response.status, response.headers.get("location")) == (303, "/login"), path
        page.goto(path)
        assert page.url == f"{site.console.url}/login", path
        expect(page.locator("#login-form")).to_be_visible()
    for public in ("/login", "/health", "/static/console.css", "/static/console.js"):
        assert page.request.get(public, max_redirects=0).status == 200, public
    refused = page.request.post(
        f"/item/{site.review_id('csrf')}/decide", form={"decision": "reject", "reason": "x", "supersedes": ""}
    )
    assert refused.status == 403, "a form from no session is refused"

    page.fill("#username", "ria")
    page.fill("#password", "not ria's pass phrase")
    page.click("#login-button")
    expect(page.locator("#login-error")).to_be_visible()
    assert page.request.get("/queue", max_redirects=0).status == 303, "still not logged in"


def test_a_form_without_its_csrf_token_is_refused(site: Site, visitor: Callable[[str | None], Page]) -> None:
    page = visitor("ria")
    before = refused_csrf(page)
    for token in (None, "forged-token"):
        page.goto(f"/item/{site.review_id('csrf')}")
        field = page.locator("#reject-form input[name=csrf]")
        if token is None:
            field.evaluate("element => element.remove()")
        else:
            field.evaluate("(element, token) => { element.value = token; }", token)
        page.fill("#reject-reason", "a game")
        page.click("#reject-button")
        expect(page.locator("#error-status")).to_have_text("403")
        expect(page.locator("#error-message")).to_contain_text("did not come from this console")
    page.goto(f"/item/{site.review_id('csrf')}")
    expect(page.locator("#item")).to_have_attribute("data-pending", "true")
    expect(page.locator("#history-none")).to_be_visible()
    assert refused_csrf(page) == before + 2


def test_script_and_html_in_an_item_are_shown_as_text(
    site: Site, visitor: Callable[[str | None], Page]
) -> None:
    page = visitor("ria")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    for name in ("script", "image"):
        page.goto(f"/item/{site.review_id(name)}")
        page.keyboard.press("r")
        body = page.locator("#item-text-body")
        expect(body).to_be_visible()
        assert body.text_content() == ITEMS[name].text
        assert body.locator("*").count() == 0, "no element came from the text"
        assert "&lt;" in body.inner_html()
        assert page.locator("main img, main script").count() == 0
        assert page.evaluate("() => window.pwned") is None
    page.goto(f"/item/{site.review_id('script')}")
    expect(page.locator("#evidence-url a")).to_have_count(0)  # a javascript: url is no link
    expect(page.locator("#evidence-url")).to_contain_text("javascript:window.pwned = true")
    assert dialogs == []


def test_two_reviewers_cannot_both_decide_a_claimed_item(
    site: Site, visitor: Callable[[str | None], Page]
) -> None:
    ria, ben = visitor("ria"), visitor("ben")
    ria.goto(f"/item/{site.review_id('claimed')}")
    expect(ria.locator("#approve-form")).to_be_visible()

    ben.reload()
    expect(ben.locator(f"{row('claimed')} .claimed")).to_have_attribute("data-claimed-by", "ria")
    ben.click(f"{row('claimed')} a.open-item")
    expect(ben.locator("#claim-status")).to_have_attribute("data-claimed-by", "ria")
    expect(ben.locator("#decide-unavailable")).to_contain_text("ria is deciding")
    expect(ben.locator("#approve-form, #reject-form")).to_have_count(0)
    # ben posts the form anyway, with his own session's token (the logout form carries it).
    status, text = ben.evaluate(
        """async (review) => {
            const form = new FormData();
            form.append("csrf", document.querySelector("#logout-form input[name=csrf]").value);
            form.append("decision", "reject");
            form.append("reason", "mine");
            form.append("supersedes", "");
            const response = await fetch(`/item/${review}/decide`,
                {method: "POST", body: new URLSearchParams(form)});
            return [response.status, await response.text()];
        }""",
        site.review_id("claimed"),
    )
    assert status == 409 and "ria is deciding this item" in text

    ria.click("#approve-button")
    ria.wait_for_url("**/queue?decided=*")
    [referral] = site.wait_for("claimed", "referrals")
    assert referral["review"]["reviewer"] == "ria"
    decisions = site.wait_for("claimed", "decisions")
    assert [d["reviewer"] for d in decisions] == ["ria"], "ben's decision never reached the topic"

    ben.reload()
    expect(ben.locator("#decision-in-force")).to_have_attribute("data-decision", "approve")
    expect(ben.locator("#decide-unavailable")).to_contain_text("Only a supervisor")


def test_an_unsigned_decision_is_dead_lettered_and_counts_for_nothing(
    site: Site, visitor: Callable[[str | None], Page]
) -> None:
    review_id, item_id = site.review_id("unsigned"), ITEMS["unsigned"].id
    unsigned = {"review_id": review_id, "decision": "approve", "reviewer": "mallory", "labels": ["threat"]}
    forged = {**unsigned, "decision_id": "forged-1", "role": "reviewer"}
    forged["signature"] = sign(forged, b"not the decision key")
    with Producer(site.deployment.settings) as producer:
        for decision in (unsigned, forged):
            producer.send(
                site.deployment.topic("decisions"), json.dumps(decision).encode(), key=item_id.encode()
            )
        producer.flush()

    dlq = site.deployment.read_outputs(expected=2, topics=("dlq",))["dlq"]
    dead = [record for _, record in dlq if record["item_id"] == review_id]
    assert [d["error"]["code"] for d in dead] == ["unsigned_decision", "unsigned_decision"]
    referrals = read_to_end(site.deployment.settings, [site.deployment.topic("referrals")], timeout_s=60)
    assert item_id not in {json.loads(message.value)["item_id"] for message in referrals}

    sam = visitor("sam")
    rows = sam.locator('tr.audit-row[data-reviewer="mallory"]')
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the console reads them back too
        sam.goto("/audit")
        if rows.count() == 2:
            break
        time.sleep(0.5)
    assert [rows.nth(i).get_attribute("data-status") for i in range(rows.count())] == ["unsigned"] * 2
    sam.goto("/queue")
    assert item_id in queued(sam), "still pending: an unsigned decision decides nothing"
