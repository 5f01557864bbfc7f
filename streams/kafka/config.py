"""kafka-python and aiokafka client options, built from the settings (the one place configuration
is read): every client propwatch makes outside Faust takes its connection options from here."""

from __future__ import annotations

from streams.settings import Settings


def client_config(settings: Settings) -> dict[str, object]:
    """Connection options for kafka-python clients (admin, producer, readers); aiokafka takes the
    same (the worker's followers of the hashbank, review and decisions topics)."""
    config: dict[str, object] = {
        "bootstrap_servers": settings.bootstrap.split(","),
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol.startswith("SASL"):
        config["sasl_mechanism"] = settings.sasl_mechanism
        config["sasl_plain_username"] = settings.sasl_username
        config["sasl_plain_password"] = (
            settings.sasl_password.get_secret_value() if settings.sasl_password else None
        )
    context = settings.ssl_context()
    if context is not None:
        config["ssl_context"] = context
    return config


def producer_config(settings: Settings) -> dict[str, object]:
    """:func:`client_config` for a kafka-python producer: requests up to ``max_message_bytes``."""
    return {**client_config(settings), "max_request_size": settings.max_message_bytes}
