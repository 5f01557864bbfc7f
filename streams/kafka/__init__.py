"""The Kafka layer: topics, client settings, the producer, reading a topic to its end and following
one; every broker workaround lives here once.
"""
