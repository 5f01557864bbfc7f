"""Idempotent creation of the topics :mod:`streams.kafka.topics` declares."""

from __future__ import annotations

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from streams.kafka.config import client_config
from streams.kafka.topics import TOPICS, TopicSpec
from streams.settings import Settings


def create_topics(settings: Settings, specs: tuple[TopicSpec, ...] = TOPICS) -> dict[str, str]:
    """Create the topics that do not exist yet; returns ``{topic: "created" | "exists"}``. A topic
    that exists is left as it is (its partitions, retention and cleanup policy too)."""
    admin = KafkaAdminClient(client_id="propwatch-admin", **client_config(settings))
    try:
        existing = set(admin.list_topics())
        result: dict[str, str] = {}
        missing = []
        for spec in specs:
            name = settings.topic(spec.name)
            if name in existing:
                result[name] = "exists"
            else:
                missing.append(
                    NewTopic(
                        name,
                        num_partitions=spec.partitions or settings.partitions,
                        replication_factor=settings.replication_factor,
                        topic_configs=spec.configs(),
                    )
                )
        for topic in missing:
            try:
                admin.create_topics([topic])
                result[topic.name] = "created"
            except TopicAlreadyExistsError:
                result[topic.name] = "exists"
        return result
    finally:
        admin.close()
