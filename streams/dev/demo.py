"""``propwatch demo``: broker, topics, worker and a bundled sample, in one command; with
``--keep-running``, the review console too."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from classifiers.base import LABELS
from streams.console.users import Role, add_user
from streams.dev.broker import EmbeddedBroker, free_port
from streams.dev.console_process import ConsoleProcess
from streams.dev.demo_feed import FeedPass, print_feed_outcomes
from streams.dev.worker_process import WorkerProcess
from streams.io import produce_lines
from streams.kafka.admin import create_topics
from streams.kafka.reader import TopicReader
from streams.kafka.topics import CLEARED, DLQ, OUTPUTS, REFERRALS, REVIEW
from streams.records import Cleared, DeadLetter, Record, Referral, Review
from streams.settings import Settings

STALL_TIMEOUT_S = 180.0


def sample_path() -> Path:
    """The bundled sample: a few hundred synthetic content items, some deliberately invalid."""
    return Path(str(files("streams.dev").joinpath("data/sample.jsonl")))


def _progress_table(counts: Counter[str], total: int, elapsed: float) -> Table:
    done = counts["referrals"] + counts["cleared"] + counts["dlq"]
    table = Table(title="propwatch demo", show_header=True)
    for column in ("consumed", "referred", "cleared", "dead-lettered", "items/s"):
        table.add_column(column, justify="right")
    rate = done / elapsed if elapsed > 0 else 0.0
    table.add_row(
        f"{done}/{total}", str(counts["referrals"]), str(counts["cleared"]), str(counts["dlq"]), f"{rate:.1f}"
    )
    return table


def run_demo(*, keep_running: bool = False, sample: str | None = None) -> int:
    console = Console()
    path = Path(sample) if sample else sample_path()
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    expected = sample_items(lines)
    workdir = Path(tempfile.mkdtemp(prefix="propwatch-demo-"))
    broker = EmbeddedBroker()
    worker: WorkerProcess | None = None
    review_console: DemoConsole | None = None
    try:
        broker.start()
        console.print(f"[bold]broker[/] Tansu (embedded, memory storage) at {broker.bootstrap}")
        web_port = free_port()
        env = {
            **broker.client_env(),
            "PROPWATCH_WEB_PORT": str(web_port),
            "PROPWATCH_GROUP_ID": f"propwatch-demo-{uuid.uuid4().hex[:8]}",
            "PROPWATCH_DATA_DIR": str(workdir / "data"),
        }
        settings = Settings(kafka_bootstrap=broker.bootstrap, web_port=web_port)
        create_topics(settings)
        console.print(f"[bold]topics[/] {', '.join(settings.topic(s.name) for s in (*OUTPUTS,))} and content")
        decision_key = secrets.token_urlsafe(32) if keep_running else None
        worker = WorkerProcess({**env, **review_env(), **decision_env(decision_key)}, workdir / "worker.log")
        console.print(f"[bold]worker[/] starting (log: {worker.log_path}) ...")
        if decision_key is not None:
            review_console = start_console(env, decision_key, workdir)
            console.print(f"[bold]console[/] starting (log: {review_console.process.log_path}) ...")
        feed = FeedPass.start(settings, workdir)  # the sources service, while the worker loads
        worker.wait_healthy(timeout_s=180)
        if review_console is not None:
            review_console.process.wait_healthy(timeout_s=120)
        started = time.monotonic()
        report = produce_lines(settings, lines)
        console.print(
            f"[bold]produce[/] {report.sent} items from {path.name} ({report.invalid} invalid on purpose)"
        )
        fed = feed.report(console)
        records = _watch(console, settings, report.sent + fed, started, worker)
        elapsed = time.monotonic() - started
        console.print()
        print_feed_outcomes(console, records)
        _summary(console, records, expected, elapsed, web_port, keep_running)
        if keep_running:
            console.print(
                f"\nKeeping broker and worker up. Try:\n"
                f"  export PROPWATCH_KAFKA_BOOTSTRAP={broker.bootstrap}\n"
                f"  propwatch consume referrals --max 3\n"
                f"  curl http://127.0.0.1:{web_port}/metrics\n"
                "Ctrl-C (or SIGTERM) stops everything."
            )
            if review_console is not None:
                console.print(escape(review_console.describe()))
            while worker.process.poll() is None and (
                review_console is None or review_console.process.process.poll() is None
            ):
                time.sleep(0.5)
        return 0
    except RuntimeError as exc:
        console.print(f"[red]demo failed:[/] {exc}")
        return 1
    finally:
        if review_console is not None:
            review_console.process.stop()
        if worker is not None:
            worker.stop()
        broker.stop()
        console.print(f"stopped the {'console, the ' if review_console else ''}worker and the broker")


DEMO_REVIEW_THRESHOLDS = dict.fromkeys(LABELS, 0.15)
"""The demo worker's review band: an item with no label at its referral threshold (0.5) but one at
0.15 goes to review. With the default model, 7 of the bundled sample's 384 items land there
(measured, in `propwatch demo` and scoring the sample alone: a handful for the console)."""
DEMO_USERS: tuple[tuple[str, Role], ...] = (("demo-reviewer", "reviewer"), ("demo-supervisor", "supervisor"))
"""The demo console's accounts, each with a random password made and printed at start."""


