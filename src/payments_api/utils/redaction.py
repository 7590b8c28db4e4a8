"""Redaction, the part of the one logger that no line can skip: sensitive keys are replaced,
credentials and card-number-like digit runs inside strings are masked, and CR/LF are stripped
from every string so a user-supplied value cannot forge a log line."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from structlog.typing import EventDict, WrappedLogger

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


SCRUBS_KEPT = 4096
SCRUB_KEPT_LENGTH = 256
"""Short strings' verdicts are remembered (SCRUBS_KEPT of them, each at most this long): an
access line's path and user agent repeat from request to request, its regexes need not."""


def scrub_text(text: str) -> str:
    """Strip line breaks and mask credentials and card numbers inside one string."""
    if len(text) <= SCRUB_KEPT_LENGTH:
        return _scrub_short(text)
    return _scrub_text(text)


@functools.lru_cache(maxsize=SCRUBS_KEPT)
def _scrub_short(text: str) -> str:
    return _scrub_text(text)


def _scrub_text(text: str) -> str:
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
