"""One typed settings object, read from the environment with the CAUCE_ prefix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import CauceError


class Settings(BaseSettings):
    """Everything a cauce process needs to find its broker, its bucket and its limits."""

    model_config = SettingsConfigDict(env_prefix="CAUCE_", extra="ignore")

    home: Path = Path(".cauce")
    broker_url: str = "redis://127.0.0.1:6379/0"
    s3_endpoint_url: str | None = "http://127.0.0.1:8333"
    s3_region: str = "us-east-1"
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    bucket: str = Field(default="cauce", min_length=3)
    # Signs and verifies every model version (HMAC-SHA256); `cauce up` makes one if unset.
    signing_key: SecretStr | None = None
    serve_host: str = "127.0.0.1"
    serve_port: int = 8080
    console_host: str = "127.0.0.1"
    console_port: int = 8081
    # The Host names the console answers to, against DNS rebinding (a page of another site whose
    # name was made to point at 127.0.0.1): comma-separated, ".example.org" for its subdomains,
    # "*" for any. CAUCE_CONSOLE_HOST, when it names one address, is always trusted too.
    console_trusted_hosts: str = "localhost,127.0.0.1"
    serve_poll_seconds: float = Field(default=2.0, gt=0)
    # Whether the prediction service follows the alias moves announced on the broker (else it
    # only polls every CAUCE_SERVE_POLL_SECONDS).
    serve_listen: bool = True
    # The prediction log (services/serve/capture.py): sampled requests wait in a queue of at most
    # this many, then go to the bucket as Parquet every CAUCE_PREDICTION_LOG_SECONDS; when the
    # queue is full (the store away) records are dropped and counted, never waited for.
    prediction_log_queue: int = Field(default=10_000, ge=1)
    prediction_log_seconds: float = Field(default=5.0, gt=0)
    # How often the active watcher measures drift from the prediction log (monitor.py).
    monitor_seconds: float = Field(default=300.0, gt=0)
    watch_poll_seconds: float = Field(default=1.0, gt=0)
    # The watcher's `POST /events` (services/watcher/events.py): on only when a token is set.
    events_token: SecretStr | None = None
    events_host: str = "127.0.0.1"
    events_port: int = Field(default=8082, ge=0, le=65535)
    # An explicit cap on a run's input, in bytes (unset: none; free disk in the ingest worker's
    # temporary directory is what bounds a file, checked before it is downloaded or inflated).
    max_upload_bytes: int | None = Field(default=None, gt=0)
    max_request_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    # A request body that stops arriving for this long is answered 408 (services and console).
    body_timeout_seconds: float = Field(default=10.0, gt=0)
    # Rows x columns a Parquet file may declare (its metadata is read first): a few KB of
    # Parquet can hold millions of repeated rows, which gzip's byte limit would not see.
    max_table_cells: int = Field(default=500_000_000, gt=0)  # 10 M rows x 50 columns
    # Free space ingest leaves in its temporary directory after a download or inflating gzip.
    disk_reserve_bytes: int = Field(default=256 * 1024 * 1024, ge=0)
    min_rows: int = Field(default=20, ge=2)
    # The blend of a cross-validated search's best trials for specs that leave tuning.ensemble
    # unset (train workers read it).
    ensemble: Literal["auto", "off"] = "auto"
    task_time_limit: int = Field(default=1800, gt=0)
    max_redeliveries: int = Field(default=3, ge=0)
    # Work whose heartbeat is older than this lost its worker or its message and is sent again.
    stale_seconds: float = Field(default=60.0, gt=0)
    # A stopping worker (SIGQUIT, or SIGTERM with REMAP_SIGTERM=SIGQUIT as in compose) waits this
    # long for its task, then hands the task back to the queue.
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    # A stage worker's pool process that peaked above this many MiB is replaced by a fresh one
    # after its task, so the memory of a heavy task goes back to the system (0: never replaced).
    worker_max_memory_mb: int = Field(default=512, ge=0)
    # ... and every pool process of a worker idle this long after work is replaced by a fresh one,
    # so an idle stack gives back what its tasks left behind (0: never; shared/recycle.py).
    worker_idle_recycle_seconds: float = Field(default=10.0, ge=0)
    # Alerts (README, "Alerts"): the watcher posts each to this URL (empty: alerts off), signed
    # with the secret, waiting this long for an answer, trying this many times.
    alert_url: str = ""
    alert_secret: SecretStr | None = Field(default=None, validate_default=True)
    alert_timeout_seconds: float = Field(default=5.0, gt=0)
    alert_tries: int = Field(default=5, ge=1, le=10)

    @field_validator("alert_url")
    @classmethod
    def _alert_url(cls, url: str) -> str:
        url = url.strip()
        if url and not url.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL (or empty: alerts off)")
        return url

    @field_validator("alert_secret")
    @classmethod
    def _alert_secret(cls, secret: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("alert_url") and (secret is None or not secret.get_secret_value()):
            raise ValueError("required when CAUCE_ALERT_URL is set (it signs every alert)")
        return secret

    def console_hosts(self) -> list[str] | None:
        """The trusted Host names of the console; None when any is."""
        names = [n.strip() for n in self.console_trusted_hosts.split(",") if n.strip()]
        if "*" in names:
            return None
        if self.console_host not in ("0.0.0.0", "::", ""):
            names.append(self.console_host)
        return names

    def signing_key_bytes(self) -> bytes:
        """The model-signing key; a clear error when none is configured."""
        if self.signing_key is None or not self.signing_key.get_secret_value():
            raise CauceError(
                "no model-signing key: set CAUCE_SIGNING_KEY (`cauce up` writes one "
                "to $CAUCE_HOME/stack.env; compose reads it from .env)"
            )
        return self.signing_key.get_secret_value().encode()

    @property
    def heartbeat_seconds(self) -> float:
        """How often busy workers write their heartbeat."""
        return max(0.5, self.stale_seconds / 6)

    # Prediction service: a bearer token every request but the health probes must carry (off
    # when unset), and which runtime to prefer (auto: ONNX when deploy kept an export).
    api_token: SecretStr | None = None
    serve_runtime: Literal["auto", "skops"] = "auto"
    batch_chunk_rows: int = Field(default=10_000, gt=0)  # rows a batch job holds in memory

    @property
    def serve_url(self) -> str:
        """The prediction service's base URL as clients reach it."""
        host = "127.0.0.1" if self.serve_host in ("0.0.0.0", "") else self.serve_host
        return f"http://{host}:{self.serve_port}"

    @property
    def console_url(self) -> str:
        """The console's base URL as a browser on this machine reaches it."""
        host = "127.0.0.1" if self.console_host in ("0.0.0.0", "") else self.console_host
        return f"http://{host}:{self.console_port}"


def load_settings() -> Settings:
    """Read settings from the environment, then `$CAUCE_HOME/stack.env` (written by `cauce up`)."""
    stack_env = Path(os.environ.get("CAUCE_HOME", ".cauce")) / "stack.env"
    try:
        return Settings(_env_file=stack_env if stack_env.exists() else None)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = "; ".join(
            f"CAUCE_{str(e['loc'][0]).upper()}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
            if e["loc"]
        )
        raise CauceError(f"invalid settings: {problems}") from None
