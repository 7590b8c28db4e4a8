"""/health's memory figures: read from the process at most once a second."""

from __future__ import annotations

import pytest

from payments_api.utils import memory
from payments_api.utils.memory import SAMPLE_INTERVAL_SECONDS, MemorySample


def test_memory_is_read_at_most_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter([(100, 200), (300, 400)])
    reads: list[tuple[int, int]] = []

    def read() -> tuple[int, int]:
        reads.append(next(readings))
        return reads[-1]

    monkeypatch.setattr(memory, "memory_usage", read)
    now = [1000.0]
    sample = MemorySample(clock=lambda: now[0])

    assert sample.current() == (100, 200)
    now[0] += SAMPLE_INTERVAL_SECONDS / 2
    assert sample.current() == (100, 200)
    assert len(reads) == 1
    now[0] += SAMPLE_INTERVAL_SECONDS / 2
    assert sample.current() == (300, 400)
    assert len(reads) == 2


def test_the_first_reading_is_real() -> None:
    rss, max_rss = MemorySample().current()
    assert 0 < rss <= max_rss
