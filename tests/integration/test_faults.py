"""Nothing lost under crashes, SIGTERM, broker outages and scale-out; outputs read independently."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable

from streams.io import produce_lines
from streams.kafka.admin import create_topics
from tests.integration.conftest import Deployment


def items(start: int, stop: int) -> list[bytes]:
    filler = " ".join(f"word{j}" for j in range(120))  # long enough that a batch takes a moment
    return [
        json.dumps({"id": f"f-{i:05d}", "text": f"Item {i}: notes from the allotment {filler}"}).encode()
        for i in range(start, stop)
    ]


def signal_mid_stream(deployment: Deployment, send_signal: Callable[[], None]) -> int:
    """Produce 3000 items, wait for the first outputs, signal the worker; return how many
    outputs had arrived by then (the tests require the signal to land mid-stream)."""
    produce_lines(deployment.settings, items(0, 3000))
    done = sum(map(len, deployment.read_outputs(expected=200, timeout_s=120).values()))
    send_signal()
    return done


def by_item(outputs: dict[str, list[tuple[str, dict]]]) -> dict[str, list[tuple[str, dict]]]:
    seen: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    for name, records in outputs.items():
        for _, record in records:
            seen[record["item_id"]].append((name, record))
    return seen


def assert_duplicates_are_identical(seen: dict[str, list[tuple[str, dict]]]) -> None:
    for item_id, copies in seen.items():
        topics = {name for name, _ in copies}
        assert len(topics) == 1, f"{item_id} went to {topics}"
        ids = {r.get("referral_id") for _, r in copies}
        scores = {json.dumps(r.get("scores"), sort_keys=True) for _, r in copies}
        assert len(ids) == 1 and len(scores) == 1, f"{item_id}: redelivery changed its record"


def produce_in_chunks(deployment: Deployment, start: int, stop: int, chunk: int = 250) -> None:
    for first in range(start, stop, chunk):
        produce_lines(deployment.settings, items(first, min(stop, first + chunk)))
        time.sleep(0.1)


def health(url: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return -1


def test_sigkill_mid_stream_loses_nothing(deployment: Deployment) -> None:
    worker = deployment.start_worker(PROPWATCH_BATCH_SIZE="16")
    done = signal_mid_stream(deployment, worker.kill)
    assert done < 2500, f"the kill came too late to test anything ({done} done)"
    deployment.start_worker(PROPWATCH_BATCH_SIZE="16")
    everything = {f"f-{i:05d}" for i in range(3000)}
    deployment.read_outputs(expected=3000, timeout_s=300, ids=everything)
    time.sleep(2)  # let any redelivered duplicates arrive too
    outputs = deployment.read_outputs(expected=10**9, timeout_s=5)  # everything there is
    seen = by_item(outputs)
    assert set(seen) == {f"f-{i:05d}" for i in range(3000)}, "every input id has an output"
    assert_duplicates_are_identical(seen)


def test_sigterm_mid_stream_finishes_commits_and_repeats_nothing(deployment: Deployment) -> None:
    worker = deployment.start_worker(PROPWATCH_BATCH_SIZE="16")
    started = time.monotonic()
    done = signal_mid_stream(deployment, lambda: worker.stop(timeout_s=30))
    stopped_in = time.monotonic() - started
    assert done < 2500, f"SIGTERM came too late to test anything ({done} done)"
    assert worker.process.returncode == 0, worker.log_tail()
    assert stopped_in < 20, f"SIGTERM took {stopped_in:.1f} s"
    print(f"SIGTERM to exit: {stopped_in:.1f} s (mid-stream at {done} of 3000 outputs)")
    deployment.start_worker(PROPWATCH_BATCH_SIZE="16")
    everything = {f"f-{i:05d}" for i in range(3000)}
    deployment.read_outputs(expected=3000, timeout_s=300, ids=everything)
    time.sleep(2)  # duplicates, if any, would arrive by now
    outputs = deployment.read_outputs(expected=3001, timeout_s=3)
    seen = by_item(outputs)
    assert set(seen) == {f"f-{i:05d}" for i in range(3000)}
    duplicated = [i for i, copies in seen.items() if len(copies) > 1]
    assert not duplicated, f"{len(duplicated)} items were processed twice, e.g. {duplicated[:5]}"


def test_two_workers_split_the_partitions_and_one_takes_over(deployment: Deployment) -> None:
    first = deployment.start_worker(PROPWATCH_BATCH_SIZE="16")
    second = deployment.start_worker(PROPWATCH_BATCH_SIZE="16")
    time.sleep(6)  # let the group settle with both members
    produce_in_chunks(deployment, 0, 1000)
    outputs = deployment.read_outputs(expected=1000, timeout_s=300)
    seen = by_item(outputs)
    assert set(seen) == {f"f-{i:05d}" for i in range(1000)}
    assert all(len(c) == 1 for c in seen.values()), "steady state: nothing processed twice"
    consumed = [_consumed(w.url) for w in (first, second)]
    assert all(n > 0 for n in consumed) and sum(consumed) == 1000, f"both workers took a share: {consumed}"

    second.stop()
    produce_in_chunks(deployment, 1000, 1600)
    outputs = deployment.read_outputs(expected=1600, timeout_s=300, ids={f"f-{i:05d}" for i in range(1600)})
    seen = by_item(outputs)
    assert set(seen) == {f"f-{i:05d}" for i in range(1600)}, "the remaining worker took over"
    assert_duplicates_are_identical(seen)


def _consumed(url: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("propwatch_items_consumed_total "):
                return float(line.split()[1])
    raise AssertionError("no propwatch_items_consumed_total")


def test_broker_outage_reports_unhealthy_and_recovers(deployment: Deployment) -> None:
    from streams.dev.broker import EmbeddedBroker

    worker = deployment.start_worker()
    produce_lines(deployment.settings, items(0, 50))
    assert len(by_item(deployment.read_outputs(expected=50))) == 50

    broker = deployment.broker
    port = broker.port
    broker.stop()
    try:
        deadline = time.monotonic() + 30
        while health(worker.url) != 503 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert health(worker.url) == 503, "unhealthy while the broker is away"
        time.sleep(5)
        assert worker.process.poll() is None, "the worker survives the outage"
    finally:
        replacement = EmbeddedBroker(port=port).start()  # same port, empty memory storage
        broker.process = replacement.process

    create_topics(deployment.settings)
    deadline = time.monotonic() + 60
    while health(worker.url) != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert health(worker.url) == 200, "healthy again after the broker returns"
    produce_lines(deployment.settings, items(100, 150))
    seen = by_item(deployment.read_outputs(expected=50, timeout_s=120))
    assert {f"f-{i:05d}" for i in range(100, 150)} <= set(seen), "new items are processed after reconnecting"
