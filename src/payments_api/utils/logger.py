"""The one logger: structlog, one JSON object per line on standard output.

Redaction (`utils/redaction.py`) is a processor, so no call site can forget it. Records of the
standard library's `logging` — uvicorn's own loggers, asyncio's, Python's warnings — become the
same lines through the same processors (`stdlib_log_config`, which `serve` hands uvicorn, so
every server process applies it, `--workers` ones included).

The access line, one per request, is the exception to the processor chain: `log_request`
builds it directly — the same fields every line has, the same scrubbing of every field a
client supplied, the same writer and level — because the chain's generic steps were a tenth
of a cached read.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from payments_api import __version__
from payments_api.utils.clock import iso_now
from payments_api.utils.redaction import redact, scrub_text
from payments_api.utils.tracing import add_trace_ids, trace_ids


class _StaticFields:
    """Adds the fields every line carries (service, environment, version, pid)."""

    def __init__(self, environment: str) -> None:
        self.environment = environment

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", "payments-api")
        event_dict.setdefault("environment", self.environment)
        event_dict.setdefault("version", __version__)
        event_dict.setdefault("pid", os.getpid())
        return event_dict


class _LineWriter:
    """Writes each rendered line to `stream`, or to the current `sys.stdout` when unset.

    One instance serves every logger, so loggers can be cached on first use and still follow
    a later `configure_logging(stream=...)` (tests capture the log this way).
    """

    def __init__(self) -> None:
        self.stream: TextIO | None = None

    def msg(self, message: str) -> None:
        stream = self.stream or sys.stdout
        stream.write(message + "\n")
        stream.flush()

    def write_line(self, line: bytes) -> None:
        """A line already encoded: to the stream's bytes beneath it where it has them (every
        line is flushed, so nothing of the text layer is pending to go first)."""
        stream = self.stream or sys.stdout
        buffer = getattr(stream, "buffer", None)
        if buffer is None:
            self.msg(line.decode())
            return
        buffer.write(line + b"\n")
        buffer.flush()

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


_WRITER = _LineWriter()
_STATIC_FIELDS = _StaticFields("development")


_LEVELS = logging.getLevelNamesMapping()
_REQUEST_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class _Threshold:
    """The configured level, for `log_request` (structlog's loggers filter by their own)."""

    level = logging.INFO


_THRESHOLD = _Threshold()


def _json_bytes(value: Any) -> bytes:
    """orjson; the standard library for what orjson refuses (an integer beyond 64 bits, a lone
    surrogate in a string, which is escaped rather than lose the line)."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        text = json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8", "backslashreplace")


def _json_dumps(value: Any, **kwargs: Any) -> str:
    """structlog's serializer: the same JSON as text."""
    return _json_bytes(value).decode()


_CLIENT_SUPPLIED = ("requestId", "path", "userAgent", "ip")
"""The access line's fields whose text a client chose (`ip` through `X-Forwarded-For`); the
others are the server's own: the parsed method, the status, the duration, our own ids."""


def log_request(level: str, fields: dict[str, Any]) -> None:
    """The access line of one request (`level` info, warning or error), its client-supplied
    fields redacted as any line's strings are (`scrub_text`)."""
    if _REQUEST_LEVELS[level] < _THRESHOLD.level:
        return
    for key in _CLIENT_SUPPLIED:
        value = fields.get(key)
        if value:
            fields[key] = scrub_text(value)
    line = {
        "@timestamp": iso_now(6),
        "level": level,
        "message": "request completed",
        "service": "payments-api",
        "environment": _STATIC_FIELDS.environment,
        "version": __version__,
        "pid": os.getpid(),
        "component": "http",
        **fields,
        **trace_ids(),
    }
    _WRITER.write_line(_json_bytes(line))


def _rendering() -> list[Processor]:
    """From an event's fields to its JSON line: the processors every line goes through."""
    return [
        structlog.processors.format_exc_info,
        redact,  # before the fields this process adds itself, which need no scrubbing
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="@timestamp"),
        _STATIC_FIELDS,
        structlog.processors.EventRenamer("message"),
        structlog.processors.JSONRenderer(serializer=_json_dumps),
    ]


def configure_logging(
    level: str = "info", environment: str = "development", stream: TextIO | None = None
) -> None:
    """Configure the process-wide logger. Called once per app; tests pass their own stream."""
    _WRITER.stream = stream
    _STATIC_FIELDS.environment = environment
    _THRESHOLD.level = _LEVELS[level.upper()]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *_rendering()],
        wrapper_class=structlog.make_filtering_bound_logger(_THRESHOLD.level),
        logger_factory=lambda *_: _WRITER,
        cache_logger_on_first_use=True,
    )


def _component(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """A standard-library record's logger name (`uvicorn.error`) is the line's component."""
    record = event_dict.get("_record")
    if isinstance(record, logging.LogRecord):
        event_dict.setdefault("component", record.name)
    return event_dict


class JSONLineHandler(logging.Handler):
    """A `logging` handler writing each record as the app's JSON line, through the same
    processors and the same writer as structlog's own lines."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=[structlog.contextvars.merge_contextvars, _component],
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *_rendering(),
                ],
            )
        )

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _WRITER.msg(self.format(record))
        except Exception:
            self.handleError(record)


def json_line_handler() -> JSONLineHandler:
    """The handler of `stdlib_log_config`. Python's warnings are routed to `logging` here,
    where the configuration is applied in each process, so they too become JSON lines."""
    logging.captureWarnings(True)
    return JSONLineHandler()


def stdlib_log_config(level: str = "info") -> dict[str, Any]:
    """A `logging.config.dictConfig` configuration (uvicorn's `log_config`): uvicorn's own
    loggers write JSON lines at `level`, every other logger its warnings and errors, all on
    standard output. uvicorn's access log stays off: the app logs each request itself."""
    name = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"json": {"()": f"{__name__}.json_line_handler"}},
        "loggers": {
            "uvicorn": {"handlers": ["json"], "level": name, "propagate": False},
            "uvicorn.error": {"level": name},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
        },
        "root": {"handlers": ["json"], "level": "WARNING"},
    }


def get_logger(name: str | None = None) -> Any:
    """The one logger; `name` becomes the `component` field. Lazy: nothing is bound before
    `configure_logging` runs."""
    return structlog.get_logger(component=name) if name else structlog.get_logger()


def log_business_event(event: str, **fields: Any) -> None:
    """A business fact (a payment completed, a merchant created) that operators may count."""
    structlog.get_logger().info(event, business=True, **fields)


def log_security_event(event: str, **fields: Any) -> None:
    """A security-relevant fact (failed login, denied access, rate-limit hit)."""
    structlog.get_logger().warning(event, security=True, **fields)
