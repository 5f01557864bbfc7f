"""``propwatch bench``: throughput against the model's limit and against the naive approach.

On the same texts, in one run, on the embedded broker:

1. the limit: batched inference of the configured classifier, no Kafka, at its best batch size;
2. propwatch end to end: items/s from producing the items to the last output record, and p50/p99
   end-to-end latency at a steady offered load of half that capacity;
3. the naive baseline: a Faust agent that calls the fp32 ``transformers.pipeline`` once per
   message on the event loop, as tutorials do (same model, same texts).
"""

from __future__ import annotations

import json
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
from streams.reporting.read import read_topics
from streams.settings import Settings

BATCH_SIZES = (8, 16, 32, 64)


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
    """How many of that stream's re-uploads the hash bank caught (the rest went to the model)."""
    pipeline_over_limit: float = field(init=False)
    pipeline_over_naive: float = field(init=False)
    backend_over_fp32: float = field(init=False)
    reupload_over_pipeline: float = field(init=False)

    def __post_init__(self) -> None:
        self.reupload_over_pipeline = round(self.reupload_items_per_s / self.pipeline_items_per_s, 2)
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
        self._reader = TopicReader(settings, topics)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            records = self._reader.poll(timeout_s=0.1)
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
    """Items/s of ``items`` end to end, from the first send to the last output, after ``warm`` has
    been through (so that nothing is measured cold)."""
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
        try:
            warm = [(f"warm-{i}", texts[i % len(texts)]) for i in range(4 * best)]
            progress(f"pipeline: {items} items through {workers} worker(s) ...")
            batch = [(f"run-{i}", text) for i, text in enumerate(texts)]
            pipeline = _throughput(run, watch, warm, batch)
            progress(f"  {pipeline:.1f} items/s")

            offered = pipeline / 2
            steady = [(f"steady-{i}", texts[i % len(texts)]) for i in range(max(20, int(offered * steady_s)))]
            progress(f"latency: {len(steady)} items at {offered:.1f} items/s (half capacity) ...")
            sent = _produce(run, steady, rate=offered)
            watch.wait_for(list(sent), timeout_s=600)
            latencies = sorted(watch.arrivals[i] - t for i, t in sent.items())
            p50 = round(statistics.median(latencies), 4)
            p99 = round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 4)
            progress(f"  p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
            peak_rss = max(_peak_rss(w.process.pid) for w in pool)
        finally:
            for worker in pool:
                worker.stop()

        progress(f"known content: {items} items, half of them re-uploads of texts in a bank file ...")
        reupload, matched = _bench_reuploads(run, env, workdir, workers, items, best)
        progress(f"  {reupload:.1f} items/s, {matched} of {items // 2} re-uploads matched")

        progress(f"naive: one transformers.pipeline call per message, {naive_items} items ...")
        naive = _bench_naive(run, env, workdir, model_path, texts[:naive_items], watch)
        progress(f"  {naive:.1f} items/s")
        watch.close()

    return BenchResult(
        backend=settings.backend,
        model=model_path,
        items=items,
        best_batch_size=best,
        limit_items_per_s=limit,
        limit_by_batch_size=by_size,
        fp32_limit_items_per_s=fp32_limit,
        pipeline_items_per_s=pipeline,
        p50_latency_s=p50,
        p99_latency_s=p99,
        offered_load_items_per_s=round(offered, 1),
        naive_items=naive_items,
        naive_items_per_s=naive,
        workers=workers,
        worker_peak_rss_bytes=peak_rss,
        reupload_items_per_s=reupload,
        reupload_matched=matched,
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
    first: Settings, env: dict[str, str], workdir: Path, workers: int, items: int, batch_size: int
) -> tuple[float, int]:
    """Items/s on a stream with 50 % re-uploads of known content, on fresh topics, with the known
    texts in a bank file; and how many of the re-uploads the bank matched."""
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
    try:
        # texts the bank does not hold, so that the model is warm too
        warm = [(f"warm-{i}", text) for i, (_, text) in enumerate(stream[0::2][: 4 * batch_size])]
        rate = _throughput(run, watch, warm, stream)
    finally:
        for worker in pool:
            worker.stop()
        watch.close()
    reuploads = {i for i, _ in stream[1::2]}
    referrals = read_topics(run, [REFERRALS.name])[REFERRALS.name]
    matched = {r["item_id"] for r in referrals if r["decided_by"] == "hashbank" and r["item_id"] in reuploads}
    return rate, len(matched)


def _bench_naive(
    run: Settings,
    env: dict[str, str],
    workdir: Path,
    model_path: str,
    texts: Sequence[str],
    watch: OutputWatch,
) -> float:
    naive_env = {
        **env,
        "PROPWATCH_GROUP_ID": f"{env['PROPWATCH_GROUP_ID']}-naive",
        "PROPWATCH_WEB_PORT": str(free_port()),
    }
    log = (workdir / "naive.log").open("ab")
    process = children.start(
        [sys.executable, "-m", "streams.dev.naive", model_path],
        stop_timeout_s=20.0,
        env={**os.environ, **naive_env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        warm = [(f"naive-warm-{i}", texts[i % len(texts)]) for i in range(4)]
        batch = [(f"naive-{i}", text) for i, text in enumerate(texts)]
        return _throughput(run, watch, warm, batch, warm_timeout_s=300, timeout_s=900)
    finally:
        children.terminate(process)
        log.close()


def format_result(result: BenchResult) -> str:
    rows = [
        ("backend", result.backend),
        ("items", str(result.items)),
        (
            "limit (batched inference, no Kafka)",
            f"{result.limit_items_per_s:.1f} items/s at batch {result.best_batch_size}",
        ),
        ("fp32 transformers limit", f"{result.fp32_limit_items_per_s:.1f} items/s"),
        (f"propwatch end to end ({result.workers} worker(s))", f"{result.pipeline_items_per_s:.1f} items/s"),
        (
            "naive (pipeline() per message)",
            f"{result.naive_items_per_s:.1f} items/s ({result.naive_items} items)",
        ),
        (
            f"latency at {result.offered_load_items_per_s:.1f} items/s",
            f"p50 {result.p50_latency_s:.3f} s, p99 {result.p99_latency_s:.3f} s",
        ),
        (
            "50 % re-uploads of known content",
            f"{result.reupload_items_per_s:.1f} items/s ({result.reupload_matched} of {result.items // 2} "
            f"matched), {result.reupload_over_pipeline:.2f}x the stream without",
        ),
        ("worker peak RSS", f"{result.worker_peak_rss_bytes / 2**20:.0f} MiB"),
        ("pipeline / limit", f"{result.pipeline_over_limit:.2f}"),
        ("pipeline / naive", f"{result.pipeline_over_naive:.1f}x"),
        ("backend / fp32", f"{result.backend_over_fp32:.2f}x"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def write_chart(result: BenchResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    names = ["limit", "propwatch", "naive"]
    values = [result.limit_items_per_s, result.pipeline_items_per_s, result.naive_items_per_s]
    left.bar(names, values, color=["#888888", "#2b6cb0", "#c05621"])
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
