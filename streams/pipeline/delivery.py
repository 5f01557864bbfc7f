"""Dead letters, the size bound, sending with the broker's acknowledgements, and the one place
where delivered records become metrics."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Mapping, Sequence

import faust

from streams.kafka.topics import CLEARED, DLQ, HASHBANK, REFERRALS, REVIEW, TopicSpec
from streams.metrics import Metrics
from streams.pipeline.messages import Message, Output
from streams.records import DeadLetter, ErrorCode, Rejection, Stage

log = logging.getLogger(__name__)


def internal_error(
    metrics: Metrics, stage: Stage, exc: BaseException, item_id: str | None = None
) -> Rejection:
    """The rejection of a message that a step failed on, logged and counted: the exception's type,
    never its text (which may quote the content)."""
    metrics.internal_errors.labels(stage=str(stage)).inc()
    log.error("internal error at %s: %s", stage, type(exc).__name__)
    log.debug("internal error at %s", stage, exc_info=exc)
    return Rejection(
        ErrorCode.INTERNAL_ERROR, f"{type(exc).__name__} at {stage}", item_id=item_id, stage=stage
    )


def dead_letter(
    rejection: Rejection,
    message: Message,
    received_at: str,
    author_key: bytes | None = None,
) -> Output:
    """The dead letter of ``message``. Cannot fail: should building the full record fail, a
    record with the reason, source, length and SHA-256 but no payload takes its place."""
    key = (rejection.item_id or message.source.key).encode("utf-8")
    try:
        value = DeadLetter.of(
            rejection, message.value, message.source, received_at=received_at, author_key=author_key
        ).to_json()
    except Exception as exc:  # the last record a message can get: it must not fail too
        log.error("could not build a dead letter (%s); sending it without its payload", type(exc).__name__)
        value = DeadLetter.without_payload(
            rejection, message.value, message.source, received_at=received_at
        ).to_json()
    return Output(DLQ, key, value, produced_at=message.timestamp, code=str(rejection.code))


def bounded(output: Output, message: Message, received_at: str, max_message_bytes: int) -> Output:
    """``output``, or a dead letter ``output_too_large`` when it would not fit one produce request
    (the limits on every field make this a safeguard, not a path records take)."""
    if output.size <= max_message_bytes:
        return output
    item_id = output.key.decode("utf-8", errors="replace") if output.topic is not DLQ else None
    rejection = Rejection(
        ErrorCode.OUTPUT_TOO_LARGE,
        f"its {output.topic.name} record is {output.size} bytes, over the {max_message_bytes} "
        "a request takes",
        item_id=item_id,
        stage=Stage.ROUTE,
    )
    return dead_letter(rejection, message, received_at)


def count_delivered(metrics: Metrics, outputs: Sequence[Output]) -> None:
    """Count delivered outputs, and their end-to-end latency: the one place where records become
    metrics (the content and the decide agent both use it)."""
    now = time.time()
    for output in outputs:
        if output.topic is HASHBANK:
            continue
        if output.topic is REFERRALS:
            metrics.referrals.inc()
            for label in output.labels:
                metrics.referred.labels(label=label).inc()
            if output.match:
                metrics.hashbank_matches.labels(type=output.match).inc()
        elif output.topic is CLEARED:
            metrics.cleared.inc()
        elif output.topic is REVIEW:
            metrics.review_queued.inc()
        elif output.topic is DLQ:
            metrics.dead_lettered.labels(code=output.code).inc()
        elif output.decision is not None:
            metrics.decisions.labels(decision=output.decision).inc()
        if output.produced_at is not None:
            metrics.end_to_end_seconds.labels(start="produced").observe(max(0.0, now - output.produced_at))
        if output.observed_at is not None:
            metrics.end_to_end_seconds.labels(start="observed").observe(max(0.0, now - output.observed_at))


async def send_all(
    topics: Mapping[TopicSpec, faust.TopicT], outputs: Sequence[Output], retry_s: float = 1.0
) -> None:
    """Send every output and wait for the broker's acknowledgements, retrying what failed.

    Never gives up while the worker runs: an output that cannot be sent must not let its input's
    offset be committed (the stall metric shows a worker stuck here). A send that raises at once,
    before any future, fails like one whose future failed. Cancellation (the worker stopping)
    leaves the batch unacknowledged.
    """
    pending = list(outputs)
    while pending:
        results: list[object] = []
        for output in pending:
            try:
                results.append(await topics[output.topic].send(key=output.key, value=output.value))
            except Exception as exc:
                results.append(exc)
        waiting = [r for r in results if inspect.isawaitable(r)]
        outcomes = iter(await asyncio.gather(*waiting, return_exceptions=True))
        results = [next(outcomes) if inspect.isawaitable(r) else r for r in results]
        failed = [o for o, r in zip(pending, results, strict=True) if isinstance(r, BaseException)]
        if failed:
            first = next(r for r in results if isinstance(r, BaseException))
            log.warning(
                "%d of %d sends failed (%r); retrying in %.0f s", len(failed), len(pending), first, retry_s
            )
            await asyncio.sleep(retry_s)
        pending = failed
