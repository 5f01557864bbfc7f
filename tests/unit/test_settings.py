"""The frozen settings object and what it builds for the Kafka clients."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.app import faust_credentials
from streams.kafka.config import client_config
from streams.settings import Settings


def test_environment_is_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROPWATCH_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    monkeypatch.setenv("PROPWATCH_THRESHOLDS", '{"threat": 0.3}')
    monkeypatch.setenv("PROPWATCH_BATCH_SIZE", "7")
    settings = Settings()
    assert client_config(settings)["bootstrap_servers"] == ["k1:9092", "k2:9092"]
    assert settings.thresholds == {"incitement": 0.5, "recruitment": 0.5, "instruction": 0.5, "threat": 0.3}
    assert settings.batch_size == 7
    assert settings.topic("referrals") == "propwatch.referrals"


def test_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.batch_size = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "field, value",
    [("thresholds", {"hate": 0.5}), ("thresholds", {"threat": 1.5}), ("batch_size", 0), ("nope", 1)],
)
def test_invalid_settings_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        Settings(**{field: value})  # type: ignore[arg-type]


def test_session_timeout_defaults_fit_the_broker() -> None:
    assert Settings().session_timeout == 4.0, "the embedded broker"
    assert Settings(kafka_bootstrap="kafka:9092").session_timeout >= 6.0, "Apache Kafka's minimum"


def test_sasl_reaches_every_client_and_secrets_stay_hidden() -> None:
    settings = Settings(
        kafka_bootstrap="k:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password="hunter2-secret",
    )
    config = client_config(settings)
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert config["sasl_plain_password"] == "hunter2-secret"
    assert config["ssl_context"] is not None
    credentials = faust_credentials(settings)
    assert credentials is not None and credentials.protocol.value == "SASL_SSL"
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())
    assert "hunter2" not in repr(credentials)


def test_decision_keys_come_in_force_first_and_stay_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().decision_keys() == (), "unset: decisions are not checked"
    monkeypatch.setenv("PROPWATCH_DECISION_KEY", "key-of-this-year")
    monkeypatch.setenv("PROPWATCH_DECISION_PREVIOUS_KEYS", '["key-of-last-year", "k\u00e9y-before"]')
    settings = Settings()
    assert settings.decision_keys() == (b"key-of-this-year", b"key-of-last-year", "k\u00e9y-before".encode())
    assert "this-year" not in repr(settings) and "last-year" not in str(settings.model_dump())


@pytest.mark.parametrize(
    "values, problem",
    [
        ({"decision_key": ""}, "must not be empty"),
        ({"decision_key": "k", "decision_previous_keys": [""]}, "must not be empty"),
        ({"decision_previous_keys": ["old"]}, "decision_key is not"),
    ],
)
def test_decision_keys_that_would_open_the_topic_are_refused(values: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Settings(**values)  # type: ignore[arg-type]


def _readme_settings_rows() -> dict[str, str]:
    """The README's settings table: ``{variable: default cell}``."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`PROPWATCH_"):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_readme_settings_table_is_the_settings_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every setting has a row in the README and every row is a setting; a default written as one
    literal (or ``unset``) is the default in force."""
    rows = _readme_settings_rows()
    fields = {f"PROPWATCH_{name.upper()}": name for name in Settings.model_fields}
    assert set(rows) == set(fields), (
        f"missing from the README: {sorted(set(fields) - set(rows))}; "
        f"not settings: {sorted(set(rows) - set(fields))}"
    )
    for name in [k for k in os.environ if k.startswith("PROPWATCH_")]:
        monkeypatch.delenv(name)
    defaults = Settings()
    for variable, cell in rows.items():
        field = fields[variable]
        if cell == "unset":
            assert getattr(defaults, field) is None, variable
        elif cell.startswith("`") and cell.endswith("`") and cell.count("`") == 2:
            monkeypatch.setenv(variable, cell.strip("`"))
            assert getattr(Settings(), field) == getattr(defaults, field), f"{variable}: README says {cell}"
            monkeypatch.delenv(variable)


def test_the_default_backend_is_int8_onnx_and_fp32_is_one_setting_away(
    monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model folder without an ONNX export (the tiny test model) fails with the default backend,
    and the message names both ways out."""
    from streams.cli import main

    for name in [k for k in os.environ if k.startswith("PROPWATCH_")]:
        monkeypatch.delenv(name)
    assert Settings().backend == "onnx" and Settings().batch_wait_s == 0.05
    monkeypatch.setenv("PROPWATCH_MODEL", str(tiny_model_dir))
    with pytest.raises(SystemExit) as exited:
        main(["evaluate", "--split", "test"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "propwatch model export-onnx" in error and "PROPWATCH_BACKEND=transformers" in error
    monkeypatch.setenv("PROPWATCH_BACKEND", "transformers")
    assert Settings().backend == "transformers"
