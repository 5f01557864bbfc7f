"""Faust's aiokafka transport with a fetch wait we choose.

Faust creates its aiokafka consumer with ``fetch_max_wait_ms=1500``. Apache Kafka answers a fetch
as soon as data arrives, whatever the wait, but the embedded broker (Tansu) holds a fetch over
several partitions for about a third of it: 550 ms of latency per hop, measured. A short wait
costs a few more empty fetches on an idle topic and nothing else.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as driver

FETCH_MAX_WAIT_MS = 100


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts
        return consumer


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    """The aiokafka transport, but for the consumer's fetch wait."""

    Consumer = _Consumer


def install(app: Any) -> None:
    """Make ``app`` consume through :class:`Transport`; call before declaring topics."""
    app.transport = Transport(app.conf.broker_consumer, app)
