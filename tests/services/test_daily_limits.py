"""DailyLimitService: what a user's payments hold against their daily limit, per business day of
BUSINESS_TIMEZONE; each payment holds at most once and gives back at most once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from payments_api.errors import AppError
from payments_api.models.merchant import Merchant
from payments_api.models.user import User
from payments_api.services.registry import Services
from payments_api.utils import ids
from tests.services.conftest import MakePayment, MakeUser

LIMIT = 50_000
DAY = "2026-03-10"


@pytest.fixture
async def user(make_user: MakeUser) -> User:
    return await make_user(daily_limit=LIMIT)


async def hold(
    services: Services,
    user: User,
    amount: int,
    *,
    payment_id: str | None = None,
    day: str = DAY,
    limit: int = LIMIT,
) -> str:
    """Hold `amount` for a payment (a new one unless `payment_id`); the payment's id."""
    payment_id = payment_id or ids.payment_id()
    await services.limits.hold(
        user_id=user.id, day=day, payment_id=payment_id, amount=amount, limit=limit
    )
    return payment_id


# --- hold -------------------------------------------------------------------------------------


async def test_a_hold_within_the_limit_is_added_to_what_was_spent(
    services: Services, user: User
) -> None:
    assert await services.limits.spent(user.id, DAY) == 0

    await hold(services, user, 30_000)
    assert await services.limits.spent(user.id, DAY) == 30_000
    await hold(services, user, 15_000)
    assert await services.limits.spent(user.id, DAY) == 45_000


async def test_a_hold_that_reaches_the_limit_exactly_is_allowed(
    services: Services, user: User
) -> None:
    await hold(services, user, 30_000)
    await hold(services, user, LIMIT - 30_000)

    assert await services.limits.spent(user.id, DAY) == LIMIT


@pytest.mark.parametrize(
    ("already", "amount"), [(30_000, 20_001), (0, LIMIT + 1), (LIMIT, 1)], ids=str
)
async def test_a_hold_over_the_limit_is_refused_with_what_remains_today(
    services: Services, user: User, already: int, amount: int
) -> None:
    if already:
        await hold(services, user, already)

    with pytest.raises(AppError) as refused:
        await hold(services, user, amount)

    assert refused.value.code == "DAILY_LIMIT_EXCEEDED"
    assert refused.value.status_code == 422
    assert refused.value.extra["remainingToday"] == LIMIT - already
    assert await services.limits.spent(user.id, DAY) == already  # nothing taken


async def test_remaining_today_is_never_negative_when_the_limit_was_lowered(
    services: Services, user: User
) -> None:
    await hold(services, user, 30_000)

    with pytest.raises(AppError) as refused:
        await hold(services, user, 1, limit=20_000)  # an admin lowered the limit meanwhile

    assert refused.value.code == "DAILY_LIMIT_EXCEEDED"
    assert refused.value.extra["remainingToday"] == 0


@pytest.mark.parametrize("amount", [10_000, LIMIT], ids=["below-the-limit", "at-the-limit"])
async def test_holding_twice_for_one_payment_counts_once(
    services: Services, user: User, amount: int
) -> None:
    payment_id = await hold(services, user, amount)

    await hold(services, user, amount, payment_id=payment_id)  # a retry: no error, no count

    assert await services.limits.spent(user.id, DAY) == amount


async def test_the_limit_is_per_user(services: Services, make_user: MakeUser) -> None:
    first, second = await make_user(daily_limit=LIMIT), await make_user(daily_limit=LIMIT)
    await hold(services, first, LIMIT)

    await hold(services, second, LIMIT)

    assert await services.limits.spent(second.id, DAY) == LIMIT


# --- release ----------------------------------------------------------------------------------


