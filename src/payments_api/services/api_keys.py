"""A merchant's API keys: listed (never the secret), made, rolled and revoked.

Every change is planned on the merchant as read and stored with a compare-and-set of its whole
key list (models/api_key.py), tried again when another change came first. So "at most five
active keys" and "never no key" hold under any concurrency, and a change that fails leaves the
keys as they were. A change is seen by this process at once, by every other within the trust
time of services/credentials.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from pymongo.errors import PyMongoError

from payments_api.config.database import Database
from payments_api.errors import ConcurrentUpdate, ConflictError, NotFoundError
from payments_api.models import api_key as api_key_store
from payments_api.models import merchant as merchant_store
from payments_api.models.api_key import ApiKey
from payments_api.models.merchant import Merchant
from payments_api.services.credentials import Credentials
from payments_api.services.merchants import IssuedKey, MerchantNotFound, issue_key
from payments_api.utils.clock import utcnow
from payments_api.utils.logger import get_logger, log_business_event

logger = get_logger("api-keys")

MAX_ACTIVE_KEYS = 5
"""Keys that are not rolled: the contract's "at most 5 live keys"."""
MAX_ROLLED_KEYS = 5
"""Rolled keys still in their grace period, so repeated rolls cannot pile keys up."""
CHANGE_ATTEMPTS = 10


class TooManyApiKeys(ConflictError):
    code = "TOO_MANY_API_KEYS"
    message = f"A merchant may have at most {MAX_ACTIVE_KEYS} live API keys; revoke one first"


class LastApiKey(ConflictError):
    code = "LAST_API_KEY"
    message = "This is the merchant's only live API key; create another before revoking it"


class ApiKeyNotFound(NotFoundError):
    code = "API_KEY_NOT_FOUND"
    message = "API key not found"


Plan = Callable[[list[ApiKey], datetime], list[ApiKey]]
"""From the merchant's live keys at a moment, the keys it is to have (or a domain error)."""


class ApiKeyService:
    def __init__(
        self, db: Database, credentials: Credentials, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.db = db
        self.credentials = credentials
        self.clock = clock

    async def list_live(self, merchant_id: str) -> list[tuple[ApiKey, datetime | None]]:
        """The live keys, oldest first, each with when it was last used."""
        merchant = await self._merchant(merchant_id)
        keys = sorted(merchant.live_keys(self.clock()), key=lambda key: key.created_at)
        used = await api_key_store.last_used(self.db, [key.key_id for key in keys])
        return [(key, used.get(key.key_id)) for key in keys]

    async def create(self, merchant_id: str, name: str | None, actor: str) -> IssuedKey:
        issued = issue_key(merchant_id, name, self.clock())

        def plan(keys: list[ApiKey], now: datetime) -> list[ApiKey]:
            _check_room(keys)
            return [*keys, issued.key]

        await self._change(merchant_id, plan, issued)
        log_business_event(
            "api key created", merchantId=merchant_id, keyId=issued.key.key_id, actor=actor
        )
        return issued

    async def roll(self, merchant_id: str, key_id: str, expires_in_seconds: int) -> IssuedKey:
        """A new key with the rolled one's name; the rolled one works `expires_in_seconds`
        more (0: it stops now)."""
        name = _find(await self._live(merchant_id), key_id).name
        issued = issue_key(merchant_id, name, self.clock())

        def plan(keys: list[ApiKey], now: datetime) -> list[ApiKey]:
            rolled = _find(keys, key_id)
            until = now + timedelta(seconds=expires_in_seconds)
            if rolled.expires_at is not None:
                until = min(until, rolled.expires_at)
            others = [key for key in keys if key.key_id != key_id]
            if expires_in_seconds > 0:
                others.append(rolled.model_copy(update={"expires_at": until}))
            _check_room(others)
            return [*others, issued.key]

        await self._change(merchant_id, plan, issued)
        log_business_event(
            "api key rolled",
            merchantId=merchant_id,
            keyId=key_id,
            newKeyId=issued.key.key_id,
            expiresInSeconds=expires_in_seconds,
        )
        return issued

    async def revoke(self, merchant_id: str, key_id: str) -> None:
        def plan(keys: list[ApiKey], now: datetime) -> list[ApiKey]:
            revoked = _find(keys, key_id)
            others = [key for key in keys if key.key_id != key_id]
            if not revoked.rolled and not any(not key.rolled for key in others):
                raise LastApiKey()
            return others

        await self._change(merchant_id, plan)
        log_business_event("api key revoked", merchantId=merchant_id, keyId=key_id)

    async def _change(self, merchant_id: str, plan: Plan, issued: IssuedKey | None = None) -> None:
        """Apply `plan` to the merchant's live keys as stored. A key being `issued` gets its
        record first, taken back if the change fails; records of keys the change drops (and
        of expired keys it prunes) go after it."""
        if issued is not None:
            await api_key_store.insert_record(self.db, issued.record)
        try:
            before, after = await self._compare_and_set(merchant_id, plan)
        except BaseException:
            if issued is not None:
                await api_key_store.delete_records(self.db, [issued.key.key_id])
            raise
        self.credentials.forget_merchant(merchant_id)
        kept = {key.key_id for key in after}
        dropped = [key.key_id for key in before if key.key_id not in kept]
        try:
            await api_key_store.delete_records(self.db, dropped)
        except PyMongoError as exc:
            # Tidying only: a record whose key left the list authenticates nothing.
            logger.warning("could not drop API key records", error=type(exc).__name__)

    async def _compare_and_set(
        self, merchant_id: str, plan: Plan
    ) -> tuple[list[ApiKey], list[ApiKey]]:
        for _ in range(CHANGE_ATTEMPTS):
            merchant = await self._merchant(merchant_id)
            now = self.clock()
            keys = plan(merchant.live_keys(now), now)
            if await merchant_store.replace_keys(self.db, merchant, keys, now) is not None:
                return merchant.api_keys, keys
        raise ConcurrentUpdate()

    async def _live(self, merchant_id: str) -> list[ApiKey]:
        return (await self._merchant(merchant_id)).live_keys(self.clock())

    async def _merchant(self, merchant_id: str) -> Merchant:
        merchant = await merchant_store.find_by_id(self.db, merchant_id)
        if merchant is None:
            raise MerchantNotFound()
        return merchant


def _find(keys: list[ApiKey], key_id: str) -> ApiKey:
    for key in keys:
        if key.key_id == key_id:
            return key
    raise ApiKeyNotFound()


def _check_room(keys: list[ApiKey]) -> None:
    """One more active key must fit beside `keys`."""
    if sum(not key.rolled for key in keys) + 1 > MAX_ACTIVE_KEYS:
        raise TooManyApiKeys()
    if sum(key.rolled for key in keys) > MAX_ROLLED_KEYS:
        raise TooManyApiKeys()
