"""Settings validation and the command line: refusals a deployment sees before serving."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from payments_api.config.settings import Settings, format_settings_error
from tests.fixtures.servers import free_port

VENV_BIN = Path(sys.executable).parent
CONTRACT_VARIABLES = [name.upper() for name in Settings.model_fields]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests see only the variables they set themselves."""
    for name in CONTRACT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def load() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def refusal(monkeypatch: pytest.MonkeyPatch, **variables: str) -> str:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        load()
    return format_settings_error(caught.value)


def test_defaults_load_without_any_environment() -> None:
    settings = load()
    assert settings.app_env == "development"
    assert settings.max_body_bytes == 1_048_576
    assert settings.allowed_origins == []


def test_production_without_jwt_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal(monkeypatch, APP_ENV="production")
    assert "JWT_SECRET" in message


def test_production_with_a_31_byte_jwt_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal(monkeypatch, APP_ENV="production", JWT_SECRET="s" * 31)
    assert "JWT_SECRET" in message


def test_production_secret_is_measured_in_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    # 16 characters, but 32 bytes in UTF-8.
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("JWT_SECRET", "\u00e9" * 16)
    assert load().is_production


def test_production_with_a_32_byte_jwt_secret_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("JWT_SECRET", "s" * 32)
    settings = load()
    assert settings.is_production
    assert settings.jwt_signing_key == "s" * 32


def test_development_without_jwt_secret_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "development")
    assert load().jwt_secret is None


def test_allowed_origins_parse_from_a_comma_separated_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://shop.example.com, https://admin.example.com,")
    assert load().allowed_origins == ["https://shop.example.com", "https://admin.example.com"]


def test_trusted_proxies_parse_from_a_comma_separated_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7,::1")
    proxies = load().trusted_proxies
    assert len(proxies) == 3
    assert ipaddress.ip_address("10.20.30.40") in proxies[0]
    assert ipaddress.ip_address("192.168.1.7") in proxies[1]
    assert ipaddress.ip_address("192.168.1.8") not in proxies[1]
    assert ipaddress.ip_address("::1") in proxies[2]


def test_bad_trusted_proxy_is_refused_with_a_readable_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = refusal(monkeypatch, TRUSTED_PROXIES="10.0.0.0/8,proxy.internal")
    assert "TRUSTED_PROXIES" in message


@pytest.mark.parametrize("name", ["MAX_PAYMENT_AMOUNT", "DEFAULT_DAILY_LIMIT"])
def test_money_settings_above_the_schema_bound_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # A ceiling above what any request may carry (10^15) could never be reached.
    assert name in refusal(monkeypatch, **{name: str(10**15 + 1)})


@pytest.mark.parametrize("value", ["1000/15minutes", "100 per minute", "5/second"])
def test_rate_limit_forms_are_accepted(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("RATE_LIMIT", value)
    assert load().rate_limit_item.amount > 0


@pytest.mark.parametrize("value", ["lots", "1000", "per minute", "10/fortnights"])
def test_bad_rate_limit_is_refused_with_a_readable_message(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    message = refusal(monkeypatch, RATE_LIMIT=value)
    assert "RATE_LIMIT" in message
    assert "1000/15minutes" in message  # tells the operator what a good value looks like
    assert "errors.pydantic.dev" not in message


def test_bad_business_timezone_is_refused_with_a_readable_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = refusal(monkeypatch, BUSINESS_TIMEZONE="Mars/Olympus_Mons")
    assert "BUSINESS_TIMEZONE" in message
    assert "Mars/Olympus_Mons" in message
    assert "errors.pydantic.dev" not in message


def test_business_timezone_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUSINESS_TIMEZONE", "Europe/Berlin")
    assert load().timezone.key == "Europe/Berlin"


def test_bootstrap_admin_email_without_password_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = refusal(monkeypatch, BOOTSTRAP_ADMIN_EMAIL="root@example.com")
    assert "BOOTSTRAP_ADMIN_PASSWORD" in message


def test_every_refusal_is_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal(monkeypatch, RATE_LIMIT="lots", BUSINESS_TIMEZONE="Nowhere/City")
    assert "RATE_LIMIT" in message
    assert "BUSINESS_TIMEZONE" in message


# The command line, run as a deployment would run it.


def cli_environment(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CONTRACT_VARIABLES}
    env.update({"APP_ENV": "test", "LOG_LEVEL": "info", **variables})
    return env


def run_cli(
    *args: str, cwd: Path, timeout: float = 30, **variables: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*args],
        cwd=cwd,
        env=cli_environment(**variables),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_python_dash_m_help_exits_zero(tmp_path: Path) -> None:
    result = run_cli(str(VENV_BIN / "python"), "-m", "payments_api", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout


def test_console_script_serve_help_exits_zero(tmp_path: Path) -> None:
    result = run_cli(str(VENV_BIN / "payments-api"), "serve", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for option in ("--host", "--port", "--workers"):
        assert option in result.stdout


def test_serve_refuses_workers_with_the_in_memory_store(tmp_path: Path) -> None:
    result = run_cli(str(VENV_BIN / "payments-api"), "serve", "--workers", "2", cwd=tmp_path)
    assert result.returncode != 0
    assert "in-memory" in (result.stdout + result.stderr)


def test_serve_refuses_a_bad_setting_with_a_readable_message(tmp_path: Path) -> None:
    result = run_cli(
        str(VENV_BIN / "payments-api"),
        "serve",
        "--port",
        str(free_port()),
        cwd=tmp_path,
        APP_ENV="production",
        JWT_SECRET="too-short",
    )
    assert result.returncode != 0
    assert "JWT_SECRET" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_exits_when_mongodb_cannot_be_reached(tmp_path: Path, redis_url: str) -> None:
    result = run_cli(
        str(VENV_BIN / "payments-api"),
        "serve",
        "--port",
        str(free_port()),
        cwd=tmp_path,
        timeout=60,
        MONGODB_URI="mongodb://127.0.0.1:1",
        REDIS_URL=redis_url,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "MongoDB" in output
    assert "mongodb://127.0.0.1:1" in output
