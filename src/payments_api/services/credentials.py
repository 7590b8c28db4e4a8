"""Who a credential belongs to, as this process last read it, for at most TRUST_SECONDS.

Every request names its caller, and the hot paths (the cached payment read above all) must not
read MongoDB for it each time; yet a deactivated user, a deactivated merchant and a revoked or
expired key must be refused by every server process within 5 seconds (the contract). So each
process keeps what it read of a user (active or not, and its daily limit), of a merchant and of
an API key (its merchant and the key) for TRUST_SECONDS, then reads again: a change made
anywhere reaches every process within that time plus one read, with no message between
processes to lose. A process drops its own entry at once when it makes the change itself. An
expired key is refused at its expiry, as the key's `expiresAt` is checked on every request.

The same read records when a key was used: at most once a minute per key (models/api_key.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo.errors import PyMongoError

from payments_api.config.database import Database
from payments_api.models import api_key as api_key_store
from payments_api.models import merchant as merchant_store
from payments_api.models import user as user_store
from payments_api.models.api_key import ApiKey
from payments_api.models.merchant import Merchant
from payments_api.models.user import User
from payments_api.utils.clock import utcnow
from payments_api.utils.logger import get_logger
from payments_api.utils.ttl_cache import TtlCache

logger = get_logger("credentials")

TRUST_SECONDS = 2.0
"""How long a process trusts what it read of a credential's owner: well inside the 5 s."""
USAGE_EVERY = timedelta(minutes=1)
"""`lastUsedAt` is kept to the minute: a key's use is written at most this often."""
MAX_TRACKED = 10_000


@dataclass(frozen=True, slots=True)
class KeyHolder:
    """An API key and the merchant it belongs to."""

    merchant: Merchant
    key: ApiKey


class Credentials:
    def __init__(self, db: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock
        self._users: TtlCache[str, User | None] = TtlCache(TRUST_SECONDS)
        self._merchants: TtlCache[str, Merchant | None] = TtlCache(TRUST_SECONDS)
        self._keys: TtlCache[str, KeyHolder | None] = TtlCache(TRUST_SECONDS)
        self._touched: dict[str, float] = {}
        self._hashes_of: dict[str, set[str]] = {}
        """The key hashes looked up, by merchant: what a change to a merchant makes stale."""

    async def user_is_active(self, user_id: str) -> bool | None:
        """Whether the user is active; None when there is no such user."""
        user = await self.user(user_id)
        return None if user is None else user.is_active

    async def user(self, user_id: str) -> User | None:
        """The user as last read (active or not), for its active flag and its daily limit."""
        return await self._users.get(user_id, lambda: user_store.find_by_id(self.db, user_id))

    async def merchant(self, merchant_id: str) -> Merchant | None:
        """The merchant as last read (active or not): whom a payment may be made to."""
        return await self._merchants.get(
            merchant_id, lambda: merchant_store.find_by_id(self.db, merchant_id)
        )

    async def key_holder(self, key_hash: str) -> KeyHolder | None:
        """The live key with this hash and its active merchant, else None."""

        async def load() -> KeyHolder | None:
            record = await api_key_store.find_record(self.db, key_hash)
            if record is None:
                return None
            self._remember_hash(record.merchant_id, key_hash)
            merchant = await merchant_store.find_by_id(self.db, record.merchant_id)
            key = merchant.key(record.id) if merchant else None
            return KeyHolder(merchant, key) if merchant and key else None

        holder = await self._keys.get(key_hash, load)
        if holder is None or not holder.merchant.is_active:
            return None
        now = self.clock()
        if not holder.key.works_at(now):
            return None
        await self._record_use(holder.key, now)
        return holder

    def forget_user(self, user_id: str) -> None:
        self._users.forget(user_id)

    def forget_merchant(self, merchant_id: str) -> None:
        """Drop what is known of the merchant and every key of it (after a change to them)."""
        self._merchants.forget(merchant_id)
        for key_hash in self._hashes_of.pop(merchant_id, set()):
            self._keys.forget(key_hash)

    def _remember_hash(self, merchant_id: str, key_hash: str) -> None:
        if len(self._hashes_of) >= MAX_TRACKED:
            # Forgetting which hashes belong to whom: then nothing cached may outlive a change.
            self._hashes_of.clear()
            self._keys.clear()
        self._hashes_of.setdefault(merchant_id, set()).add(key_hash)

    async def _record_use(self, key: ApiKey, now: datetime) -> None:
        last = self._touched.get(key.key_id)
        moment = time.monotonic()
        if last is not None and moment - last < USAGE_EVERY.total_seconds():
            return
        if len(self._touched) >= MAX_TRACKED:
            self._touched.clear()
        self._touched[key.key_id] = moment
        try:
            await api_key_store.touch(self.db, key.key_id, now, not_since=now - USAGE_EVERY)
        except PyMongoError as exc:
            # Bookkeeping only: the request it came with goes on.
            logger.warning("could not record an API key's use", error=type(exc).__name__)