def review_env() -> dict[str, str]:
    """The demo's review band (:data:`DEMO_REVIEW_THRESHOLDS`) for its worker, unless the
    environment sets thresholds of its own."""
    if {"PROPWATCH_THRESHOLDS", "PROPWATCH_REVIEW_THRESHOLDS"} & set(os.environ):
        return {}
    return {"PROPWATCH_REVIEW_THRESHOLDS": json.dumps(DEMO_REVIEW_THRESHOLDS)}


def decision_env(key: str | None) -> dict[str, str]:
    """The decision key, for the worker and the console alike: decisions count only when signed."""
    return {} if key is None else {"PROPWATCH_DECISION_KEY": key}


@dataclass(frozen=True)
class DemoConsole:
    """The demo's review console and its accounts (name, role, password)."""

    process: ConsoleProcess
    logins: tuple[tuple[str, Role, str], ...]

    def describe(self) -> str:
        """What the demo prints once: the URL and each login (the only place the passwords show)."""
        accounts = "\n".join(f"  {name} / {password}  ({role})" for name, role, password in self.logins)
        return f"\nReview console: {self.process.url}/login, log in as\n{accounts}"


def start_console(env: dict[str, str], decision_key: str, workdir: Path) -> DemoConsole:
    """``propwatch console`` beside the demo's worker, over plain HTTP on loopback, on
    ``PROPWATCH_CONSOLE_PORT`` when set (else a free port), with the accounts of
    :data:`DEMO_USERS` in a users file in the demo's own folder. Not yet healthy."""
    users_file = workdir / "console-users.json"
    logins = []
    for name, role in DEMO_USERS:
        password = secrets.token_urlsafe(12)
        add_user(users_file, name, role, password)
        logins.append((name, role, password))
    port = os.environ.get("PROPWATCH_CONSOLE_PORT") or str(free_port())
    process = ConsoleProcess(
        {
            **env,
            **decision_env(decision_key),
            "PROPWATCH_CONSOLE_PORT": port,
            "PROPWATCH_CONSOLE_USERS_FILE": str(users_file),
            "PROPWATCH_CONSOLE_COOKIE_SECURE": "false",
        },
        workdir / "console.log",
    )
    return DemoConsole(process, tuple(logins))


@dataclass(frozen=True)
class SampleItem:
    """What the sample says about one of its items: its language, the outcome a reviewer would
    choose, and what kind of text it is (``news``, ``counter_speech``, ``incitement``, ...)."""

    lang: str
    expected: str
    kind: str
    text: str


def sample_items(lines: list[bytes]) -> dict[str, SampleItem]:
    """The sample's valid items that carry ``metadata.expected``, by id."""
    items = {}
    for line in lines:
        try:
            item = json.loads(line)
            metadata = item["metadata"]
            items[item["id"]] = SampleItem(
                lang=str(item.get("lang") or "?"),
                expected=metadata["expected"],
                kind=str(metadata.get("kind", "")),
                text=item["text"],
            )
        except (ValueError, KeyError, TypeError):
            continue
    return items


