"""The one settings object: every variable of the contract, read once and validated at start-up."""

from __future__ import annotations

import ipaddress
from functools import cached_property
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from limits import RateLimitItem, parse
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from payments_api.config.constants import MAX_MONEY

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
OtlpProtocol = Literal["http/protobuf", "grpc"]

DEV_JWT_SECRET = "dev-only-jwt-secret-never-use-in-production"  # noqa: S105
MIN_PRODUCTION_SECRET_BYTES = 32


def _split_csv(value: object) -> object:
    """Accept `a,b,c` (and tolerate a JSON-less empty value) for list settings."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Configuration from the environment and an optional `.env` file.

    Field names map to the upper-case variables of the contract (`app_env` is `APP_ENV`).
    """

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    app_env: Literal["development", "test", "production"] = "development"
    port: int = Field(default=3000, ge=1, le=65535)
    mongodb_uri: str | None = None
    mongodb_db: str = Field(default="payments", min_length=1)
    mongodb_transactions: Literal["auto", "on", "off"] = "auto"
    redis_url: str | None = None
    redis_cluster: bool = False
    """True: REDIS_URL names one node of a Redis Cluster (the client finds the others)."""
    gateway_url: str | None = None
    gateway_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    jwt_secret: SecretStr | None = None
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86_400)
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    trusted_proxies: Annotated[list[IpNetwork], NoDecode] = Field(default_factory=list)
    rate_limit: str = "1000/15minutes"
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # At most the schema bound of amounts and limits, so these service rules can be reached.
    max_payment_amount: int = Field(default=10_000_000, gt=0, le=MAX_MONEY)
    default_daily_limit: int = Field(default=2_000_000, ge=0, le=MAX_MONEY)
    business_timezone: str = "Asia/Seoul"
    reconcile_after_seconds: int = Field(default=60, ge=1)
    authorization_ttl_seconds: int = Field(default=604_800, ge=1, le=31_536_000)
    """How long a manual-capture payment's authorization may wait for its capture before the
    worker voids it (at most a year; card networks hold an authorization for days)."""
    run_worker: bool = False
    slow_query_ms: int = Field(default=100, ge=0)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    bootstrap_admin_email: str | None = None
    bootstrap_admin_password: SecretStr | None = None
    # OpenTelemetry's standard variables that decide whether and where traces go; the SDK reads
    # the others itself (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, OTEL_TRACES_SAMPLER, OTEL_BSP_*…).
    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_otlp_traces_endpoint: str | None = None
    otel_exporter_otlp_protocol: OtlpProtocol = "http/protobuf"
    otel_exporter_otlp_traces_protocol: OtlpProtocol | None = None
    otel_sdk_disabled: bool = False
    otel_service_name: str = Field(default="payments-api", min_length=1)

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_proxies(cls, value: object) -> object:
        parts = _split_csv(value)
        if not isinstance(parts, list):
            return parts
        try:
            return [ipaddress.ip_network(str(part), strict=False) for part in parts]
        except ValueError as exc:
            raise ValueError(
                f"must be IP addresses or CIDR ranges separated by commas ({exc})"
            ) from exc

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator(
        "mongodb_uri",
        "redis_url",
        "gateway_url",
        "otel_exporter_otlp_endpoint",
        "otel_exporter_otlp_traces_endpoint",
        "otel_exporter_otlp_traces_protocol",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("rate_limit")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(
                "must look like '1000/15minutes' or '100 per minute' (count per period)"
            ) from exc
        return value

    @field_validator("business_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. 'Asia/Seoul')") from exc
        return value

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        if self.app_env == "production":
            secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
            if len(secret.encode()) < MIN_PRODUCTION_SECRET_BYTES:
                raise ValueError(
                    "JWT_SECRET must be set to at least 32 bytes when APP_ENV=production"
                )
        if self.redis_cluster and self.redis_url is None:
            raise ValueError("REDIS_CLUSTER=true needs REDIS_URL: one node of the cluster")
        if bool(self.bootstrap_admin_email) != bool(self.bootstrap_admin_password):
            raise ValueError(
                "BOOTSTRAP_ADMIN_EMAIL and BOOTSTRAP_ADMIN_PASSWORD must be set together"
            )
        return self

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def uses_in_memory_store(self) -> bool:
        """True when MongoDB or Redis is an in-process stand-in no other process can reach."""
        return self.mongodb_uri is None or self.redis_url is None

    @property
    def jwt_signing_key(self) -> str:
        return self.jwt_secret.get_secret_value() if self.jwt_secret else DEV_JWT_SECRET

    @property
    def tracing_enabled(self) -> bool:
        """Traces are exported when an OTLP endpoint is set and the SDK is not disabled."""
        endpoint = self.otel_exporter_otlp_traces_endpoint or self.otel_exporter_otlp_endpoint
        return endpoint is not None and not self.otel_sdk_disabled

    @property
    def otlp_traces_protocol(self) -> OtlpProtocol:
        return self.otel_exporter_otlp_traces_protocol or self.otel_exporter_otlp_protocol

    @property
    def otlp_traces_endpoint(self) -> str | None:
        """Where spans go, as the specification reads the variables: the traces endpoint as
        given, else the base endpoint (with `/v1/traces` appended over HTTP)."""
        if self.otel_exporter_otlp_traces_endpoint:
            return self.otel_exporter_otlp_traces_endpoint
        base = self.otel_exporter_otlp_endpoint
        if base is None or self.otlp_traces_protocol == "grpc":
            return base
        return base.rstrip("/") + "/v1/traces"

    @cached_property
    def rate_limit_item(self) -> RateLimitItem:
        return parse(self.rate_limit)

    @cached_property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.business_timezone)


def format_settings_error(exc: Exception) -> str:
    """Turn a pydantic ValidationError into lines naming the environment variable at fault."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    lines = ["Invalid configuration:"]
    for error in exc.errors():
        name = "_".join(str(part) for part in error["loc"][:1]).upper() or "settings"
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"  {name}: {message}")
    return "\n".join(lines)
