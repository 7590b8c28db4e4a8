"""The fixed list of mutants of the money rules, each the smallest plausible slip that breaks
one rule, and the tests that must kill it.

`find` is an exact snippet of today's source and must occur exactly once in its file; a
refactor that moves the code makes the runner (and `tests/unit/test_mutants.py`) refuse the
mutant by name, so whoever refactors updates it instead of "killing" a mutant that changed
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path("src") / "payments_api"
"""Where the mutated files live, relative to the repository (or a copy of its `src/`)."""


class MutantDoesNotApply(Exception):
    """A mutant's `find` is not exactly once in its file (the code moved or changed)."""


@dataclass(frozen=True, slots=True)
class Mutant:
    name: str
    why: str
    """One line: the bug it models."""
    path: str
    """The mutated file, relative to src/payments_api."""
    find: str
    replace: str
    tests: tuple[str, ...]
    """Test files or node ids, relative to the repository, that must kill it."""

    def file_in(self, root: Path) -> Path:
        """The mutated file under `root`: the repository, or a directory holding a copy of
        its `src/`."""
        return root / PACKAGE / self.path

    def apply_to(self, source: str) -> str:
        """`source` with the mutation made; MutantDoesNotApply unless `find` is there once."""
        count = source.count(self.find)
        if count != 1:
            raise MutantDoesNotApply(
                f"mutant {self.name!r}: its `find` occurs {count} times in "
                f"{PACKAGE / self.path} (it must occur exactly once): update the mutant"
            )
        return source.replace(self.find, self.replace, 1)

    @property
    def module(self) -> str:
        """The dotted name of the mutated module."""
        return ".".join(("payments_api", *Path(self.path).with_suffix("").parts))


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        name="daily-limit-check-then-act",
        why="the hold reads `spent`, compares in Python, then `$inc`s without the guard: "
        "concurrent payments pass the limit",
        path="models/daily_limit.py",
        find="""\
    doc_id = document_id(user_id, day)
    try:
        result = await db[COLLECTION].update_one(
            {"_id": doc_id, "spent": {"$lte": limit - amount}, "holds": {"$ne": payment_id}},
""",
        replace="""\
    doc_id = document_id(user_id, day)
    current = await find(db, user_id, day)
    if current is not None and current["spent"] + amount > limit:
        return HoldResult.OVER_LIMIT
    try:
        result = await db[COLLECTION].update_one(
            {"_id": doc_id, "holds": {"$ne": payment_id}},
""",
        tests=(
            "tests/integration/test_payment_concurrency.py",
            "tests/integration/test_races_across_apps.py",
        ),
    ),
    Mutant(
        name="refund-reservation-unguarded",
        why="the refund reservation `$inc`s `refundedAmount` without its `$lte` guard: "
        "racing refunds reserve more than the payment's amount",
        path="services/refunds.py",
        find="""\
            {"status": {"$in": REFUNDABLE}, "refundedAmount": refunded},
""",
        replace="""\
            {"status": {"$in": REFUNDABLE}},
""",
        tests=(
            "tests/integration/test_refund_concurrency.py",
            "tests/integration/test_races_across_apps.py",
            "tests/integration/test_refund.py",
        ),
    ),
    Mutant(
        name="refund-guard-read-then-checked",
        why="the reservation keeps only its `$lte` bound when an expectedAvailableAmount is "
        "given: overlapping blind retries that all read the same amount left all refund",
        path="services/refunds.py",
        find="""\
        if expected is not None:
            refunded = payment.captured_amount - expected
""",
        replace="",
        tests=("tests/integration/test_refund_guard.py",),
    ),
    Mutant(
        name="replay-charges-again",
        why="a replayed key sends its payment to the gateway again instead of answering "
        "with the stored result (trusting the gateway's idempotency)",
        path="services/payments.py",
        find="""\
        if payment is None:
            raise PaymentNotFound()
        return CreatedPayment(payment, replayed=True)
""",
        replace="""\
        if payment is None:
            raise PaymentNotFound()
        return CreatedPayment(await self._charge(payment), replayed=True)
""",
        tests=(
            "tests/integration/test_idempotency.py",
            "tests/integration/test_payment_concurrency.py::"
            "test_twenty_concurrent_requests_with_one_key_make_one_payment_and_one_charge",
        ),
    ),
    Mutant(
        name="cancel-keeps-the-hold",
        why="a cancel returns the charge but never gives its amount back to the daily limit",
        path="services/cancellations.py",
        find="""\
            await self.limits.release(payment, session)
            updated = await payment_store.update_where(
""",
        replace="""\
            updated = await payment_store.update_where(
""",
        tests=("tests/integration/test_cancel.py",),
    ),
    Mutant(
        name="declined-payment-ledger-record",
        why="every step is recorded in the ledger like a completion: a declined payment (or "
        "an authorization, or a void) gets a `payment` record for money that never moved",
        path="services/payment_steps.py",
        find="""\
                updated = await self._compare_and_set(step, now, session)
                await self.publish(updated, event, session)
""",
        replace="""\
                updated = await self._compare_and_set(step, now, session)
                await self.publish(updated, event, session)
                await ledger_store.record_movement(
                    self.db,
                    before,
                    "payment",
                    reference=before.id,
                    amount=before.amount,
                    description=f"Payment for {before.product_name}",
                    now=now,
                    session=session,
                )
""",
        tests=(
            "tests/integration/test_payment_create.py",
            "tests/integration/test_payment_faults.py",
        ),
    ),
    Mutant(
        name="webhook-signature-without-dot",
        why='the webhook HMAC is taken over "<t><body>" instead of the contract\'s '
        '"<t>.<body>": no receiver can verify it',
        path="services/webhooks.py",
        find="""\
    signed = f"{timestamp}.".encode() + body
""",
        replace="""\
    signed = f"{timestamp}".encode() + body
""",
        tests=("tests/integration/test_events.py",),
    ),
    Mutant(
        name="ledger-record-after-compare-and-set",
        why="a completion writes its `payment` ledger record after its compare-and-set: a "
        "process that dies between the two leaves a completed payment the ledger never saw",
        path="services/payment_steps.py",
        find="""\
                if step.movement is not None:
                    await ledger_store.record_movement(
                        self.db,
                        before,
                        step.movement.type,
                        reference=before.id,
                        amount=step.movement.amount,
                        description=step.movement.description,
                        now=now,
                        session=session,
                    )
                if step.trim_to is not None:
                    await self.limits.trim_to_capture(before, step.trim_to, session)
                updated = await self._compare_and_set(step, now, session)
""",
        replace="""\
                if step.trim_to is not None:
                    await self.limits.trim_to_capture(before, step.trim_to, session)
                updated = await self._compare_and_set(step, now, session)
                if step.movement is not None:
                    await ledger_store.record_movement(
                        self.db,
                        before,
                        step.movement.type,
                        reference=before.id,
                        amount=step.movement.amount,
                        description=step.movement.description,
                        now=now,
                        session=session,
                    )
""",
        tests=("tests/integration/test_settlement_races.py",),
    ),
    Mutant(
        name="lost-settlement-keeps-its-ledger-record",
        why="a completion that writes its `payment` ledger record and then loses its "
        "compare-and-set to a failure leaves the record behind",
        path="services/payment_steps.py",
        find="""\
            await event_store.discard_draft(self.db, event.dedupe_key)
            if current.status == PaymentStatus.FAILED:
                await ledger_store.discard(self.db, "payment", current.id)
""",
        replace="""\
            await event_store.discard_draft(self.db, event.dedupe_key)
""",
        tests=("tests/integration/test_settlement_races.py",),
    ),
    Mutant(
        name="refund-event-number-unguarded",
        why="a refund's success stores its change without naming the event count it read: "
        "racing refunds give two events one number and a wrong previousStatus",
        path="services/refund_settlement.py",
        find="""\
                {"pendingRefunds.refundId": refund.id, **change.guard},
""",
        replace="""\
                {"pendingRefunds.refundId": refund.id},
""",
        tests=(
            "tests/integration/test_event_sequence.py",
            "tests/services/test_event_sequence.py",
        ),
    ),
    Mutant(
        name="draft-rewritten-by-a-stale-try",
        why="a try of a refund's success rewrites the draft whatever change it describes: a "
        "slow try that read an older payment overwrites the winner's, and its number is reused",
        path="models/event.py",
        find="""\
            "data.sequence": {"$lt": event.data["sequence"]},
""",
        replace="",
        tests=("tests/services/test_event_sequence.py",),
    ),
    Mutant(
        name="authorization-step-unguarded",
        why="a capture, cancel or expiry begins its step on any authorized payment, not only "
        "one no other step has begun on: a capture and a void both win",
        path="models/authorization_steps.py",
        find="""\
        {**FREE, **(also or {})},
""",
        replace="""\
        {**AUTHORIZED, **(also or {})},
""",
        tests=("tests/integration/test_capture_races.py",),
    ),
    Mutant(
        name="capture-asked-again-with-a-new-id",
        why="a capture asked again (after a lost answer) sends a new capture id, so the "
        "gateway refuses it as a second capture and the money taken is never recorded",
        path="services/captures.py",
        find="""\
            payment_id=payment.id, capture_id=step.step_id, amount=step.amount
""",
        replace="""\
            payment_id=payment.id, capture_id=ids.new_id("cap"), amount=step.amount
""",
        tests=("tests/integration/test_authorization_reconciliation.py",),
    ),
)


def by_name(name: str) -> Mutant:
    for mutant in MUTANTS:
        if mutant.name == name:
            return mutant
    known = ", ".join(m.name for m in MUTANTS)
    raise KeyError(f"no mutant named {name!r} (known: {known})")
