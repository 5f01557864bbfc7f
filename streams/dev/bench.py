"""``propwatch bench``: throughput against the model's limit and against the naive approach.

On the same texts, in one run, on the embedded broker:

1. the limit: batched inference of the configured classifier, no Kafka, at its best batch size;
2. propwatch end to end: items/s from producing the items to the last output record, and p50/p99
   end-to-end latency at a steady offered load of half that capacity;
3. the same on a stream of which half re-uploads known content, on its own topics;
4. the naive baseline: a Faust agent that calls the fp32 ``transformers.pipeline`` once per
   message on the event loop, as tutorials do (same model, same texts), on its own topics.

Throughputs 2-4 are measured ``repeats`` times (each a fresh set of item ids on warm workers);
the result holds every run, and the mean and the spread (min-max) of each.

Latency is measured from just before an item is handed to the producer to the moment the bench's
reader of the output topics returns its record: it includes the producer's linger (2 ms), the
worker's batch wait, inference, the worker's acknowledged send, and the reader's own fetch, which
waits at most ``OUTPUT_FETCH_WAIT_MS`` for data.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from classifiers.base import Classifier
from classifiers.corpus import seed_examples
from streams import children
from streams.dev.broker import EmbeddedBroker, free_port
from streams.dev.worker_process import WorkerProcess
from streams.kafka.admin import create_topics
from streams.kafka.producer import Producer
from streams.kafka.reader import TopicReader
from streams.kafka.topics import CONTENT, OUTPUTS, REFERRALS
from streams.records import DecidedBy, Referral
from streams.reporting.read import read_topics
from streams.settings import Settings

BATCH_SIZES = (8, 16, 32, 64)
OUTPUT_FETCH_WAIT_MS = 10
"""The bench's output reader asks the broker to answer a fetch within 10 ms even when it has
nothing (kafka-python's default, 500 ms, would add up to that to every measured latency)."""
SPREAD_OF = ("pipeline_items_per_s", "reupload_items_per_s", "reupload_over_pipeline", "naive_items_per_s")
"""The measures each run repeats: the result gives their mean, min and max."""


@dataclass(frozen=True)
class Spread:
    mean: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(round(statistics.fmean(values), 2), round(min(values), 2), round(max(values), 2))

    def __str__(self) -> str:
        return f"{self.mean:.2f} (min {self.min:.2f}, max {self.max:.2f})"


@dataclass
class BenchResult:
    backend: str
    model: str
    items: int
    best_batch_size: int
    limit_items_per_s: float
    limit_by_batch_size: dict[str, float]
    fp32_limit_items_per_s: float
    pipeline_items_per_s: float
    p50_latency_s: float
    p99_latency_s: float
    offered_load_items_per_s: float
    naive_items: int
    naive_items_per_s: float
    workers: int
    worker_peak_rss_bytes: int
    reupload_items_per_s: float
    """End to end on a stream of which half re-uploads known content (exact copies and light edits)."""
    reupload_matched: int
    """How many of that stream's re-uploads the hash bank caught (the rest went to the model);
    the fewest of any run."""
    runs: list[dict[str, float]]
    """Every run's ``SPREAD_OF`` measures, in order; the throughputs above are their means."""
    repeats: int = field(init=False)
    spread: dict[str, Spread] = field(init=False)
    """Mean, min and max of each of ``SPREAD_OF`` over the runs."""
    reupload_over_pipeline: float = field(init=False)
    """The mean over the runs of each run's re-upload throughput over its pipeline throughput."""
    pipeline_over_limit: float = field(init=False)
    pipeline_over_naive: float = field(init=False)
    backend_over_fp32: float = field(init=False)

    def __post_init__(self) -> None:
        self.repeats = len(self.runs)
        self.spread = {name: Spread.of([run[name] for run in self.runs]) for name in SPREAD_OF}
        self.reupload_over_pipeline = self.spread["reupload_over_pipeline"].mean
        self.pipeline_over_limit = round(self.pipeline_items_per_s / self.limit_items_per_s, 3)
        self.pipeline_over_naive = round(self.pipeline_items_per_s / self.naive_items_per_s, 2)
        self.backend_over_fp32 = round(self.limit_items_per_s / self.fp32_limit_items_per_s, 2)


def bench_texts(n: int) -> list[str]:
    """``n`` texts cycled from the seed corpus: realistic lengths and both languages."""
    texts = [e.text for e in seed_examples()]
    return [texts[i % len(texts)] for i in range(n)]


def reupload_stream(n: int) -> tuple[list[str], list[tuple[str, str]]]:
    """The known texts for a hash bank file, and ``n`` items of which every second one re-uploads
    a known text: an exact copy, a copy with changed case and punctuation, or a light edit (a few
    words added). The other half are texts the bank does not hold."""
    texts = [e.text for e in seed_examples()]
    known, fresh = texts[0::2], texts[1::2]
    edits = (
        lambda t: t,
        lambda t: t.upper().replace(".", "!!").replace(",", " ,"),
        lambda t: f"{t} Pass it on!",
    )
    items = []
    for i in range(n):
        if i % 2:
            j = i // 2
            items.append((f"reupload-{i}", edits[j % len(edits)](known[j % len(known)])))
        else:
            items.append((f"reupload-{i}", fresh[(i // 2) % len(fresh)]))
    return known, items


def measure_limit(classifier: Classifier, texts: Sequence[str]) -> tuple[int, float, dict[str, float]]:
    """Items/s of ``classifier.predict`` per batch size on a sample, then on all texts at the best."""
    classifier.predict(list(texts[:8]))  # warm-up
    sample = list(texts[: min(len(texts), 256)])
    by_size = {}
    for size in BATCH_SIZES:
        by_size[str(size)] = round(_rate(classifier, sample, size), 1)
    best = int(max(by_size, key=lambda s: by_size[s]))
    return best, round(_rate(classifier, list(texts), best), 1), by_size


def _rate(classifier: Classifier, texts: list[str], batch_size: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(texts), batch_size):
        classifier.predict(texts[start : start + batch_size])
    return len(texts) / (time.perf_counter() - started)


class OutputWatch:
    """Reads the output topics in a thread and notes when each item id's record arrived."""

    def __init__(self, settings: Settings, topics: Sequence[str]) -> None:
        self.arrivals: dict[str, float] = {}
        self._stop = threading.Event()
        self._reader = TopicReader(settings, topics, fetch_max_wait_ms=OUTPUT_FETCH_WAIT_MS)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            records = self._reader.poll(timeout_s=0.05)
            now = time.monotonic()
            for record in records:
                self.arrivals.setdefault(record.key.decode() if record.key else "", now)

    def wait_for(self, ids: Sequence[str], timeout_s: float) -> float:
        """The arrival time of the last of ``ids``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(i in self.arrivals for i in ids):
                return max(self.arrivals[i] for i in ids)
            time.sleep(0.02)
        missing = sum(i not in self.arrivals for i in ids)
        raise RuntimeError(f"{missing} of {len(ids)} items had no output after {timeout_s:.0f} s")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._reader.close()


def _payload(item_id: str, text: str) -> bytes:
    return json.dumps({"id": item_id, "text": text}).encode()


def _produce(
    settings: Settings, items: Sequence[tuple[str, str]], rate: float | None = None
) -> dict[str, float]:
    """Send ``items``, as fast as possible or at ``rate`` items/s; returns each id's send time."""
    sent: dict[str, float] = {}
    with Producer(settings, linger_ms=2) as producer:
        started = time.monotonic()
        for index, (item_id, text) in enumerate(items):
            if rate:
                delay = started + index / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            sent[item_id] = time.monotonic()
            producer.send(settings.topic(CONTENT.name), _payload(item_id, text), key=item_id.encode())
        producer.flush()
    return sent


def _new_run(bootstrap: str, partitions: int) -> tuple[Settings, str]:
    """Fresh topics under a fresh prefix on the bench's broker, and their tag (for group ids)."""
    tag = uuid.uuid4().hex[:8]
    run = Settings(kafka_bootstrap=bootstrap, topic_prefix=f"bench{tag}.", partitions=partitions)
    create_topics(run)
    return run, tag


def _throughput(
    run: Settings,
    watch: OutputWatch,
    warm: Sequence[tuple[str, str]],
    items: Sequence[tuple[str, str]],
    *,
    warm_timeout_s: float = 180,
    timeout_s: float = 600,
) -> float:
    """Items/s of ``items`` end to end, from the first send to the last output, after ``warm`` (if
    any) has been through (so that nothing is measured cold)."""
    if warm:
        _produce(run, warm)
        watch.wait_for([i for i, _ in warm], timeout_s=warm_timeout_s)
    started = time.monotonic()
    _produce(run, items)
    last = watch.wait_for([i for i, _ in items], timeout_s=timeout_s)
    return round(len(items) / (last - started), 1)


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def run_bench(
    settings: Settings,
    classifier: Classifier,
    fp32: Callable[[], Classifier],
    *,
    items: int,
    naive_items: int,
    workers: int,
    model_path: str,
    progress: Callable[[str], None],
    steady_s: float = 15.0,
    repeats: int = 3,
) -> BenchResult:
    texts = bench_texts(items)
    progress(f"limit: batched {settings.backend} inference on {items} texts ...")
    best, limit, by_size = measure_limit(classifier, texts)
    progress(f"  {limit:.1f} items/s at batch size {best} ({by_size})")
    if settings.backend == "transformers":
        fp32_limit = limit
    else:
        progress("limit of the fp32 transformers backend, for the ratio ...")
        fp32_limit = round(_rate(fp32(), texts[: min(items, 256)], best), 1)
        progress(f"  {fp32_limit:.1f} items/s")
    del classifier  # the workers load their own

    with tempfile.TemporaryDirectory(prefix="propwatch-bench-") as tmp, EmbeddedBroker() as broker:
        workdir = Path(tmp)
        run, tag = _new_run(broker.bootstrap, settings.partitions)
        env = {
            **broker.client_env(),
            "PROPWATCH_TOPIC_PREFIX": run.topic_prefix,
            "PROPWATCH_GROUP_ID": f"bench-{tag}",
            "PROPWATCH_BATCH_SIZE": str(best),
            "PROPWATCH_DATA_DIR": str(workdir / "data"),
            "PROPWATCH_LOG_LEVEL": "warning",
        }
        if workers > 1:
            env["PROPWATCH_INFERENCE_THREADS"] = "1"
        # Nothing is learned: the streams below measure the model and the bank, not what the
        # bank picks up from the stream itself.
        env["PROPWATCH_HASHBANK_LEARN"] = "false"
        watch = OutputWatch(run, [run.topic(spec.name) for spec in OUTPUTS])
        pool = _start_workers(env, workers, workdir / "pipeline")
        pipeline: list[float] = []
        try:
            warm = [(f"warm-{i}", texts[i % len(texts)]) for i in range(4 * best)]
            for r in range(repeats):
                progress(f"pipeline, run {r + 1} of {repeats}: {items} items through {workers} worker(s) ...")
                batch = [(f"run{r}-{i}", text) for i, text in enumerate(texts)]
                pipeline.append(_throughput(run, watch, warm if r == 0 else [], batch))
                progress(f"  {pipeline[-1]:.1f} items/s")

            offered = statistics.fmean(pipeline) / 2
            steady = [(f"steady-{i}", texts[i % len(texts)]) for i in range(max(20, int(offered * steady_s)))]
            progress(f"latency: {len(steady)} items at {offered:.1f} items/s (half capacity) ...")
            sent = _produce(run, steady, rate=offered)
            watch.wait_for(list(sent), timeout_s=600)
            latencies = sorted(watch.arrivals[i] - t for i, t in sent.items())
            p50 = round(statistics.median(latencies), 4)
            p99 = round(latencies[math.ceil(0.99 * len(latencies)) - 1], 4)  # nearest rank
            progress(f"  p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
            peak_rss = max(_peak_rss(w.process.pid) for w in pool)
        finally:
            for worker in pool:
                worker.stop()
            watch.close()

        progress(f"known content: {items} items, half of them re-uploads of texts in a bank file ...")
        reupload, matched = _bench_reuploads(run, env, workdir, workers, items, best, repeats, progress)

        progress(f"naive: one transformers.pipeline call per message, {naive_items} items ...")
        naive = _bench_naive(run, env, workdir, model_path, texts[:naive_items], repeats, progress)

    runs = [
        {
            "pipeline_items_per_s": pipeline[r],
            "reupload_items_per_s": reupload[r],
            "reupload_over_pipeline": round(reupload[r] / pipeline[r], 2),
            "naive_items_per_s": naive[r],
        }
        for r in range(repeats)
    ]
    return BenchResult(
        backend=settings.backend,
        model=model_path,
        items=items,
        best_batch_size=best,
        limit_items_per_s=limit,
        limit_by_batch_size=by_size,
        fp32_limit_items_per_s=fp32_limit,
        pipeline_items_per_s=round(statistics.fmean(pipeline), 1),
        p50_latency_s=p50,
        p99_latency_s=p99,
        offered_load_items_per_s=round(offered, 1),
        naive_items=naive_items,
        naive_items_per_s=round(statistics.fmean(naive), 1),
        workers=workers,
        worker_peak_rss_bytes=peak_rss,
        reupload_items_per_s=round(statistics.fmean(reupload), 1),
        reupload_matched=min(matched),
        runs=runs,
    )


def _start_workers(env: dict[str, str], count: int, logs: Path) -> list[WorkerProcess]:
    logs.mkdir(parents=True, exist_ok=True)
    pool = [
        WorkerProcess({**env, "PROPWATCH_WEB_PORT": str(free_port())}, logs / f"worker-{index}.log")
        for index in range(count)
    ]
    for worker in pool:
        worker.wait_healthy(timeout_s=180)
    return pool


def _bench_reuploads(
    first: Settings,
    env: dict[str, str],
    workdir: Path,
    workers: int,
    items: int,
    batch_size: int,
    repeats: int,
    progress: Callable[[str], None],
) -> tuple[list[float], list[int]]:
    """Items/s, per run, on a stream with 50 % re-uploads of known content, on fresh topics, with
    the known texts in a bank file; and how many of each run's re-uploads the bank matched."""
    known, stream = reupload_stream(items)
    bank = workdir / "bank.jsonl"
    with bank.open("w") as handle:
        for i, text in enumerate(known):
            handle.write(
                json.dumps({"entry_id": f"known-{i}", "text": text, "labels": ["incitement"]}) + "\n"
            )
    run, tag = _new_run(first.bootstrap, first.partitions)
    env = {
        **env,
        "PROPWATCH_TOPIC_PREFIX": run.topic_prefix,
        "PROPWATCH_GROUP_ID": f"bench-{tag}",
        "PROPWATCH_HASHBANK_FILE": str(bank),
    }
    watch = OutputWatch(run, [run.topic(spec.name) for spec in OUTPUTS])
    pool = _start_workers(env, workers, workdir / "reuploads")
    rates: list[float] = []
    try:
        # texts the bank does not hold, so that the model is warm too
        warm = [(f"warm-{i}", text) for i, (_, text) in enumerate(stream[0::2][: 4 * batch_size])]
        for r in range(repeats):
            this_run = [(f"r{r}-{item_id}", text) for item_id, text in stream]
            rates.append(_throughput(run, watch, warm if r == 0 else [], this_run))
    finally:
        for worker in pool:
            worker.stop()
        watch.close()
    referrals = [Referral.model_validate(r) for r in read_topics(run, [REFERRALS.name])[REFERRALS.name]]
    by_hashbank = {r.item_id for r in referrals if r.decided_by == DecidedBy.HASHBANK}
    matched = [sum(f"r{r}-{item_id}" in by_hashbank for item_id, _ in stream[1::2]) for r in range(repeats)]
    for r, (rate, caught) in enumerate(zip(rates, matched, strict=True)):
        progress(
            f"  run {r + 1} of {repeats}: {rate:.1f} items/s, {caught} of {items // 2} re-uploads matched"
        )
    return rates, matched


def _bench_naive(
    first: Settings,
    env: dict[str, str],
    workdir: Path,
    model_path: str,
    texts: Sequence[str],
    repeats: int,
    progress: Callable[[str], None],
) -> list[float]:
    """Items/s, per run, of the naive baseline on its own fresh topics: it reads its content topic
    from the beginning, so that on a topic the pipeline used, the pipeline's backlog would fall
    into its timed window."""
    run, tag = _new_run(first.bootstrap, first.partitions)
    naive_env = {
        **env,
        "PROPWATCH_TOPIC_PREFIX": run.topic_prefix,
        "PROPWATCH_GROUP_ID": f"bench-{tag}-naive",
        "PROPWATCH_WEB_PORT": str(free_port()),
    }
    watch = OutputWatch(run, [run.topic(spec.name) for spec in OUTPUTS])
    log = (workdir / "naive.log").open("ab")
    process = children.start(
        [sys.executable, "-m", "streams.dev.naive", model_path],
        stop_timeout_s=20.0,
        env={**os.environ, **naive_env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    rates: list[float] = []
    try:
        warm = [(f"naive-warm-{i}", texts[i % len(texts)]) for i in range(4)]
        for r in range(repeats):
            batch = [(f"naive{r}-{i}", text) for i, text in enumerate(texts)]
            rates.append(
                _throughput(run, watch, warm if r == 0 else [], batch, warm_timeout_s=300, timeout_s=900)
            )
            progress(f"  run {r + 1} of {repeats}: {rates[-1]:.1f} items/s")
    finally:
        children.terminate(process)
        log.close()
        watch.close()
    return rates


def _rate_over_runs(result: BenchResult, name: str) -> str:
    spread = result.spread[name]
    if result.repeats == 1:
        return f"{spread.mean:.1f} items/s"
    return f"{spread.mean:.1f} items/s (mean of {result.repeats}; min {spread.min:.1f}, max {spread.max:.1f})"


def format_result(result: BenchResult) -> str:
    ratio = result.spread["reupload_over_pipeline"]
    rows = [
        ("backend", result.backend),
        ("items", str(result.items)),
        (
            "limit (batched inference, no Kafka)",
            f"{result.limit_items_per_s:.1f} items/s at batch {result.best_batch_size}",
        ),
        ("fp32 transformers limit", f"{result.fp32_limit_items_per_s:.1f} items/s"),
        (
            f"propwatch end to end ({result.workers} worker(s))",
            _rate_over_runs(result, "pipeline_items_per_s"),
        ),
        (
            f"naive (pipeline() per message, {result.naive_items} items)",
            _rate_over_runs(result, "naive_items_per_s"),
        ),
        (
            f"latency at {result.offered_load_items_per_s:.1f} items/s",
            f"p50 {result.p50_latency_s:.3f} s, p99 {result.p99_latency_s:.3f} s",
        ),
        (
            "50 % re-uploads of known content",
            f"{_rate_over_runs(result, 'reupload_items_per_s')}, at least {result.reupload_matched} "
            f"of {result.items // 2} matched",
        ),
        (
            "re-uploads / stream without",
            f"{ratio.mean:.2f}x"
            + (
                f" (mean of {result.repeats}; min {ratio.min:.2f}x, max {ratio.max:.2f}x)"
                if result.repeats > 1
                else ""
            ),
        ),
        ("worker peak RSS", f"{result.worker_peak_rss_bytes / 2**20:.0f} MiB"),
        ("pipeline / limit", f"{result.pipeline_over_limit:.2f}"),
        ("pipeline / naive", f"{result.pipeline_over_naive:.1f}x"),
        ("backend / fp32", f"{result.backend_over_fp32:.2f}x"),
    ]
    for r, run in enumerate(result.runs, 1):
        rows.append(
            (
                f"run {r}",
                f"pipeline {run['pipeline_items_per_s']:.1f}, re-uploads {run['reupload_items_per_s']:.1f} "
                f"({run['reupload_over_pipeline']:.2f}x), naive {run['naive_items_per_s']:.1f} items/s",
            )
        )
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def write_chart(result: BenchResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    names = ["limit", "propwatch", "naive"]
    values = [result.limit_items_per_s, result.pipeline_items_per_s, result.naive_items_per_s]
    spreads = [None, result.spread["pipeline_items_per_s"], result.spread["naive_items_per_s"]]
    errors = [
        [0.0 if s is None else s.mean - s.min for s in spreads],
        [0.0 if s is None else s.max - s.mean for s in spreads],
    ]  # min-max over the runs
    left.bar(names, values, color=["#888888", "#2b6cb0", "#c05621"], yerr=errors, capsize=4)
    left.set_ylabel("items/s")
    left.set_title(f"Throughput ({result.backend}, {result.workers} worker(s))")
    for x, value in enumerate(values):
        left.annotate(f"{value:.0f}", (x, value), ha="center", va="bottom")
    right.bar(["p50", "p99"], [result.p50_latency_s, result.p99_latency_s], color="#2b6cb0")
    right.set_ylabel("seconds")
    right.set_title(f"End-to-end latency at {result.offered_load_items_per_s:.0f} items/s")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def result_json(result: BenchResult) -> str:
    return json.dumps(asdict(result), indent=2)
