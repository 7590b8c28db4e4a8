"""Process memory for /health, read without third-party packages."""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def memory_usage() -> tuple[int, int]:
    """(current resident set size, peak resident set size) in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_bytes = peak if sys.platform == "darwin" else peak * 1024
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            current = int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        current = peak_bytes
    return current, peak_bytes


SAMPLE_INTERVAL_SECONDS = 1.0


class MemorySample:
    """`memory_usage()` read at most once per SAMPLE_INTERVAL_SECONDS: a poll of /health every
    few milliseconds re-read /proc for an eighth of its time, for figures that a second-old
    reading gives as well."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.taken_at = -SAMPLE_INTERVAL_SECONDS
        self.value = (0, 0)

    def current(self) -> tuple[int, int]:
        now = self.clock()
        if now - self.taken_at >= SAMPLE_INTERVAL_SECONDS:
            self.value = memory_usage()
            self.taken_at = now
        return self.value