def _watch(
    console: Console, settings: Settings, total: int, started: float, worker: WorkerProcess
) -> list[tuple[str, OutputRecord]]:
    names = {settings.topic(spec.name): spec.name for spec in OUTPUTS}
    records: list[tuple[str, OutputRecord]] = []
    counts: Counter[str] = Counter()
    last_progress = time.monotonic()
    with TopicReader(settings, list(names), missing_ok=False) as reader:
        with Live(_progress_table(counts, total, 0.0), console=console, refresh_per_second=8) as live:
            while len(records) < total:
                for message in reader.poll(timeout_s=0.2):
                    name = names[message.topic]
                    counts[name] += 1
                    records.append((name, OUTPUT_TYPES[name].from_json(message.value)))  # type: ignore[arg-type]
                    last_progress = time.monotonic()
                live.update(_progress_table(counts, total, time.monotonic() - started))
                if worker.process.poll() is not None:
                    raise RuntimeError(
                        f"the worker exited with {worker.process.returncode}:\n{worker.log_tail()}"
                    )
                if time.monotonic() - last_progress > STALL_TIMEOUT_S:
                    raise RuntimeError(f"no output for {STALL_TIMEOUT_S:.0f} s:\n{worker.log_tail()}")
    return records


LANGUAGES = ("en", "nl", "ar", "de", "fr", "tr")
"""The corpus's languages, in the order the summary lists them (any other after them)."""
OUTCOMES = {REFERRALS.name: "referral", CLEARED.name: "cleared", REVIEW.name: "review"}
OUTPUT_TYPES: dict[str, type[Record]] = {
    REFERRALS.name: Referral,
    CLEARED.name: Cleared,
    REVIEW.name: Review,
    DLQ.name: DeadLetter,
}
"""What the worker writes to each output topic: the demo reads its own worker's records, so a
record that does not parse is a bug, and it raises."""
Scored = Referral | Cleared | Review
OutputRecord = Scored | DeadLetter
HARD_NEGATIVES = ("news", "counter_speech", "court")
"""Kinds of text that talk about terrorism without being propaganda, shown when cleared."""


def _outcomes(records: list[tuple[str, OutputRecord]]) -> dict[str, tuple[str, Scored]]:
    """Each item's outcome (referral, cleared, review) and its record."""
    return {
        r.item_id: (OUTCOMES[name], r)
        for name, r in records
        if name in OUTCOMES and isinstance(r, Referral | Cleared | Review)
    }


def _top(scores: Mapping[str, float], labels: Sequence[str] | None = None) -> tuple[str, float]:
    """The highest score (among ``labels``, if given) and its label."""
    chosen = {k: float(v) for k, v in scores.items() if labels is None or k in labels}
    label = max(sorted(chosen), key=lambda k: chosen[k])
    return label, chosen[label]


def language_rows(
    records: list[tuple[str, OutputRecord]], items: dict[str, SampleItem]
) -> list[tuple[str, int, int, int, int, int]]:
    """Per language: items, referred, cleared, review, and how many match the expected outcome."""
    outcome = _outcomes(records)
    known = [lang for lang in LANGUAGES if any(i.lang == lang for i in items.values())]
    langs = known + sorted({i.lang for i in items.values()} - set(LANGUAGES))
    rows = []
    for lang in langs:
        ids = [i for i, item in items.items() if item.lang == lang]
        got = [outcome[i][0] for i in ids if i in outcome]
        agree = sum(outcome[i][0] == items[i].expected for i in ids if i in outcome)
        rows.append((lang, len(ids), got.count("referral"), got.count("cleared"), got.count("review"), agree))
    return rows


def example_referrals(
    records: list[tuple[str, OutputRecord]], items: dict[str, SampleItem]
) -> list[tuple[str, str, float, str]]:
    """For each label, the referral a reviewer would agree with (the sample expects a referral
    under that label, and the pipeline referred it with that label) that scored highest on it:
    ``(item id, label, score, text)``, in the taxonomy's order. Ties go to the lower item id, so
    the choice does not depend on the order records arrived in."""
    best: dict[str, tuple[float, str, str]] = {}
    for item_id, (outcome, record) in _outcomes(records).items():
        item = items.get(item_id)
        if outcome != "referral" or item is None or item.expected != "referral":
            continue
        if item.kind not in record.labels:
            continue
        label, score = _top(record.scores, [item.kind])
        if label not in best or (-score, item_id) < (-best[label][0], best[label][1]):
            best[label] = (score, item_id, item.text)
    return [(best[label][1], label, best[label][0], best[label][2]) for label in LABELS if label in best]


