"""The Queue contract (tiercel.queue.base), run against every backend in ``QUEUE_BACKENDS``.

Every wait is bounded: ``receive`` gets a timeout and loops run under ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from tiercel.model.base import Record
from tiercel.queue.base import DEFAULT_TOPICS, Delivery, Queue, QueueClosed, QueueError, Subscription


class Ping(Record):
    n: int
    tag: str = ""
    payload: dict[str, Any] = {}


class Pong(Record):
    n: int


TOPICS: dict[str, type[Record]] = {**DEFAULT_TOPICS, "test.ping": Ping, "test.pong": Pong}
TOPIC = "test.ping"
WAIT = 5.0  # upper bound for anything that should happen "soon"
QUIET = 0.1  # how long we listen to conclude that nothing more arrives
PROMPT = 2.0  # a waiting receiver must get a message that becomes available within this


def numbers(deliveries: list[Delivery]) -> list[int]:
    return [d.message.n for d in deliveries]  # type: ignore[attr-defined]


async def receive_n(sub: Subscription, n: int, *, ack: bool = True) -> list[Delivery]:
    """Receive exactly ``n`` deliveries (acking them unless told not to), within WAIT seconds."""
    out: list[Delivery] = []
    async with asyncio.timeout(WAIT):
        while len(out) < n:
            batch = await sub.receive(max_messages=n - len(out), timeout=WAIT)
            if ack:
                for d in batch:
                    await d.ack()
            out.extend(batch)
    return out


async def assert_quiet(sub: Subscription) -> None:
    assert await sub.receive(timeout=QUIET) == []


@pytest.fixture
async def queue(queue_backend: Any) -> Queue:
    return await queue_backend.open(TOPICS)


async def publish_range(queue: Queue, n: int, start: int = 0, key: str | None = None) -> None:
    await queue.publish_many(TOPIC, [Ping(n=i) for i in range(start, start + n)], key=key)


# -- competing consumers ----------------------------------------------------------------------


async def test_competing_consumers_each_message_once(queue: Queue) -> None:
    subs = [queue.subscribe(TOPIC, "workers") for _ in range(3)]
    for sub in subs:
        await sub.open()
    await publish_range(queue, 300)

    seen: list[int] = []

    async def consume(sub: Subscription) -> None:
        while len(seen) < 300:
            for d in await sub.receive(max_messages=10, timeout=QUIET):
                seen.append(d.message.n)  # type: ignore[attr-defined]
                await d.ack()
            await asyncio.sleep(0)  # "work"

    async with asyncio.timeout(WAIT):
        await asyncio.gather(*(consume(s) for s in subs))
    assert sorted(seen) == list(range(300))
    for sub in subs:
        await assert_quiet(sub)
        await sub.close()


async def test_single_consumer_gets_publish_order(queue: Queue) -> None:
    async with queue.subscribe(TOPIC, "g") as sub:
        await publish_range(queue, 50)
        for i in range(50, 60):
            await queue.publish(TOPIC, Ping(n=i))
        assert numbers(await receive_n(sub, 60)) == list(range(60))


async def test_every_group_gets_every_message(queue: Queue) -> None:
    async with queue.subscribe(TOPIC, "a") as a, queue.subscribe(TOPIC, "b") as b:
        await publish_range(queue, 20)
        assert sorted(numbers(await receive_n(a, 20))) == list(range(20))
        assert sorted(numbers(await receive_n(b, 20))) == list(range(20))
        await assert_quiet(a)
        await assert_quiet(b)


async def test_delivery_carries_message_key_and_attempt(queue: Queue) -> None:
    sent = Ping(n=7, tag="x", payload={"nested": [1, {"a": "b"}], "when": "2026-01-01"})
    async with queue.subscribe(TOPIC, "g") as sub:
        await queue.publish(TOPIC, sent, key="exec-1")
        [d] = await receive_n(sub, 1)
    assert d.message == sent
    assert isinstance(d.message, Ping)
    assert d.key == "exec-1"
    assert d.attempt == 1


async def test_group_keeps_messages_while_no_consumer_is_connected(queue: Queue) -> None:
    first = queue.subscribe(TOPIC, "g")
    await first.open()
    await first.close()
    await publish_range(queue, 5)
    assert await queue.depth(TOPIC, "g") == 5
    async with queue.subscribe(TOPIC, "g") as again:
        assert sorted(numbers(await receive_n(again, 5))) == list(range(5))


async def test_topics_are_separate(queue: Queue) -> None:
    async with queue.subscribe(TOPIC, "g") as pings, queue.subscribe("test.pong", "g") as pongs:
        await queue.publish("test.pong", Pong(n=1))
        await assert_quiet(pings)
        [d] = await receive_n(pongs, 1)
        assert d.message == Pong(n=1)


# -- redelivery -------------------------------------------------------------------------------


async def test_nack_redelivers(queue: Queue) -> None:
    async with queue.subscribe(TOPIC, "g") as sub:
        await queue.publish(TOPIC, Ping(n=1), key="k")
        [d] = await receive_n(sub, 1, ack=False)
        await d.nack()
        [again] = await receive_n(sub, 1)
        assert again.message == Ping(n=1)
        assert again.key == "k"
        assert again.attempt == 2
        await assert_quiet(sub)


async def test_nack_with_delay_holds_the_message_back(queue: Queue) -> None:
    if not queue.supports_delayed_nack:
        pytest.skip("backend has no delayed nack")
    async with queue.subscribe(TOPIC, "g") as sub:
        await queue.publish(TOPIC, Ping(n=1))
        [d] = await receive_n(sub, 1, ack=False)
        loop = asyncio.get_running_loop()
        nacked_at = loop.time()
        await d.nack(delay=0.3)
        assert await sub.receive(timeout=0.1) == []
        [again] = await receive_n(sub, 1)
        assert loop.time() - nacked_at >= 0.3 - 0.01
        assert again.attempt == 2


async def test_closing_without_ack_redelivers_to_another_consumer(queue: Queue) -> None:
    other = queue.subscribe(TOPIC, "g")
    await other.open()
    async with queue.subscribe(TOPIC, "g") as crashing:
        await publish_range(queue, 3)
        got = await receive_n(crashing, 3, ack=False)
        await got[0].ack()
        waiting = asyncio.create_task(receive_n(other, 2))
        await asyncio.sleep(0.01)
    async with asyncio.timeout(PROMPT):
        redelivered = await waiting
    assert sorted(numbers(redelivered)) == [1, 2]
    assert {d.attempt for d in redelivered} == {2}
    await assert_quiet(other)
    await other.close()


async def test_consumer_crash_redelivers(queue: Queue) -> None:
    async def crashing_consumer() -> None:
        async with queue.subscribe(TOPIC, "g") as sub:
            await receive_n(sub, 1, ack=False)
            raise RuntimeError("consumer died")

    await queue.subscribe(TOPIC, "g").open()  # declare the group before publishing
    await queue.publish(TOPIC, Ping(n=1))
    with pytest.raises(RuntimeError):
        await crashing_consumer()
    async with queue.subscribe(TOPIC, "g") as survivor:
        [d] = await receive_n(survivor, 1)
        assert d.message == Ping(n=1)
        assert d.attempt == 2


async def test_settling_twice_or_after_close_has_no_effect(queue: Queue) -> None:
    async with queue.subscribe(TOPIC, "g") as sub:
        await publish_range(queue, 2)
        first, second = await receive_n(sub, 2, ack=False)
        await first.ack()
        await first.ack()
        await first.nack()
    # second was put back when the subscription closed; acking the stale delivery does nothing
    await second.ack()
    assert await queue.depth(TOPIC, "g") == 1
    async with queue.subscribe(TOPIC, "g") as sub:
        [again] = await receive_n(sub, 1)
        assert again.message == Ping(n=1)
        await assert_quiet(sub)


async def test_a_cancelled_receive_loses_nothing(queue: Queue) -> None:
    async with queue.subscribe(TOPIC, "g") as a, queue.subscribe(TOPIC, "g") as b:
        first = asyncio.create_task(a.receive(timeout=WAIT))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(b.receive(timeout=WAIT))
        await asyncio.sleep(0.01)
        await queue.publish(TOPIC, Ping(n=1))
        first.cancel()  # whatever it was woken for must reach the other receiver
        try:
            got = await first
        except asyncio.CancelledError:
            got = []
        if got:
            second.cancel()
        else:
            async with asyncio.timeout(PROMPT):
                got = await second
        assert numbers(got) == [1]


async def test_unacked_messages_survive_a_restart(queue_backend: Any) -> None:
    queue = await queue_backend.open(TOPICS)
    if not queue.supports_redelivery_across_restarts:
        pytest.skip("backend forgets everything when the process stops")
    async with queue.subscribe(TOPIC, "g") as sub:
        await publish_range(queue, 3)
        [d, *_] = await receive_n(sub, 3, ack=False)
        await d.ack()
    await queue.close()
    reopened = await queue_backend.open(TOPICS)
    async with reopened.subscribe(TOPIC, "g") as sub:
        assert sorted(numbers(await receive_n(sub, 2))) == [1, 2]


async def test_release_consumer_hands_a_dead_processs_claims_to_the_others(queue_backend: Any) -> None:
    """A process declared dead (it stopped heartbeating) loses its claims at once, not at lease end."""
    dead = await queue_backend.open(TOPICS)
    if not dead.supports_redelivery_across_restarts:
        pytest.skip("one process per memory queue: nobody else could be declared dead")
    dead.consumer_id = "worker-1"
    alive = await queue_backend.open(TOPICS)
    alive.consumer_id = "worker-2"
    async with dead.subscribe(TOPIC, "g") as held, alive.subscribe(TOPIC, "g") as other:
        await publish_range(dead, 2)
        claimed = await receive_n(held, 2, ack=False)
        await assert_quiet(other)
        assert await alive.release_consumer("worker-2") == 0  # a live one's claims stay put
        assert await alive.release_consumer("worker-1") == 2
        again = await receive_n(other, 2)
        assert sorted(numbers(again)) == [0, 1]
        assert {d.attempt for d in again} == {2}
        for stale in claimed:  # the dead process settling late changes nothing
            await stale.ack()
        assert await alive.depth(TOPIC, "g") == 0


# -- ordered_by_key ---------------------------------------------------------------------------


async def test_ordered_by_key_hands_out_one_message_per_key(queue: Queue) -> None:
    if not queue.supports_ordered_by_key:
        pytest.skip("backend does not order by key")
    async with (
        queue.subscribe(TOPIC, "g", ordered_by_key=True) as one,
        queue.subscribe(TOPIC, "g", ordered_by_key=True) as two,
    ):
        await queue.publish(TOPIC, Ping(n=1), key="k1")
        await queue.publish(TOPIC, Ping(n=2), key="k1")
        await queue.publish(TOPIC, Ping(n=3), key="k2")
        await queue.publish(TOPIC, Ping(n=4))  # no key: not constrained
        got = await receive_n(one, 3, ack=False)
        assert sorted(numbers(got)) == [1, 3, 4]
        await assert_quiet(two)  # 2 waits for 1
        by_n = {d.message.n: d for d in got}  # type: ignore[attr-defined]
        await by_n[1].nack()  # back to the head of k1's line
        [d] = await receive_n(two, 1, ack=False)
        assert (d.message.n, d.attempt) == (1, 2)  # type: ignore[attr-defined]
        waiting = asyncio.create_task(two.receive(timeout=WAIT))
        await asyncio.sleep(0.01)
        await d.ack()  # releases k1: the waiting receiver gets 2 promptly
        async with asyncio.timeout(PROMPT):
            assert numbers(await waiting) == [2]
        for d in got:
            await d.ack()


async def test_ordered_by_key_under_load(queue: Queue) -> None:
    if not queue.supports_ordered_by_key:
        pytest.skip("backend does not order by key")
    keys = [f"exec-{i}" for i in range(10)]
    per_key = 40
    subs = [queue.subscribe(TOPIC, "g", ordered_by_key=True) for _ in range(4)]
    for sub in subs:
        await sub.open()
    for i in range(per_key):
        for k, key in enumerate(keys):
            await queue.publish(TOPIC, Ping(n=i, tag=str(k)), key=key)

    in_flight: set[str] = set()
    processed: dict[str, list[int]] = {key: [] for key in keys}
    total = per_key * len(keys)
    done = 0
    rng = random.Random(7)

    async def consume(sub: Subscription) -> None:
        nonlocal done
        while done < total:
            batch = await sub.receive(max_messages=5, timeout=QUIET)
            for d in batch:
                assert d.key not in in_flight, f"{d.key} handed out twice at once"
                in_flight.add(d.key)  # type: ignore[arg-type]
            for d in batch:
                await asyncio.sleep(0)  # "work": let the other consumers in
                in_flight.discard(d.key)
                if d.attempt == 1 and rng.random() < 0.1:
                    await d.nack()
                    continue
                processed[d.key].append(d.message.n)  # type: ignore[attr-defined, index]
                done += 1
                await d.ack()

    async with asyncio.timeout(WAIT * 2):
        await asyncio.gather(*(consume(s) for s in subs))
    for key in keys:
        assert processed[key] == list(range(per_key)), key
    for sub in subs:
        await sub.close()


async def test_group_members_must_agree_on_ordering(queue: Queue) -> None:
    if not queue.supports_ordered_by_key:
        pytest.skip("backend does not order by key")
    async with queue.subscribe(TOPIC, "g", ordered_by_key=True):
        with pytest.raises(QueueError):
            await queue.subscribe(TOPIC, "g").open()


# -- broadcast --------------------------------------------------------------------------------


async def test_broadcast_only_after_subscribe_to_every_subscriber(queue: Queue) -> None:
    await queue.publish(TOPIC, Ping(n=0))
    async with queue.subscribe_broadcast(TOPIC) as one, queue.subscribe_broadcast(TOPIC) as two:
        await publish_range(queue, 3, start=1)
        assert numbers(await receive_n(one, 3)) == [1, 2, 3]
        assert numbers(await receive_n(two, 3)) == [1, 2, 3]
        await assert_quiet(one)
        async with queue.subscribe_broadcast(TOPIC) as late:
            await queue.publish(TOPIC, Ping(n=4))
            assert numbers(await receive_n(late, 1)) == [4]
            assert numbers(await receive_n(one, 1)) == [4]


async def test_broadcast_and_groups_are_independent(queue: Queue) -> None:
    async with queue.subscribe(TOPIC, "g") as group, queue.subscribe_broadcast(TOPIC) as follower:
        await publish_range(queue, 5)
        assert sorted(numbers(await receive_n(group, 5))) == list(range(5))
        assert numbers(await receive_n(follower, 5)) == list(range(5))


async def test_broadcast_nack_redelivers_to_the_same_subscriber(queue: Queue) -> None:
    async with queue.subscribe_broadcast(TOPIC) as sub:
        await queue.publish(TOPIC, Ping(n=1))
        [d] = await receive_n(sub, 1, ack=False)
        await d.nack()
        [again] = await receive_n(sub, 1)
        assert again.message == Ping(n=1)


async def test_closed_broadcast_subscription_gets_nothing_more(queue: Queue) -> None:
    sub = queue.subscribe_broadcast(TOPIC)
    await sub.open()
    await sub.close()
    await queue.publish(TOPIC, Ping(n=1))
    with pytest.raises(QueueClosed):
        await sub.receive(timeout=QUIET)


# -- receive, depth, iteration ----------------------------------------------------------------


async def test_receive_times_out_with_empty_list(queue: Queue) -> None:
    async with queue.subscribe(TOPIC, "g") as sub:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await sub.receive(timeout=0.2) == []
        assert 0.19 <= loop.time() - started < WAIT
        assert await sub.receive(timeout=0) == []


async def test_receive_respects_max_messages(queue: Queue) -> None:
    async with queue.subscribe(TOPIC, "g") as sub:
        await publish_range(queue, 10)
        async with asyncio.timeout(WAIT):
            first = await sub.receive(max_messages=4, timeout=WAIT)
        assert 1 <= len(first) <= 4
        with pytest.raises(ValueError):
            await sub.receive(max_messages=0)


async def test_depth_counts_unacknowledged(queue: Queue) -> None:
    assert await queue.depth(TOPIC, "nobody") == 0
    async with queue.subscribe(TOPIC, "g") as sub:
        await publish_range(queue, 5)
        assert await queue.depth(TOPIC, "g") == 5
        got = await receive_n(sub, 2, ack=False)
        assert await queue.depth(TOPIC, "g") == 5  # in flight still counts
        await got[0].ack()
        await got[1].nack()
        assert await queue.depth(TOPIC, "g") == 4
        await receive_n(sub, 4)
        assert await queue.depth(TOPIC, "g") == 0


async def test_async_iteration_ends_when_the_queue_closes(queue: Queue) -> None:
    sub = queue.subscribe(TOPIC, "g")
    await sub.open()
    await publish_range(queue, 3)
    seen: list[int] = []

    async def consume() -> None:
        async with sub:
            async for d in sub:
                seen.append(d.message.n)  # type: ignore[attr-defined]
                await d.ack()
                if len(seen) == 3:
                    await queue.close()

    async with asyncio.timeout(WAIT):
        await consume()
    assert sorted(seen) == [0, 1, 2]


async def test_close_wakes_a_blocked_receive(queue: Queue) -> None:
    sub = queue.subscribe(TOPIC, "g")
    await sub.open()
    blocked = asyncio.create_task(sub.receive())
    await asyncio.sleep(0.01)
    await queue.close()
    with pytest.raises(QueueClosed):
        async with asyncio.timeout(WAIT):
            await blocked
    with pytest.raises(QueueClosed):
        await queue.publish(TOPIC, Ping(n=1))
    await queue.close()  # idempotent


async def test_closing_a_subscription_wakes_its_receiver(queue: Queue) -> None:
    sub = queue.subscribe(TOPIC, "g")
    await sub.open()
    blocked = asyncio.create_task(sub.receive())
    await asyncio.sleep(0.01)
    await sub.close()
    with pytest.raises(QueueClosed):
        async with asyncio.timeout(WAIT):
            await blocked
    await sub.close()


# -- publishing rules -------------------------------------------------------------------------


async def test_unknown_topic_and_wrong_type_are_refused(queue: Queue) -> None:
    with pytest.raises(QueueError):
        await queue.publish("no.such.topic", Ping(n=1))
    with pytest.raises(QueueError):
        await queue.subscribe("no.such.topic", "g").open()
    with pytest.raises(TypeError):
        await queue.publish(TOPIC, Pong(n=1))


async def test_publish_many_is_all_or_nothing(queue: Queue) -> None:
    async with queue.subscribe(TOPIC, "g") as sub:
        with pytest.raises(TypeError):
            await queue.publish_many(TOPIC, [Ping(n=1), Pong(n=2)])
        await assert_quiet(sub)
        assert await queue.depth(TOPIC, "g") == 0


async def test_publishing_to_a_topic_without_subscribers_is_fine(queue: Queue) -> None:
    await queue.publish(TOPIC, Ping(n=1))
    await queue.publish_many(TOPIC, [])


# -- volume -----------------------------------------------------------------------------------


async def test_many_messages_no_loss_no_duplicates(queue: Queue) -> None:
    total = 5000
    subs = [queue.subscribe(TOPIC, "g") for _ in range(4)]
    for sub in subs:
        await sub.open()
    acked: Counter[int] = Counter()
    done = 0
    rng = random.Random(3)

    async def produce() -> None:
        for start in range(0, total, 250):
            await publish_range(queue, 250, start=start, key=f"k{start % 7}")
            await asyncio.sleep(0)

    async def consume(sub: Subscription) -> None:
        nonlocal done
        while done < total:
            for d in await sub.receive(max_messages=50, timeout=QUIET):
                if d.attempt == 1 and rng.random() < 0.02:
                    await d.nack()  # at-least-once: some go round again
                else:
                    acked[d.message.n] += 1  # type: ignore[attr-defined]
                    done += 1
                    await d.ack()

    async with asyncio.timeout(WAIT * 4):
        await asyncio.gather(produce(), *(consume(s) for s in subs))
    assert len(acked) == total
    assert set(acked.values()) == {1}
    assert await queue.depth(TOPIC, "g") == 0
    for sub in subs:
        await sub.close()


# -- memory backend specifics -----------------------------------------------------------------


async def test_memory_serialize_mode_round_trips_through_json() -> None:
    from tiercel.queue.memory import MemoryQueue

    queue = MemoryQueue(TOPICS, serialize=True)
    sent = Ping(n=1, payload={"at": datetime(2026, 1, 1, tzinfo=UTC).isoformat(), "list": [1, 2]})
    async with queue, queue.subscribe(TOPIC, "a") as a, queue.subscribe(TOPIC, "b") as b:
        await queue.publish(TOPIC, sent)
        [da] = await receive_n(a, 1)
        [db] = await receive_n(b, 1)
    assert da.message == sent == db.message
    assert da.message is not sent and da.message is not db.message
