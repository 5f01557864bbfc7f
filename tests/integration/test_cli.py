"""The `propwatch` commands a user types, against the real broker."""

from __future__ import annotations

import json
from pathlib import Path

from streams.kafka.topics import TOPICS
from tests.integration.conftest import Deployment


def test_topics_produce_consume(deployment: Deployment, tmp_path: Path) -> None:
    again = deployment.cli("topics", "create")
    assert again.returncode == 0
    lines = again.stdout.decode().splitlines()
    assert len(lines) == len(TOPICS) and all("\texists\t" in line for line in lines), lines
    partitions = {line.split("\t")[0].rsplit(".", 1)[1]: line.split("\t")[2] for line in lines}
    assert partitions.pop("decisions") == "1 partition", "one log orders every decision"
    assert set(partitions.values()) == {"4 partitions"}

    source = tmp_path / "items.jsonl"
    source.write_text('{"id": "c1", "text": "hello"}\n\n{"id": "c2", "text": "  "}\nnot json\n')
    sent = deployment.cli("produce", str(source))
    assert sent.returncode == 0
    assert sent.stdout.decode().startswith("sent 3, rejected 0; 2 invalid"), sent.stdout

    strict = deployment.cli("produce", "-", "--strict", stdin=source.read_bytes())
    assert strict.returncode == 1
    assert "sent 1, rejected 2" in strict.stdout.decode()
    assert "line 3: rejected: empty_text" in strict.stderr.decode()

    read = deployment.cli("consume", "content", "--max", "4", "--timeout", "10")
    assert read.returncode == 0, read.stderr
    records = [json.loads(line) for line in read.stdout.decode().splitlines()]
    assert len(records) == 4
    assert sum(r == {"id": "c1", "text": "hello"} for r in records) == 2

    huge = tmp_path / "huge.jsonl"
    huge.write_bytes(b'{"id": "h1", "text": "ok"}\n{"id": "h2", "text": "' + b"x" * 1_100_000 + b'"}\n')
    too_large = deployment.cli("produce", str(huge))
    assert too_large.returncode == 1, "a line no request can carry is refused here, not lost"
    assert "sent 1, rejected 1" in too_large.stdout.decode() and "too_large: 1" in too_large.stdout.decode()
    assert "line 2: rejected: too_large" in too_large.stderr.decode()

    missing = deployment.cli("consume", "nothing-here", "--timeout", "2")
    assert missing.returncode == 1 and b"no such topic" in missing.stderr


def test_settings_mask_secrets(deployment: Deployment) -> None:
    deployment.env["PROPWATCH_SASL_PASSWORD"] = "hunter2-secret"
    shown = deployment.cli("settings")
    assert shown.returncode == 0
    assert b"PROPWATCH_SASL_PASSWORD=" in shown.stdout and b"hunter2" not in shown.stdout