def cleared_hard_negatives(
    records: list[tuple[str, OutputRecord]], items: dict[str, SampleItem]
) -> list[tuple[str, str, float, str]]:
    """For each kind of hard negative (news of attacks, counter-speech, court reports), the item
    it cleared as expected that came closest to a referral: ``(item id, kind, top score, text)``."""
    best: dict[str, tuple[float, str]] = {}
    for item_id, (outcome, record) in _outcomes(records).items():
        item = items.get(item_id)
        if (
            outcome != "cleared"
            or item is None
            or item.expected != "cleared"
            or item.kind not in HARD_NEGATIVES
        ):
            continue
        _, score = _top(record.scores)
        if item.kind not in best or (-score, item_id) < (-best[item.kind][0], best[item.kind][1]):
            best[item.kind] = (score, item_id)
    return [(best[k][1], k, best[k][0], items[best[k][1]].text) for k in HARD_NEGATIVES if k in best]


def _summary(
    console: Console,
    records: list[tuple[str, OutputRecord]],
    items: dict[str, SampleItem],
    elapsed: float,
    web_port: int,
    keep_running: bool,
) -> None:
    by_label: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    referrals = [r for _, r in records if isinstance(r, Referral)]
    for referral in referrals:
        by_label.update(referral.labels)
    for _, record in records:
        if isinstance(record, DeadLetter):
            codes[str(record.error.code)] += 1
    table = Table(title=f"{len(records)} items in {elapsed:.1f} s ({len(records) / elapsed:.1f} items/s)")
    table.add_column("outcome")
    table.add_column("count", justify="right")
    table.add_row("referred", str(len(referrals)))
    for label, count in sorted(by_label.items()):
        table.add_row(f"  label {label}", str(count))
    table.add_row("cleared", str(sum(1 for name, _ in records if name == CLEARED.name)))
    table.add_row("review", str(sum(1 for name, _ in records if name == REVIEW.name)))
    table.add_row("dead-lettered", str(sum(codes.values())))
    for code, count in sorted(codes.items()):
        table.add_row(f"  {code}", str(count))
    console.print(table)
    if items:
        rows = language_rows(records, items)
        by_lang = Table(title="By language (expected: the outcome the sample gives each item)")
        for column in ("language", "items", "referred", "cleared", "review", "as expected"):
            by_lang.add_column(column, justify="left" if column == "language" else "right")
        for lang, count, referred, cleared, review, agree in rows:
            share = f"{agree} ({100 * agree / count:.0f} %)" if count else "0"
            by_lang.add_row(lang, str(count), str(referred), str(cleared), str(review), share)
        console.print(by_lang)
        agree = sum(row[5] for row in rows)
        console.print(
            f"Verdicts matching the sample's expected outcome: {agree} of {len(items)} "
            f"({100 * agree / len(items):.0f} %)"
        )
    examples = example_referrals(records, items)
    if examples:
        console.print("\n[bold]Example referrals[/] (for each label, the highest-scoring one)")
        for item_id, label, score, text in examples:
            console.print(escape(f"  {item_id} [{items[item_id].lang}, {label} {score:.2f}] {text[:100]!r}"))
    negatives = cleared_hard_negatives(records, items)
    if negatives:
        console.print("\n[bold]Cleared, though they talk about terrorism[/] (the closest call of each kind)")
        for item_id, kind, score, text in negatives:
            what = kind.replace("_", "-")
            console.print(
                escape(f"  {item_id} [{items[item_id].lang}, {what}, top score {score:.2f}] {text[:100]!r}")
            )
    state = "" if keep_running else " (while the worker runs: use --keep-running)"
    console.print(f"\nMetrics: http://127.0.0.1:{web_port}/metrics{state}")
    if not keep_running:
        console.print(
            "Review console: not started on this run (to keep it quick); "
            "`propwatch demo --keep-running` serves it, with a demo login, for the items in review."
        )
    console.print(
        "Go further: README.md (settings, topics, schemas), `propwatch --help`, "
        "`make test`, PROPWATCH_MODEL to try another model."
    )
