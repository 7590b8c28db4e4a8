"""The sandbox's magic amounts: what a charge does by the last three digits of its amount.

The charge route (app.py) decides by these constants, and the OpenAPI description lists
`ENDINGS` (routes/payment_examples.py), so the two cannot tell different stories: a new ending
here without its description fails tests/integration/test_openapi_examples.py.
"""

from __future__ import annotations

from dataclasses import dataclass

DECLINED = 402
"""Declined at once: `failureCode` `CARD_DECLINED`, nothing charged."""
SLOW = 408
"""Charged at once, answered only GATEWAY_TIMEOUT_SECONDS + 2 s later: the caller times out
while the charge stands."""
LATE = 409
"""Held on its way: charged only GATEWAY_TIMEOUT_SECONDS + RECONCILE_AFTER_SECONDS + 3 s later,
unless the paymentId was reversed meanwhile: a charge request that arrives late."""
UNAVAILABLE = 503
"""A 503 at once, and nothing charged."""

SLOW_EXTRA_SECONDS = 2
LATE_EXTRA_SECONDS = 3


@dataclass(frozen=True, slots=True)
class Ending:
    digits: int
    name: str
    """A short name, for an example in the description."""
    sandbox_does: str


ENDINGS: tuple[Ending, ...] = (
    Ending(DECLINED, "declined", "declines it: `failureCode` `CARD_DECLINED`, nothing charged"),
    Ending(
        SLOW,
        "slowGateway",
        f"charges at once but answers only `GATEWAY_TIMEOUT_SECONDS` + {SLOW_EXTRA_SECONDS} s "
        "later, so the service times out while the charge stands",
    ),
    Ending(
        LATE,
        "lateCharge",
        "holds the request and charges only `GATEWAY_TIMEOUT_SECONDS` + "
        f"`RECONCILE_AFTER_SECONDS` + {LATE_EXTRA_SECONDS} s later, unless the payment was "
        "reversed meanwhile: a charge request that arrives late",
    ),
    Ending(UNAVAILABLE, "gatewayUnavailable", "answers 503 at once and charges nothing"),
)
"""Every magic ending; an amount with any other ending is approved."""


def ending_of(amount: int) -> int:
    return amount % 1000
