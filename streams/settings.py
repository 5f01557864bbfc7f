"""All configuration in one frozen object, read from ``PROPWATCH_*`` environment variables.

Every field is documented in the README's settings table; ``propwatch settings`` prints the
effective values (secrets masked).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from classifiers.base import IGNORE, LABELS, ClassifierOptions
from classifiers.default_model import DEFAULT_MODEL
from streams.records import OUTPUT_OVERHEAD_BYTES

EMBEDDED_BOOTSTRAP = "127.0.0.1:9092"
"""Where ``propwatch broker`` listens by default, and so where clients go when nothing is set."""
EMBEDDED_SESSION_TIMEOUT_S = 4.0
"""Tansu holds a consumer-group join for about half the session timeout: keep it short."""
EMBEDDED_HEARTBEAT_INTERVAL_S = 1.0
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""The commands' log lines (``PROPWATCH_LOG_LEVEL`` sets their level)."""


def _known_labels(value: dict[str, float], what: str) -> None:
    unknown = sorted(set(value) - set(LABELS))
    if unknown:
        raise ValueError(f"{what} for unknown labels {unknown}; labels are {list(LABELS)}")


class Settings(BaseSettings):
    """propwatch's settings; the environment variable of ``field`` is ``PROPWATCH_FIELD``."""

    model_config = SettingsConfigDict(
        env_prefix="PROPWATCH_", frozen=True, extra="forbid", env_nested_delimiter="__"
    )

    # --- Kafka -------------------------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        None,
        description="Kafka bootstrap servers, comma separated host:port. Unset: the embedded "
        f"broker `propwatch broker` starts, at {EMBEDDED_BOOTSTRAP}.",
    )
    topic_prefix: str = Field("propwatch.", description="Prefix of every topic name.")
    partitions: int = Field(4, ge=1, description="Partitions of each topic `topics create` makes.")
    replication_factor: int = Field(1, ge=1, description="Replication factor of created topics.")
    group_id: str = Field("propwatch-worker", description="Consumer group (Faust app id).")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism when the protocol is SASL_*."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password (secret).")
    ssl_cafile: Path | None = Field(None, description="CA bundle to verify the brokers (SSL).")
    ssl_certfile: Path | None = Field(None, description="Client certificate for mutual TLS.")
    ssl_keyfile: Path | None = Field(None, description="Client private key for mutual TLS.")
    ssl_key_password: SecretStr | None = Field(None, description="Password of the key (secret).")
    session_timeout_s: float | None = Field(
        None,
        gt=0,
        description="Consumer group session timeout (seconds). Unset: 4 on the embedded broker "
        "(Tansu holds a group join for about half of it), 10 on any other (Apache Kafka refuses "
        "less than 6 by default).",
    )
    heartbeat_interval_s: float | None = Field(
        None, gt=0, description="Consumer heartbeat (seconds). Unset: 1 embedded, 3 otherwise."
    )

    # --- Classifier --------------------------------------------------------------------------
    model: str = Field(
        DEFAULT_MODEL,
        description="Classifier model: a local Hugging Face model folder, a hub id, or "
        "`default` for the project's model built by `make model`.",
    )
    backend: str = Field(
        "onnx",
        description="Classifier backend, by registry name (entry point group `propwatch.classifiers`): "
        "`onnx` (the model folder's int8 ONNX export) or `transformers` (fp32 torch, for a folder "
        "without an export).",
    )
    label_map: dict[str, str] = Field(
        default_factory=dict,
        description="Map model labels onto the taxonomy, JSON, e.g. "
        f'{{"toxic": "incitement", "insult": "{IGNORE}"}}; unmapped labels must be taxonomy labels.',
    )
    thresholds: dict[str, float] = Field(
        default_factory=lambda: dict.fromkeys(LABELS, 0.5),
        description='Per-label referral thresholds, JSON, e.g. {"threat": 0.4}; labels left out keep 0.5.',
    )
    review_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Per-label review thresholds, JSON, e.g. "
        '{"incitement": 0.3}: an item with no label at its referral threshold but one at its review '
        "threshold goes to the review topic for a person to decide. Labels left out: no review band.",
    )
    shadow_model: str | None = Field(
        None,
        description="A candidate model scored on the same batches as the live one without routing "
        "anything (same forms as `model`); its flag rate and agreement go to metrics and records.",
    )
    shadow_backend: str | None = Field(None, description="Backend of the shadow model; unset: `backend`.")
    max_length: int = Field(256, ge=8, description="Tokens per text the model sees (truncated).")
    inference_threads: int = Field(
        0,
        ge=0,
        description="Intra-op threads of one worker process's inference; 0 = the backend's default "
        "(every core). `propwatch worker --processes N` with N > 1 gives each process 1 unless set.",
    )

    author_hash_key: SecretStr | None = Field(
        None,
        description="Secret key of the HMAC-SHA256 that replaces `author` in referrals; unset: "
        "referrals carry no author at all.",
    )

    # --- Known content ------------------------------------------------------------------------
    hashbank_file: Path | None = Field(
        None,
        description="JSON Lines of known content (hash bank entries, or texts to hash) loaded at "
        "start; the hashbank topic adds to and removes from it while running.",
    )
    hashbank_similarity: float = Field(
        0.75,
        ge=0.5,
        le=1.0,
        description="Least estimated Jaccard similarity (MinHash over character 5-grams of the "
        "normalised text) for a near-duplicate match.",
    )
    hashbank_learn: bool = Field(
        True, description="Whether content the pipeline refers joins the hash bank (via the hashbank topic)."
    )

    # --- Batching and input ------------------------------------------------------------------
    batch_size: int = Field(32, ge=1, description="Most items classified in one batch.")
    batch_wait_s: float = Field(
        0.05, gt=0, description="Longest wait to fill a batch before classifying it (seconds)."
    )
    max_text_bytes: int = Field(
        400_000,
        ge=1,
        description="Largest accepted `text` in UTF-8 bytes; larger: dlq. At most half of "
        "`max_message_bytes` less 64 KiB, so that every record fits one request (JSON escaping can "
        "double a text).",
    )
    max_message_bytes: int = Field(
        1_000_000,
        ge=200_000,
        description="Largest produce request the worker and the CLI send (the producers' "
        "max.request.size); keep it at or below the brokers' message.max.bytes (Kafka's default: 1048588).",
    )

    decided_review_retention_h: float = Field(
        168.0,
        gt=0,
        description="Hours a decided review stays in each worker's memory after its decision: the "
        "window in which a supervisor can supersede the decision.",
    )

    decision_key: SecretStr | None = Field(
        None,
        description="Secret key of the HMAC-SHA256 that signs reviewers' decisions "
        "(`streams/review/signing.py`). Set: the console signs each decision it writes, and the worker "
        "applies only decisions signed with it (or a key in `decision_previous_keys`), dead-lettering "
        "the rest as `unsigned_decision`. Unset: decisions are not signed, and write access to the "
        "decisions topic (the ACLs) is the only control.",
    )
    decision_previous_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Earlier decision keys the worker still accepts while the key is rotated, JSON, "
        'e.g. ["old-key"]; the console signs with `decision_key` only. Only with `decision_key`; keep a '
        "retired key while reviews that decisions signed with it decided are on the review topic: a "
        "worker that starts forgets decisions whose key it no longer holds.",
    )

    # --- Review console ----------------------------------------------------------------------
    console_port: int = Field(6070, ge=1, le=65535, description="Port of `propwatch console`.")
    console_bind: str = Field("127.0.0.1", description="Address the review console binds.")
    console_users_file: Path = Field(
        Path("console-users.json"),
        description="The console's users: names, roles and argon2 password hashes "
        "(`propwatch console add-user` writes it).",
    )
    console_session_key: SecretStr | None = Field(
        None,
        description="Secret that signs the console's session cookies (at least 32 characters); unset: "
        "a random key per start, so sessions end when the console restarts.",
    )
    console_cookie_secure: bool = Field(
        True,
        description="Send the session cookie only over HTTPS (set false only for plain-HTTP local use, "
        "as the demo does).",
    )
    console_claim_s: float = Field(
        300.0, gt=0, description="How long opening an item claims it for its reviewer (seconds)."
    )
    console_login_attempts: int = Field(
        5,
        ge=1,
        description="Failed logins for one user name within `console_login_window_s` after which that "
        "name's logins are refused (429, the password not checked) until the window has passed over "
        "them; an unknown name counts as a known one.",
    )
    console_login_address_attempts: int = Field(
        20,
        ge=0,
        description="Failed logins from one client address within `console_login_window_s` after which "
        "its logins are refused the same way; 0: no limit per address. Behind a reverse proxy every "
        "request comes from the proxy's address: set 0 there (the limit per name still holds).",
    )
    console_login_window_s: float = Field(
        900.0, gt=0, description="The window (seconds) over which failed console logins are counted."
    )
    console_proxy_user_header: str | None = Field(
        None,
        description="Trust this request header (set by an authenticating reverse proxy) as the user "
        "name, instead of the console's login form; the user must still be in the users file, for "
        "the role. Unset (the default): only the login form. Set it only when the console is reachable "
        "through that proxy alone.",
    )

    # --- Worker and web ----------------------------------------------------------------------
    web_port: int = Field(
        6066,
        ge=1,
        le=65535,
        description="Port of /health and /metrics; `propwatch worker --processes N` gives process i "
        "(from 0) this port + i.",
    )
    web_bind: str = Field("127.0.0.1", description="Address the web server binds.")
    sources_port: int = Field(
        6075,
        ge=1,
        le=65535,
        description="Port of /health and /metrics of `propwatch sources run` (on `web_bind`).",
    )
    data_dir: Path = Field(
        Path(".propwatch"),
        description="Folder for local state: the worker's (Faust data dir) and the sources service's "
        "(`sources.sqlite3`: what was sent, cache validators, backoff).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Worker log level.")

    @field_validator("thresholds")
    @classmethod
    def _full_thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        _known_labels(value, "thresholds")
        bad = {k: v for k, v in value.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"thresholds must lie in [0, 1]: {bad}")
        return {**dict.fromkeys(LABELS, 0.5), **value}

    @field_validator("review_thresholds")
    @classmethod
    def _known_review_labels(cls, value: dict[str, float]) -> dict[str, float]:
        _known_labels(value, "review thresholds")
        return value

    @model_validator(mode="after")
    def _review_below_referral(self) -> Settings:
        above = {k: v for k, v in self.review_thresholds.items() if not 0.0 <= v < self.thresholds[k]}
        if above:
            raise ValueError(
                f"review thresholds must lie in [0, referral threshold): {above}, referral {self.thresholds}"
            )
        return self

    @model_validator(mode="after")
    def _decision_keys_make_sense(self) -> Settings:
        if self.decision_previous_keys and self.decision_key is None:
            raise ValueError(
                "decision_previous_keys is set but decision_key is not: set the key in force too"
            )
        keys = [self.decision_key, *self.decision_previous_keys]
        if any(key is not None and not key.get_secret_value() for key in keys):
            raise ValueError(
                "a decision key must not be empty (unset decision_key to accept unsigned decisions)"
            )
        return self

    @model_validator(mode="after")
    def _records_fit_a_request(self) -> Settings:
        most = (self.max_message_bytes - OUTPUT_OVERHEAD_BYTES) // 2
        if self.max_text_bytes > most:
            raise ValueError(
                f"max_text_bytes {self.max_text_bytes} leaves no room for a record in max_message_bytes "
                f"{self.max_message_bytes}: at most {most} (a referral may escape every byte of the text "
                f"as two, and needs {OUTPUT_OVERHEAD_BYTES} bytes for the rest)"
            )
        return self

    @property
    def embedded(self) -> bool:
        """Whether the settings point at the embedded broker's default address."""
        return self.kafka_bootstrap is None

    @property
    def session_timeout(self) -> float:
        return self.session_timeout_s or (EMBEDDED_SESSION_TIMEOUT_S if self.embedded else 10.0)

    @property
    def heartbeat_interval(self) -> float:
        return self.heartbeat_interval_s or (EMBEDDED_HEARTBEAT_INTERVAL_S if self.embedded else 3.0)

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers in force."""
        return self.kafka_bootstrap or EMBEDDED_BOOTSTRAP

    def classifier_options(self) -> ClassifierOptions:
        """What the classifier backend gets besides the model reference."""
        return ClassifierOptions(
            label_map=self.label_map, max_length=self.max_length, threads=self.inference_threads
        )

    def decision_keys(self) -> tuple[bytes, ...]:
        """The keys a worker verifies decisions with, the key in force first (UTF-8 bytes of each
        setting); empty when ``decision_key`` is unset: decisions are then not checked."""
        if self.decision_key is None:
            return ()
        keys = (self.decision_key, *self.decision_previous_keys)
        return tuple(key.get_secret_value().encode() for key in keys)

    def topic(self, name: str) -> str:
        """The full name of one of the topics declared in :mod:`streams.kafka.topics`."""
        return f"{self.topic_prefix}{name}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for SSL and SASL_SSL, built from the ``ssl_*`` settings."""
        if self.security_protocol not in ("SSL", "SASL_SSL"):
            return None
        context = ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
        if self.ssl_certfile:
            context.load_cert_chain(
                str(self.ssl_certfile),
                str(self.ssl_keyfile) if self.ssl_keyfile else None,
                self.ssl_key_password.get_secret_value() if self.ssl_key_password else None,
            )
        return context