async def test_release_gives_back_the_payments_hold_once(
    services: Services, user: User, merchant: Merchant, make_pending_payment: MakePayment
) -> None:
    released = await make_pending_payment(user, merchant, 10_000)
    kept = await make_pending_payment(user, merchant, 4_000)
    day = released.hold_day
    assert kept.hold_day == day

    assert await services.limits.release(released) is True
    assert await services.limits.spent(user.id, day) == 4_000
    assert await services.limits.release(released) is False
    assert await services.limits.spent(user.id, day) == 4_000


async def test_release_of_a_payment_that_held_nothing_gives_back_nothing(
    services: Services, user: User, merchant: Merchant, make_pending_payment: MakePayment
) -> None:
    await make_pending_payment(user, merchant, 10_000)
    never_held = await make_pending_payment(user, merchant, 5_000, hold=False)

    assert await services.limits.release(never_held) is False
    assert await services.limits.spent(user.id, never_held.hold_day) == 10_000


async def test_a_released_hold_frees_the_limit_for_another_payment(
    services: Services, user: User, merchant: Merchant, make_pending_payment: MakePayment
) -> None:
    first = await make_pending_payment(user, merchant, LIMIT)
    await services.limits.release(first)

    await hold(services, user, LIMIT, day=first.hold_day)

    assert await services.limits.spent(user.id, first.hold_day) == LIMIT


# --- the business day -------------------------------------------------------------------------

MIDNIGHTS = [
    # (BUSINESS_TIMEZONE, an instant of local midnight in UTC, the local day it starts)
    ("Asia/Seoul", datetime(2026, 3, 9, 15, 0, tzinfo=UTC), "2026-03-10"),
    ("UTC", datetime(2026, 3, 10, 0, 0, tzinfo=UTC), "2026-03-10"),
    ("America/New_York", datetime(2026, 1, 10, 5, 0, tzinfo=UTC), "2026-01-10"),
]
JUST = timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("service_settings", "midnight", "day"),
    [({"business_timezone": zone}, midnight, day) for zone, midnight, day in MIDNIGHTS],
    ids=[zone for zone, _, _ in MIDNIGHTS],
    indirect=["service_settings"],
)
async def test_the_business_day_turns_at_local_midnight(
    services: Services, midnight: datetime, day: str
) -> None:
    before = (datetime.fromisoformat(day) - timedelta(days=1)).date().isoformat()

    assert services.limits.day_of(midnight - JUST) == before
    assert services.limits.day_of(midnight) == day


async def test_the_default_business_day_is_seouls_not_utcs(services: Services) -> None:
    afternoon_utc = datetime(2026, 3, 9, 15, 30, tzinfo=UTC)  # 00:30 on the 10th in Seoul

    assert services.limits.day_of(afternoon_utc) == "2026-03-10"


async def test_a_hold_just_before_local_midnight_does_not_count_just_after_it(
    services: Services, user: User
) -> None:
    midnight = datetime(2026, 3, 9, 15, 0, tzinfo=UTC)  # Asia/Seoul, the default
    late, early = services.limits.day_of(midnight - JUST), services.limits.day_of(midnight)
    await hold(services, user, LIMIT, day=late)

    await hold(services, user, LIMIT, day=early)  # a new day: the whole limit again

    assert await services.limits.spent(user.id, late) == LIMIT
    assert await services.limits.spent(user.id, early) == LIMIT


async def test_release_gives_back_on_the_day_the_payment_held_not_today(
    services: Services, user: User, merchant: Merchant, make_pending_payment: MakePayment
) -> None:
    midnight = datetime(2026, 3, 9, 15, 0, tzinfo=UTC)
    yesterday = await make_pending_payment(user, merchant, 10_000, at=midnight - JUST)
    today = await make_pending_payment(user, merchant, 7_000, at=midnight)
    assert yesterday.hold_day != today.hold_day

    assert await services.limits.release(yesterday) is True

    assert await services.limits.spent(user.id, yesterday.hold_day) == 0
    assert await services.limits.spent(user.id, today.hold_day) == 7_000
