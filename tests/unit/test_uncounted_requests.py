"""While Redis cannot count requests, the rate limiter lets them through and says so: one
error line a minute with the number let through since the last, not one line per request."""

from __future__ import annotations

from redis.exceptions import NoPermissionError

from payments_api.config.settings import Settings
from payments_api.middleware.rate_limit import UncountedRequests
from tests.fixtures.apps import capture_logs


def test_one_error_line_per_minute_with_the_number_let_through() -> None:
    now = [1000.0]
    uncounted = UncountedRequests(every_seconds=60, clock=lambda: now[0])
    refused = NoPermissionError("no scripts")

    with capture_logs(Settings(_env_file=None)) as logs:  # type: ignore[call-arg]
        for _ in range(5):  # the first is reported at once, the next four wait
            uncounted.let_through(refused)
            now[0] += 10
        now[0] += 20  # a minute since the first report
        uncounted.let_through(refused)
        uncounted.let_through(refused)

    reports = [r for r in logs.records if r["message"].startswith("rate limiter cannot count")]
    assert [(r["level"], r["uncounted"]) for r in reports] == [("error", 1), ("error", 5)]
    assert reports[0]["error"] == "NoPermissionError"
    assert uncounted.since_report == 1
