"""Runtime settings: one pydantic-settings model, environment prefix ``SHIFTWATCH_``.

Build it with :func:`load_settings` (optionally from a YAML file) and pass it
down; nothing instantiates settings at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from collectors.secrets import read_token_file, resolve_token
from monitor.errors import ConfigError

__all__ = ["Settings", "load_settings", "read_token_file", "resolve_token"]

_BESIDE_THE_DB = ("reports_dir", "export_dir", "registry_dir", "spool_dir")


class Settings(BaseSettings):
    """Everything the sidecar and the CLI need to run.

    Values come, highest precedence first, from keyword arguments, the
    environment (``SHIFTWATCH_DB_PATH`` …), then the YAML config file.

    The state directories (``reports_dir``, ``export_dir``, ``registry_dir``, ``spool_dir``)
    that no source sets live **beside the DuckDB file**: with ``db_path=/var/lib/sw/sw.duckdb``
    the registry defaults to ``/var/lib/sw/shiftwatch-models``, whatever directory a command
    runs from, so ``serve`` and a later ``models register --db /var/lib/sw/sw.duckdb`` from
    elsewhere share one registry. A directory that is set is taken as given (a relative one is
    relative to the working directory).
    """

    model_config = SettingsConfigDict(env_prefix="SHIFTWATCH_", extra="forbid")

    db_path: Path = Field(Path("shiftwatch.duckdb"), description="DuckDB file owned by this process")
    token: SecretStr | None = Field(None, description="bearer token; protects all but /healthz")
    token_file: Path | None = Field(None, description="file holding the bearer token (a mounted "
                                    "secret; surrounding whitespace and the newline are trimmed)")
    auth: Literal["on", "off"] = Field("on", description="'off' serves without a token (logged as a "
                                       "warning); with 'on' a token or token file is required")
    host: str = "127.0.0.1"
    port: int = Field(8686, ge=1, le=65535)
    max_body_bytes: int = Field(16 * 1024 * 1024, gt=0, description="413 past this request size")
    max_batch_records: int = Field(10_000, gt=0, description="413 past this many records")
    reports_dir: Path = Field(Path("shiftwatch-reports"),
                              description="where HTML reports go (default: beside db_path)")
    export_dir: Path = Field(Path("shiftwatch-export"),
                             description="Parquet export root (default: beside db_path)")
    registry_dir: Path = Field(Path("shiftwatch-models"),
                               description="model artifacts root (default: beside db_path)")
    spool_dir: Path = Field(Path("shiftwatch-spool"),
                            description="Parquet drop files to ingest (default: beside db_path)")
    policy_file: Path | None = Field(None, description="policy YAML; None uses the shipped default")
    drift_interval_s: float = Field(300.0, gt=0, description="seconds between drift checks")
    window_size: int = Field(500, gt=0, description="rows per current window (count windows)")
    window_minutes: float | None = Field(None, gt=0, description="time windows instead of counts")
    retention_days: float = Field(30.0, gt=0)
    dry_run: bool = Field(False, description="decide and record actions, but do not perform them")
    webhook_url: str | None = Field(None, description="notify action URL when the policy gives none; "
                                                       "also where event notifications go")
    webhook_format: Literal["generic", "slack", "alertmanager"] = Field(
        "generic", description="payload format of event notifications (retrain, promote, rollback)")
    public_url: str | None = Field(None, description="base URL the sidecar is reached at (e.g. "
                                                     "https://shiftwatch.example); links reports in alerts")
    outbox_interval_s: float = Field(5.0, gt=0, description="seconds between notification delivery runs")
    outbox_backoff_s: float = Field(1.0, gt=0, description="wait after the first failed delivery attempt")
    outbox_max_backoff_s: float = Field(300.0, gt=0, description="longest wait between delivery attempts")
    outbox_expire_s: float = Field(24 * 3600.0, gt=0, description="give up on an undelivered notification")
    enrich_max_wait_s: float = Field(3600.0, ge=0, description="check a window without its rows "
                                     "still waiting for enrichment once it ended this long ago")
    # uvicorn limits of `shiftwatch serve` (see docs/security.md)
    timeout_keep_alive_s: float = Field(5.0, gt=0, description="close idle keep-alive connections")
    header_timeout_s: float = Field(10.0, gt=0, description="close connections whose request head "
                                    "(line + headers) is not complete in this time")
    limit_concurrency: int = Field(256, gt=0, description="503 past this many open connections")
    max_header_bytes: int = Field(64 * 1024, ge=1024, description="largest request head (h11)")

    url: str | None = Field(None, description="the running sidecar the CLI talks to (SHIFTWATCH_URL); "
                                              "default: the discovery file beside db_path")

    lake_path: str | None = Field(None, description="fleet Parquet lake root (DESIGN §9)")
    lake_replica: str | None = Field(None, description="this sidecar's replica id in the lake")
    spark_master: str = Field("local[2]", description="Spark master URL of the fleet spark engine")
    fleet_rff_features: int = Field(64, ge=2, description="random Fourier features per partial")
    fleet_rff_seed: int = Field(0, ge=0, description="seed of the partials' feature map")
    fleet_sample_k: int = Field(500, ge=0, description="bottom-k sample size per partial")
    @model_validator(mode="after")
    def _state_dirs_beside_the_db(self) -> Settings:
        """Default state directories go in ``db_path``'s directory (see the class docstring).

        Written into ``__dict__`` so that they stay out of ``model_fields_set``: they remain
        defaults, which :func:`load_settings` relies on to let the config file set them.
        """
        home = self.db_path.parent
        for name in _BESIDE_THE_DB:
            if name not in self.model_fields_set:
                self.__dict__[name] = home / type(self).model_fields[name].default
        return self

    def bearer_token(self) -> str | None:
        """The token the server requires, or ``None`` when ``auth`` is ``off``.

        Raises :class:`ConfigError` for an empty token, an empty or unreadable token file, both
        a token and a token file, or neither while ``auth`` is ``on``: a sidecar never serves
        without a token by accident.
        """
        if self.auth == "off":
            return None
        if self.token is not None and self.token_file is not None:
            raise ConfigError("give SHIFTWATCH_TOKEN or SHIFTWATCH_TOKEN_FILE, not both")
        if self.token is not None:
            value = self.token.get_secret_value().strip()
            if not value:
                raise ConfigError("SHIFTWATCH_TOKEN is empty; set a token, or SHIFTWATCH_AUTH=off "
                                  "(--no-auth) to serve without one")
            return value
        if self.token_file is not None:
            return read_token_file(self.token_file)
        raise ConfigError("no bearer token: set SHIFTWATCH_TOKEN or SHIFTWATCH_TOKEN_FILE, or "
                          "SHIFTWATCH_AUTH=off (--no-auth) to serve without one")


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings` from an optional YAML file, the environment and overrides."""
    file_values: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read config: {exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        file_values = loaded
    try:
        # Environment beats the file; explicit overrides beat both.
        env_only = Settings.model_validate({})
        env_set = env_only.model_fields_set
        merged = {**file_values, **{k: getattr(env_only, k) for k in env_set}}
        merged.update({k: v for k, v in overrides.items() if v is not None})
        return Settings.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        origin = f"{config_file}: " if config_file else ""
        raise ConfigError(f"{origin}setting '{where}': {err['msg']}") from exc
