"""What the two worker loops (event delivery in services/events.py, reconciliation in
services/reconciliation.py) share: how long a claim's lease runs, how much one pass takes on,
where a worker reads the time, and who a worker is.

Plain module values and one function, not an object both services take: the two loops use the
same values, nothing sets them per instance, and the constructors keep their `clock=` and
`worker_id=` keywords. The services read LEASE_SECONDS and BATCH through this module when they
run (`workers.LEASE_SECONDS`, never `from … import LEASE_SECONDS`), so a test that shortens the
lease patches this one place and reaches both. What differs between the loops — how long one
piece of work may keep renewing its lease (`MAX_HOLD_SECONDS`) — stays in each service.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import datetime

from payments_api.utils import ids
from payments_api.utils.clock import utcnow

Clock = Callable[[], datetime]
"""Where a worker reads the time; tests pass one they move past a lease or a retry."""

SYSTEM_CLOCK: Clock = utcnow
"""The clock of a worker given none: the real time, at the store's millisecond precision."""

LEASE_SECONDS = 10
"""A claim's lease (an event's delivery, a payment's reconciliation or re-check): renewed every
third of it while its work runs, so the work of a worker that died is taken over within this
plus a loop's pause — inside the contract's 20 s."""

BATCH = 100
"""The most one pass takes on of each kind of work (the events it delivers; the payments the
reconciler claims, the failures it re-checks, the drafts and the unreserved refunds it looks
at). A pass under a backlog still ends, so its loop gets back to its pause and its stop check
(a stopping worker finishes within one pass), and the rest waits for the next pass. A round
bound, not a measured optimum."""


def new_worker_id() -> str:
    """`host:pid:ulid`, stored as the holder of each lease a worker takes: the host and pid tell
    which process holds it, the ULID tells apart two workers in one process."""
    return f"{socket.gethostname()}:{os.getpid()}:{ids.ulid()}"
