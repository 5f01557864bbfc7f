"""The tools' producer: ``propwatch produce`` and ``hashbank add|remove``, the demo, the bench and
the tests send records through it. The worker produces through Faust."""

from __future__ import annotations

from types import TracebackType

from kafka import KafkaProducer
from kafka.producer.future import FutureRecordMetadata

from streams.kafka.config import producer_config
from streams.settings import Settings


class Producer:
    """A kafka-python producer that waits for every in-sync replica's acknowledgement (``acks=all``)
    and takes requests up to ``PROPWATCH_MAX_MESSAGE_BYTES``. Use it as a context manager."""

    def __init__(self, settings: Settings, *, linger_ms: int = 5) -> None:
        self._producer = KafkaProducer(acks="all", linger_ms=linger_ms, **producer_config(settings))
        self._pending: list[FutureRecordMetadata] = []

    def send(self, topic: str, value: bytes | None, key: bytes | None = None) -> None:
        """Queue one record (``value`` None: a tombstone). Raises
        :class:`kafka.errors.MessageSizeTooLargeError` at once for a record larger than a produce
        request can carry: no broker takes it."""
        self._pending.append(self._producer.send(topic, key=key, value=value))

    def flush(self) -> int:
        """Wait until every record queued so far is acknowledged, and return how many were; raises
        the first failed send's :class:`kafka.errors.KafkaError`."""
        self._producer.flush()
        pending, self._pending = self._pending, []
        for future in pending:
            future.get()
        return len(pending)

    def close(self) -> None:
        self._producer.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
