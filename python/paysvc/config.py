"""The one typed settings object, read from ``PAYSVC_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec
import platformdirs

ENV_PREFIX = "PAYSVC_"


class SettingsError(ValueError):
    """A ``PAYSVC_*`` variable has a value that cannot be used."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    # Database. None: start the embedded PostgreSQL under data_dir.
    database_url: str | None = None
    data_dir: Path = Path(platformdirs.user_data_dir("paysvc"))
    pool_size: int = 16
    pool_acquire_timeout_ms: int = 2_000
    connection_max_lifetime_s: int = 600
    statement_timeout_ms: int = 5_000
    connect_timeout_s: int = 5
    # CockroachDB only: single-object GETs asked with `Paysvc-Read-Consistency: stale` read AS OF
    # SYSTEM TIME follower_read_timestamp() (a few seconds stale, served by the nearest replica);
    # lists and events stay current; ignored on PostgreSQL (db/dialect.py, reads.py).
    follower_reads: bool = False
    # Transactions.
    tx_max_attempts: int = 12
    tx_backoff_base_ms: int = 2
    tx_backoff_cap_ms: int = 200
    # API.
    admin_token: str | None = None
    rate_limit_per_s: int = 10_000
    idempotency_retention_h: int = 24
    # Group commit: the payments of one process are applied together, many per transaction.
    group_commit: bool = True
    group_commit_max_batch: int = 256
    group_commit_writers: int = 1  # batches of one process in flight at once (never sharing an account)
    engine_queue_max: int = 10_000
    # Background work of every API process.
    expiry_sweep_interval_s: int = 5
    # Also how soon a webhook delivery exists after its event commits (ledger/events.py): with the
    # jitter (at most 1.2 intervals) and the deliverer's poll, the first attempt goes out within 2 s
    # of the commit (brief, section 7; tests/test_webhooks.py checks it with the defaults).
    events_sequence_interval_ms: int = 1_000
    max_body_bytes: int = 64 * 1024
    max_batch_body_bytes: int = 1024 * 1024  # POST /v1/payments/batch
    # The HTTP edge (api/edge.py): the request line and headers; the time to receive them, from the
    # connection's (or a keep-alive request's) first byte; the time to receive the body after them;
    # an idle keep-alive connection's life; open connections per process (more are answered 503).
    max_head_bytes: int = 16 * 1024
    head_timeout_ms: int = 10_000
    body_timeout_ms: int = 10_000
    keepalive_timeout_s: int = 5
    max_connections: int = 2_048
    log_level: str = "INFO"
    # Risk: a directory of extra risk model files (*.json), beside (or replacing by id) the packaged ones.
    risk_models_dir: str | None = None
    # Webhooks (brief, section 7; paysvc/webhooks/).
    webhook_deliver_in_api: bool = True  # false: only `paysvc webhooks run` processes deliver
    webhook_allow_private: bool = False  # development and tests only: http:// and private hosts
    webhook_timeout_ms: int = 10_000
    webhook_retry_schedule_s: str = "5,300,1800,7200,18000,36000,36000"
    webhook_secret_overlap_s: int = 86_400
    webhook_concurrency: int = 16  # attempts in flight at once, per deliverer
    webhook_pool_size: int = 2  # the deliverer's own connections, apart from the API's pool
    webhook_poll_interval_ms: int = 250
    # An endpoint whose deliveries end failed this many times in a row (no success between) is
    # disabled, as Stripe does with endpoints failing for days; 0 never disables.
    webhook_disable_after_failed_deliveries: int = 50

    def __post_init__(self) -> None:
        _require(1 <= self.pool_size <= 1_000, "PAYSVC_POOL_SIZE must be between 1 and 1000")
        _require(
            10 <= self.pool_acquire_timeout_ms <= 60_000,
            "PAYSVC_POOL_ACQUIRE_TIMEOUT_MS must be between 10 and 60000",
        )
        _require(
            60 <= self.connection_max_lifetime_s <= 86_400,
            "PAYSVC_CONNECTION_MAX_LIFETIME_S must be between 60 and 86400",
        )
        _require(1 <= self.tx_max_attempts <= 100, "PAYSVC_TX_MAX_ATTEMPTS must be between 1 and 100")
        _require(self.rate_limit_per_s >= 0, "PAYSVC_RATE_LIMIT_PER_S must be >= 0 (0 disables)")
        _require(self.idempotency_retention_h >= 1, "PAYSVC_IDEMPOTENCY_RETENTION_H must be >= 1")
        _require(1 <= self.group_commit_max_batch <= 10_000,
                 "PAYSVC_GROUP_COMMIT_MAX_BATCH must be between 1 and 10000")
        _require(1 <= self.group_commit_writers <= 64, "PAYSVC_GROUP_COMMIT_WRITERS must be between 1 and 64")
        _require(self.group_commit_max_batch <= self.engine_queue_max <= 1_000_000,
                 "PAYSVC_ENGINE_QUEUE_MAX must be between PAYSVC_GROUP_COMMIT_MAX_BATCH and 1000000")
        _require(1 <= self.expiry_sweep_interval_s <= 3_600,
                 "PAYSVC_EXPIRY_SWEEP_INTERVAL_S must be between 1 and 3600")
        _require(10 <= self.events_sequence_interval_ms <= 60_000,
                 "PAYSVC_EVENTS_SEQUENCE_INTERVAL_MS must be between 10 and 60000")
        _require(self.risk_models_dir is None or os.path.isdir(self.risk_models_dir),
                 "PAYSVC_RISK_MODELS_DIR must name an existing directory")
        _require(100 <= self.webhook_timeout_ms <= 60_000, "PAYSVC_WEBHOOK_TIMEOUT_MS must be between 100 and 60000")
        _require(_delays(self.webhook_retry_schedule_s) is not None,
                 "PAYSVC_WEBHOOK_RETRY_SCHEDULE_S must be 0..50 comma-separated whole seconds, each 0..604800")
        _require(0 <= self.webhook_secret_overlap_s <= 30 * 86_400,
                 "PAYSVC_WEBHOOK_SECRET_OVERLAP_S must be between 0 and 2592000")
        _require(1 <= self.webhook_concurrency <= 1_000, "PAYSVC_WEBHOOK_CONCURRENCY must be between 1 and 1000")
        _require(1 <= self.webhook_pool_size <= 100, "PAYSVC_WEBHOOK_POOL_SIZE must be between 1 and 100")
        _require(10 <= self.webhook_poll_interval_ms <= 60_000,
                 "PAYSVC_WEBHOOK_POLL_INTERVAL_MS must be between 10 and 60000")
        _require(self.webhook_disable_after_failed_deliveries >= 0,
                 "PAYSVC_WEBHOOK_DISABLE_AFTER_FAILED_DELIVERIES must be >= 0 (0 never disables)")
        _require(1024 <= self.max_head_bytes <= 1024 * 1024, "PAYSVC_MAX_HEAD_BYTES must be between 1024 and 1048576")
        _require(100 <= self.head_timeout_ms <= 600_000, "PAYSVC_HEAD_TIMEOUT_MS must be between 100 and 600000")
        _require(100 <= self.body_timeout_ms <= 600_000, "PAYSVC_BODY_TIMEOUT_MS must be between 100 and 600000")
        _require(1 <= self.keepalive_timeout_s <= 3_600, "PAYSVC_KEEPALIVE_TIMEOUT_S must be between 1 and 3600")
        _require(1 <= self.max_connections <= 1_000_000, "PAYSVC_MAX_CONNECTIONS must be between 1 and 1000000")
        _require(self.admin_token is None or len(self.admin_token) >= 16,
                 "PAYSVC_ADMIN_TOKEN must be at least 16 characters")

    @property
    def webhook_retry_delays_s(self) -> tuple[int, ...]:
        """The delays before each retry of a webhook delivery; after the last one it is failed."""
        delays = _delays(self.webhook_retry_schedule_s)
        assert delays is not None  # checked in __post_init__
        return delays

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``PAYSVC_<FIELD>`` variables; unknown ``PAYSVC_*`` names are ignored."""
        env = os.environ if environ is None else environ
        raw: dict[str, object] = {}
        for field in msgspec.structs.fields(cls):
            value = env.get(ENV_PREFIX + field.name.upper())
            if value is not None and value != "":
                raw[field.name] = value
        try:
            return msgspec.convert(raw, cls, strict=False, dec_hook=_decode_path)
        except msgspec.ValidationError as exc:
            raise SettingsError(f"invalid {ENV_PREFIX} setting: {exc}") from exc


def _decode_path(kind: type, value: object) -> object:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError(f"cannot read {kind} from the environment")


def _delays(text: str) -> tuple[int, ...] | None:
    """``"5,300"`` -> ``(5, 300)``; an empty text is no retry at all; None when malformed."""
    parts = [part.strip() for part in text.split(",")] if text.strip() else []
    if len(parts) > 50 or not all(part.isascii() and part.isdigit() for part in parts):
        return None
    delays = tuple(int(part) for part in parts)
    return delays if all(delay <= 7 * 86_400 for delay in delays) else None


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise SettingsError(message)
