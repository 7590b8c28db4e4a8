"""The one logger: structlog, one JSON object per line on standard output.

Redaction is a processor, so no call site can forget it: sensitive keys are replaced,
credentials and card-number-like digit runs inside strings are masked, and CR/LF are stripped
from every string so a user-supplied value cannot forge a log line.

Records of the standard library's `logging` — uvicorn's own loggers, asyncio's, Python's
warnings — become the same lines through the same processors (`stdlib_log_config`, which
`serve` hands uvicorn, so every server process applies it, `--workers` ones included).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from payments_api import __version__

REDACTED = "[REDACTED]"

_SENSITIVE_KEY = re.compile(
    r"pass(word|wd)?$|passwd|password|secret|token|authorization|cookie|api[_-]?key|"
    r"credential|card[_-]?number|^pan$|cvc|cvv|private[_-]?key",
    re.IGNORECASE,
)
# Credentials that can turn up inside free text (a header echoed in a message, say).
_SECRET_IN_TEXT = re.compile(
    r"(?P<bearer>\bBearer\s+)\S+"
    r"|\b(?P<prefix>sk|whsec)_[A-Za-z0-9_\-]{8,}"
    r"|\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
)
# Runs of 13-19 digits, optionally grouped by single spaces or dashes (4111 1111 1111 1111).
_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9](?:[ \-]?[0-9]){12,18}(?![0-9])")
_DIGIT_GROUP = re.compile(r"[0-9]+")
_LINE_BREAKS = re.compile(r"[\r\n]+")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    run = match.group(0)
    digits = run.replace(" ", "").replace("-", "")
    if 13 <= len(digits) <= 19 and _luhn_valid(digits):
        return "*" * (len(digits) - 4) + digits[-4:]
    # The run may be a card number beside another number ("qty 2 4111 1111 1111 1111"):
    # try each span of whole groups, longest first.
    groups = list(_DIGIT_GROUP.finditer(run))
    for size in range(len(groups) - 1, 0, -1):
        for first in range(len(groups) - size + 1):
            span = groups[first : first + size]
            inner = "".join(group.group(0) for group in span)
            if 13 <= len(inner) <= 19 and _luhn_valid(inner):
                start, end = span[0].start(), span[-1].end()
                return run[:start] + "*" * (len(inner) - 4) + inner[-4:] + run[end:]
    return run


def _mask_secret(match: re.Match[str]) -> str:
    if match.group("bearer"):
        return match.group("bearer") + REDACTED
    if match.group("prefix"):
        return match.group("prefix") + "_" + REDACTED
    return REDACTED


def scrub_text(text: str) -> str:
    """Strip line breaks and mask credentials and card numbers inside one string."""
    if "\n" in text or "\r" in text:
        text = _LINE_BREAKS.sub(" ", text)
    if "_" in text or "Bearer" in text or "eyJ" in text:
        text = _SECRET_IN_TEXT.sub(_mask_secret, text)
    if len(text) >= 13:
        text = _DIGIT_RUN.sub(_mask_card, text)
    return text


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {
            key: (REDACTED if _is_sensitive(key) else _scrub(item)) for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_scrub(item) for item in value]
    return value


@functools.lru_cache(maxsize=4096)
def _is_sensitive_name(key: str) -> bool:
    return _SENSITIVE_KEY.search(key) is not None


def _is_sensitive(key: object) -> bool:
    """Field names repeat on every line, so their verdict is remembered."""
    return isinstance(key, str) and _is_sensitive_name(key)


def redact(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: nothing secret leaves the process through a log line."""
    for key, value in event_dict.items():
        if _is_sensitive(key):
            event_dict[key] = REDACTED
        elif isinstance(value, (str, Mapping, list, tuple)):
            event_dict[key] = _scrub(value)
    return event_dict


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

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


_WRITER = _LineWriter()
_STATIC_FIELDS = _StaticFields("development")


def _json_dumps(value: Any, **kwargs: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


def _rendering() -> list[Processor]:
    """From an event's fields to its JSON line: the processors every line goes through."""
    return [
        structlog.processors.format_exc_info,
        redact,  # before the fields this process adds itself, which need no scrubbing
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
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *_rendering()],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
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
