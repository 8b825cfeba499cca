"""When a put response reaches the cache file: before the request that got it goes on, and in a loop's pass
together with the others put in that pass."""

import asyncio
import sqlite3

from glan.llm.cache import Cache, Response

ANSWER = Response('{"answer": "4"}', "stop", 12, 5)


def keys_on_disk(path) -> list[str]:
    """What another process would find: a separate connection to the file."""
    with sqlite3.connect(path) as other:
        return sorted(key for (key,) in other.execute("SELECT key FROM responses"))


def test_outside_an_event_loop_a_put_is_committed_at_once(tmp_path):
    cache = Cache(tmp_path / "cache.sqlite")
    cache.put("a", "answers", "m", ANSWER)
    assert keys_on_disk(tmp_path / "cache.sqlite") == ["a"]
    cache.close()


def test_in_an_event_loop_the_puts_of_one_pass_are_committed_together_before_their_tasks_go_on(tmp_path):
    path = tmp_path / "cache.sqlite"

    async def main():
        cache = Cache(path)
        seen = {}

        async def request(key: str):
            cache.put(key, "answers", "m", ANSWER)
            seen[key, "put"] = keys_on_disk(path)
            assert cache.get(key) == ANSWER  # readable before it is committed
            await asyncio.sleep(0)  # as Engine.complete does before it parses the response
            seen[key, "went on"] = keys_on_disk(path)

        await asyncio.gather(request("a"), request("b"))
        cache.close()
        return seen

    seen = asyncio.run(main())
    assert seen["a", "put"] == [] and seen["b", "put"] == []  # both put in the same pass, neither committed yet
    assert seen["a", "went on"] == ["a", "b"] and seen["b", "went on"] == ["a", "b"]


def test_close_commits_what_was_put(tmp_path):
    async def main():
        cache = Cache(tmp_path / "cache.sqlite")
        cache.put("a", "answers", "m", ANSWER)
        cache.close()  # before the loop ran the commit

    asyncio.run(main())
    assert keys_on_disk(tmp_path / "cache.sqlite") == ["a"]
