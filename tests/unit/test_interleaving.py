"""The interleaving stand-in: concurrent read-then-write really interleaves on it (it does not on
plain mongomock-motor), a guarded single update stays atomic, and the answers are unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient

from tests.fixtures.interleaving import InterleavingClient
from tests.fixtures.races import SEEDS

WRITERS = 20


async def read_then_increment(collection: Any) -> None:
    """A check-then-act counter: correct only when nothing runs between the read and the write."""
    current = await collection.find_one({"_id": "counter"})
    await collection.update_one({"_id": "counter"}, {"$set": {"n": current["n"] + 1}})


async def counted(database: Any, step: Any) -> int:
    collection = database["counters"]
    await collection.insert_one({"_id": "counter", "n": 0})
    await asyncio.gather(*(step(collection) for _ in range(WRITERS)))
    final = await collection.find_one({"_id": "counter"})
    return int(final["n"])


@pytest.mark.parametrize("seed", SEEDS)
async def test_concurrent_read_then_write_loses_updates_on_the_stand_in(seed: int) -> None:
    assert await counted(InterleavingClient(seed)["db"], read_then_increment) < WRITERS


async def test_plain_mongomock_never_interleaves_which_is_why_the_stand_in_exists() -> None:
    assert await counted(AsyncMongoMockClient()["db"], read_then_increment) == WRITERS


@pytest.mark.parametrize("seed", SEEDS)
async def test_one_guarded_update_stays_atomic_on_the_stand_in(seed: int) -> None:
    async def increment(collection: Any) -> None:
        await collection.update_one({"_id": "counter"}, {"$inc": {"n": 1}})

    assert await counted(InterleavingClient(seed)["db"], increment) == WRITERS


async def test_the_stand_in_answers_as_mongomock_does() -> None:
    stand_in = InterleavingClient(1)["db"]["items"]
    await stand_in.insert_many([{"_id": n, "group": n % 3} for n in range(10)])

    page = await stand_in.find({"group": 1}).sort("_id", -1).limit(2).to_list(None)
    streamed = [doc["_id"] async for doc in stand_in.find({"group": 0})]
    counted_docs = await stand_in.count_documents({"group": 2})

    assert page == [{"_id": 7, "group": 1}, {"_id": 4, "group": 1}]
    assert streamed == [0, 3, 6, 9]
    assert counted_docs == 3


async def test_two_handles_on_one_stand_in_share_its_data() -> None:
    shared = InterleavingClient(1)
    await shared["db"]["items"].insert_one({"_id": "seen"})
    shared.close()  # one app stopping leaves the data to the other

    assert await shared["db"]["items"].find_one({"_id": "seen"}) == {"_id": "seen"}
