"""``propwatch demo``: broker, topics, worker and a bundled sample, in one command."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections import Counter
from importlib.resources import files
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from streams.dev.broker import EmbeddedBroker, free_port
from streams.dev.worker_process import WorkerProcess
from streams.io import produce_lines
from streams.kafka.admin import create_topics
from streams.kafka.reader import TopicReader
from streams.kafka.topics import CLEARED, DLQ, OUTPUTS, REFERRALS
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
    expected = _expected_verdicts(lines)
    workdir = Path(tempfile.mkdtemp(prefix="propwatch-demo-"))
    broker = EmbeddedBroker()
    worker: WorkerProcess | None = None
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
        worker = WorkerProcess(env, workdir / "worker.log")
        console.print(f"[bold]worker[/] starting (log: {worker.log_path}) ...")
        worker.wait_healthy(timeout_s=180)
        started = time.monotonic()
        report = produce_lines(settings, lines)
        console.print(
            f"[bold]produce[/] {report.sent} items from {path.name} ({report.invalid} invalid on purpose)"
        )
        records = _watch(console, settings, report.sent, started, worker)
        elapsed = time.monotonic() - started
        console.print()
        _summary(console, records, expected, elapsed, web_port, keep_running)
        if keep_running:
            console.print(
                f"\nKeeping broker and worker up. Try:\n"
                f"  export PROPWATCH_KAFKA_BOOTSTRAP={broker.bootstrap}\n"
                f"  propwatch consume referrals --max 3\n"
                f"  curl http://127.0.0.1:{web_port}/metrics\n"
                "Ctrl-C (or SIGTERM) stops everything."
            )
            while worker.process.poll() is None:
                time.sleep(0.5)
        return 0
    except RuntimeError as exc:
        console.print(f"[red]demo failed:[/] {exc}")
        return 1
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
        console.print("stopped the worker and the broker")


def _expected_verdicts(lines: list[bytes]) -> dict[str, str]:
    expected = {}
    for line in lines:
        try:
            item = json.loads(line)
            expected[item["id"]] = item["metadata"]["expected"]
        except (ValueError, KeyError, TypeError):
            continue
    return expected


def _watch(
    console: Console, settings: Settings, total: int, started: float, worker: WorkerProcess
) -> list[tuple[str, dict[str, object]]]:
    names = {settings.topic(spec.name): spec.name for spec in OUTPUTS}
    records: list[tuple[str, dict[str, object]]] = []
    counts: Counter[str] = Counter()
    last_progress = time.monotonic()
    with TopicReader(settings, list(names), missing_ok=False) as reader:
        with Live(_progress_table(counts, total, 0.0), console=console, refresh_per_second=8) as live:
            while len(records) < total:
                for message in reader.poll(timeout_s=0.2):
                    name = names[message.topic]
                    counts[name] += 1
                    records.append((name, json.loads(message.value)))
                    last_progress = time.monotonic()
                live.update(_progress_table(counts, total, time.monotonic() - started))
                if worker.process.poll() is not None:
                    raise RuntimeError(
                        f"the worker exited with {worker.process.returncode}:\n{worker.log_tail()}"
                    )
                if time.monotonic() - last_progress > STALL_TIMEOUT_S:
                    raise RuntimeError(f"no output for {STALL_TIMEOUT_S:.0f} s:\n{worker.log_tail()}")
    return records


def _summary(
    console: Console,
    records: list[tuple[str, dict[str, object]]],
    expected: dict[str, str],
    elapsed: float,
    web_port: int,
    keep_running: bool,
) -> None:
    by_label: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    referrals = [r for name, r in records if name == REFERRALS.name]
    for record in referrals:
        by_label.update(record["labels"])  # type: ignore[arg-type]
    for name, record in records:
        if name == DLQ.name:
            codes[record["error"]["code"]] += 1  # type: ignore[index]
    outcome = {str(r["item_id"]): ("referral" if name == REFERRALS.name else name) for name, r in records}
    agree = sum(outcome.get(item_id) == verdict for item_id, verdict in expected.items())
    table = Table(title=f"{len(records)} items in {elapsed:.1f} s ({len(records) / elapsed:.1f} items/s)")
    table.add_column("outcome")
    table.add_column("count", justify="right")
    table.add_row("referred", str(len(referrals)))
    for label, count in sorted(by_label.items()):
        table.add_row(f"  label {label}", str(count))
    table.add_row("cleared", str(sum(1 for name, _ in records if name == CLEARED.name)))
    table.add_row("dead-lettered", str(sum(codes.values())))
    for code, count in sorted(codes.items()):
        table.add_row(f"  {code}", str(count))
    console.print(table)
    if expected:
        console.print(
            f"Verdicts matching the sample's expected outcome: {agree} of {len(expected)} "
            f"({100 * agree / len(expected):.0f} %)"
        )
    console.print("\n[bold]Example referrals[/]")
    for record in referrals[:3]:
        scores = record["scores"]
        assert isinstance(scores, dict)
        top = ", ".join(f"{k} {v:.2f}" for k, v in scores.items() if k in record["labels"])  # type: ignore[operator]
        console.print(escape(f"  {record['item_id']} [{top}] {str(record['text'])[:100]!r}"))
    state = "" if keep_running else " (while the worker runs: use --keep-running)"
    console.print(f"\nMetrics: http://127.0.0.1:{web_port}/metrics{state}")
    console.print(
        "Go further: README.md (settings, topics, schemas), `propwatch --help`, "
        "`make test`, PROPWATCH_MODEL to try another model."
    )
