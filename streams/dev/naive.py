"""The naive baseline ``propwatch bench`` compares against: a Faust agent that calls the fp32
``transformers.pipeline`` once per message, on the event loop, as tutorials do.

Not for production: it blocks the event loop during inference and batches nothing.
Run: ``python -m streams.dev.naive MODEL_FOLDER`` with the same ``PROPWATCH_*`` settings.
"""

from __future__ import annotations

import json
import sys

import faust
from transformers import pipeline

from streams.kafka.topics import CLEARED, CONTENT, REFERRALS
from streams.settings import Settings


def naive_app(settings: Settings, model: str) -> faust.App:
    app = faust.App(
        settings.group_id,
        broker=";".join(f"kafka://{host}" for host in settings.bootstrap.split(",")),
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        consumer_auto_offset_reset="earliest",
        topic_disable_leader=True,
        web_port=settings.web_port,
        datadir=str(settings.data_dir),
        autodiscover=False,
    )
    classify = pipeline("text-classification", model=model, top_k=None)
    content = app.topic(settings.topic(CONTENT.name), value_type=bytes, value_serializer="raw")
    referrals = app.topic(settings.topic(REFERRALS.name), key_serializer="raw", value_serializer="raw")
    cleared = app.topic(settings.topic(CLEARED.name), key_serializer="raw", value_serializer="raw")

    @app.agent(content)
    async def naive(stream: faust.StreamT) -> None:
        async for value in stream:
            item = json.loads(value)
            scores = {r["label"]: r["score"] for r in classify(item["text"])[0]}
            sink = referrals if max(scores.values()) >= 0.5 else cleared
            await sink.send(
                key=item["id"].encode(), value=json.dumps({"item_id": item["id"], "scores": scores}).encode()
            )

    return app


if __name__ == "__main__":
    faust.Worker(naive_app(Settings(), sys.argv[1]), loglevel="warning").execute_from_commandline()
