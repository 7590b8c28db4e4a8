"""Lua scripts run by digest on the real Redis, and survive a server that forgot them."""

from __future__ import annotations

from payments_api.config.redis import create_redis
from payments_api.config.settings import Settings
from payments_api.utils.cache import SET_IF_NEWER, LuaScript, versioned_payload


async def test_a_script_is_loaded_again_after_the_server_forgets_it(settings: Settings) -> None:
    redis = create_redis(settings)
    try:
        script = LuaScript(redis, "return redis.call('incrby', KEYS[1], ARGV[1])")
        assert await script(["counter"], [2]) == 2
        await redis.script_flush()
        assert await script(["counter"], [3]) == 5
    finally:
        await redis.aclose()


async def test_a_versioned_entry_never_goes_back_to_an_older_version(settings: Settings) -> None:
    redis = create_redis(settings)
    try:
        set_if_newer = LuaScript(redis, SET_IF_NEWER)
        assert await set_if_newer(["entry"], [2, "second", 60_000]) == 1
        assert await set_if_newer(["entry"], [1, "first", 60_000]) == 0
        assert versioned_payload(await redis.get("entry")) == "second"
        assert await set_if_newer(["entry"], [3, "third", 60_000]) == 1
        assert versioned_payload(await redis.get("entry")) == "third"
    finally:
        await redis.aclose()


async def test_a_script_on_each_key_then_deletes_runs_them_all_even_after_the_server_forgets_it(
    settings: Settings,
) -> None:
    redis = create_redis(settings)
    try:
        script = LuaScript(redis, "return redis.call('incrby', KEYS[1], ARGV[1])")
        for stale in ("stale:a", "stale:b"):
            await redis.set(stale, "old")
        answers = await script.on_each([["one"], ["two"]], [2], then_delete=["stale:a", "stale:b"])
        assert answers == [2, 2]
        assert await redis.exists("stale:a", "stale:b") == 0

        await redis.script_flush()
        await redis.set("stale:a", "old again")
        assert await script.on_each([["one"], ["two"]], [3], then_delete=["stale:a"]) == [5, 5]
        assert await redis.exists("stale:a") == 0
    finally:
        await redis.aclose()
