"""The indexes of INDEXES exist on the server after start-up, and the server enforces the
unique ones (mongomock only imitates that; here the server's own index refuses the write)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from pymongo.errors import DuplicateKeyError

from payments_api.config.indexes import INDEXES
from payments_api.services.registry import Services
from tests.fixtures.factories import register_user
from tests.fixtures.wire import WireServer


def _shape(index: Mapping[str, Any], *, exact: bool) -> tuple[Any, ...]:
    """What an index is made of. `exact` adds the name, the key directions, sparseness and
    the partial filter, which a real MongoDB reports as given; nx-27017 names indexes its own
    way (`idx_<collection>_<fields>`), reports every key ascending, none sparse or partial,
    and holds a compound index without its `_id` key (tests/fixtures/nx_compat.py)."""
    key = dict(index["key"])
    unique = bool(index.get("unique", False))
    if not exact:
        fields = tuple(key) if len(key) == 1 else tuple(name for name in key if name != "_id")
        return (fields, unique)
    return (
        index["name"],
        tuple(key.items()),
        unique,
        bool(index.get("sparse", False)),
        tuple(sorted(dict(index.get("partialFilterExpression") or {}).items())),
    )


async def test_every_index_of_indexes_exists_after_start_up(
    wire_services: Services, wire_server: WireServer
) -> None:
    exact = not wire_server.nx
    for collection, models in INDEXES.items():
        on_server = {
            _shape(index, exact=exact)
            async for index in wire_services.database[collection].list_indexes()
        }
        for model in models:
            assert _shape(model.document, exact=exact) in on_server, (collection, on_server)


# (collection, a document, another document clashing with it on a unique key,
#  a document sharing only part of that key, which the index allows)
UNIQUE_CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    (
        "users",
        {"_id": "usr_1", "email": "same@example.com"},
        {"_id": "usr_2", "email": "same@example.com"},
        {"_id": "usr_3", "email": "other@example.com"},
    ),
    (
        "users",
        {"_id": "usr_1", "email": "a@example.com", "phoneNumber": "+821012345678"},
        {"_id": "usr_2", "email": "b@example.com", "phoneNumber": "+821012345678"},
        {"_id": "usr_3", "email": "c@example.com", "phoneNumber": "+821087654321"},
    ),
    (
        "api_keys",
        {"_id": "key_1", "keyHash": "hash-1"},
        {"_id": "key_2", "keyHash": "hash-1"},
        {"_id": "key_3", "keyHash": "hash-2"},
    ),
    (
        "payments",
        {"_id": "pay_1", "userId": "usr_1", "idempotencyKey": "key-1"},
        {"_id": "pay_2", "userId": "usr_1", "idempotencyKey": "key-1"},
        {"_id": "pay_3", "userId": "usr_2", "idempotencyKey": "key-1"},
    ),
    (
        "transactions",
        {"_id": "txn_1", "type": "payment", "reference": "pay_1"},
        {"_id": "txn_2", "type": "payment", "reference": "pay_1"},
        {"_id": "txn_3", "type": "cancel", "reference": "pay_1"},
    ),
    (
        "events",
        {"_id": "evt_1", "dedupeKey": "payment.completed:pay_1:"},
        {"_id": "evt_2", "dedupeKey": "payment.completed:pay_1:"},
        {"_id": "evt_3", "dedupeKey": "payment.cancelled:pay_1:"},
    ),
]


@pytest.mark.parametrize(
    ("collection", "first", "clash", "allowed"),
    UNIQUE_CASES,
    ids=[
        "user-email",
        "user-phone",
        "merchant-api-key-hash",
        "payment-user-idempotency-key",
        "ledger-type-reference",
        "event-dedupe-key",
    ],
)
async def test_the_server_refuses_a_duplicate_of_a_unique_key(
    wire_services: Services,
    collection: str,
    first: dict[str, Any],
    clash: dict[str, Any],
    allowed: dict[str, Any],
) -> None:
    documents = wire_services.database[collection]
    await documents.insert_one(first)
    with pytest.raises(DuplicateKeyError):
        await documents.insert_one(clash)
    await documents.insert_one(allowed)
    ids = [first["_id"], clash["_id"], allowed["_id"]]
    stored = sorted([doc["_id"] async for doc in documents.find({"_id": {"$in": ids}})])
    assert stored == sorted([first["_id"], allowed["_id"]])


async def test_users_without_a_phone_number_never_collide(wire_services: Services) -> None:
    users = wire_services.database["users"]
    await users.insert_one({"_id": "usr_1", "email": "one@example.com"})
    await users.insert_one({"_id": "usr_2", "email": "two@example.com"})
    assert await users.count_documents({"_id": {"$in": ["usr_1", "usr_2"]}}) == 2


async def test_registering_without_phone_numbers_twice_succeeds(
    wire_client: httpx.AsyncClient, wire_services: Services
) -> None:
    first = await register_user(wire_client)
    second = await register_user(wire_client)
    users = wire_services.database["users"]
    for user in (first, second):
        stored = await users.find_one({"_id": user.user_id})
        assert stored is not None
        assert "phoneNumber" not in stored


async def test_a_second_registration_of_an_email_answers_409(
    wire_client: httpx.AsyncClient, wire_services: Services
) -> None:
    body = {"email": "twice@example.com", "password": "correct-horse-battery", "name": "Twice"}
    assert (await wire_client.post("/api/v1/users", json=body)).status_code == 201
    response = await wire_client.post("/api/v1/users", json={**body, "name": "Again"})
    assert response.status_code == 409
    assert response.json()["error"] == "EMAIL_ALREADY_REGISTERED"
    assert await wire_services.database["users"].count_documents({"email": body["email"]}) == 1


async def test_a_second_registration_of_a_phone_number_answers_409(
    wire_client: httpx.AsyncClient, wire_services: Services
) -> None:
    phone = "+821055512345"
    await register_user(wire_client, phoneNumber=phone)
    response = await wire_client.post(
        "/api/v1/users",
        json={
            "email": "phone-again@example.com",
            "password": "correct-horse-battery",
            "name": "Phone Again",
            "phoneNumber": phone,
        },
    )
    assert response.status_code == 409
    assert response.json()["error"] == "PHONE_ALREADY_REGISTERED"
    assert await wire_services.database["users"].count_documents({"phoneNumber": phone}) == 1
