"""Which OTEL_* variables turn traces on and where they go, as OpenTelemetry's specification
reads them: a base endpoint gets `/v1/traces` over HTTP and is used as is over gRPC; the
traces-only variables win over the general ones; OTEL_SDK_DISABLED turns it all off."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from payments_api.config.settings import Settings
from tests.unit.test_settings import load, refusal


def with_env(monkeypatch: pytest.MonkeyPatch, **variables: str) -> Settings:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return load()


def test_no_endpoint_means_no_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not load().tracing_enabled
    assert not with_env(monkeypatch, OTEL_EXPORTER_OTLP_ENDPOINT="  ").tracing_enabled


@pytest.mark.parametrize(
    ("variables", "protocol", "endpoint"),
    [
        pytest.param(  # http/protobuf: the specification's default protocol
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"},
            "http/protobuf",
            "http://collector:4318/v1/traces",
            id="a base endpoint over http gets the traces path",
        ),
        pytest.param(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            },
            "grpc",
            "http://collector:4317",
            id="a base endpoint over grpc is used as is",
        ),
        pytest.param(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:9999/custom",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            },
            "http/protobuf",
            "http://traces:9999/custom",
            id="the traces variables win over the general ones",
        ),
    ],
)
def test_where_spans_go(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], protocol: str, endpoint: str
) -> None:
    settings = with_env(monkeypatch, **variables)
    assert settings.tracing_enabled
    assert settings.otlp_traces_protocol == protocol
    assert settings.otlp_traces_endpoint == endpoint


def test_the_sdk_disabled_turns_traces_off(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = with_env(
        monkeypatch, OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4318", OTEL_SDK_DISABLED="true"
    )
    assert not settings.tracing_enabled


def test_an_unknown_protocol_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal(monkeypatch, OTEL_EXPORTER_OTLP_PROTOCOL="thrift")
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" in message
    with pytest.raises(ValidationError):
        Settings(_env_file=None, otel_exporter_otlp_traces_protocol="udp")  # type: ignore[call-arg,arg-type]


def test_off_the_app_loads_nothing_of_the_sdk_and_adds_no_layer() -> None:
    """Off costs nothing: no tracer provider, no instrumentation, no exporter, no middleware in
    the request's path. (redis-py imports the SDK's metrics module itself when it is
    installed, to find out whether it is; that is not ours, and does no work per command.)"""
    probe = (
        "import sys\n"
        "from payments_api.app import create_app\n"
        "from payments_api.config.settings import Settings\n"
        "app = create_app(Settings(_env_file=None))\n"
        "names = [m.cls.__name__ for m in app.user_middleware]\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk.trace', "
        "'opentelemetry.instrumentation', 'opentelemetry.exporter')))\n"
        "print(names[0], loaded)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(  # a fresh interpreter: this one has imported the SDK for tests
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "EdgeMiddleware"
    assert result.stdout.strip().endswith("[]")
