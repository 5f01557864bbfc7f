"""The Kafka layer: every client setting and broker workaround lives here once.

- :mod:`~streams.kafka.topics`: every topic, declared once; :mod:`~streams.kafka.admin` creates them.
- :mod:`~streams.kafka.config`: the clients' options, built from the settings.
- :mod:`~streams.kafka.producer`: the tools' synchronous producer (kafka-python).
- :mod:`~streams.kafka.reader`: reading topics from the beginning, to their end or as they grow.
- :mod:`~streams.kafka.end`: where a partition ends, for the reader and the follower alike.
- :mod:`~streams.kafka.follower`: the worker's whole-topic followers (aiokafka).
- :mod:`~streams.kafka.transport`: Faust's aiokafka transport with the fetch wait we choose.
"""
