"""Group commit: sends from sockets into one room that arrive together share a transaction.

Sends into a room follow each other from taking their `seq` to their commit (the room's
row lock, chat/services/changes.py), and each of those stretches includes a WAL flush.
Here the sends of this process queue per room: while one batch commits, the next
gathers, and it commits as one transaction (up to PARLEY_GROUP_COMMIT_MAX sends), one
flush for all. A send that finds its room idle is a batch of one and waits for nothing.
The price: a batch holds the room's lock from its first send's numbers to its commit,
the checks of the sends after it included, and other processes' sends into the room
wait that long. (On PostgreSQL a batch of plain sends takes the lock only for the one
statement that stores it and commits.)

The batch is stored by `services.message_send_together`, in a few statements whatever
its size: what a send refused before writing answers, and how a batch whose write fails
goes one send per transaction, is said there. Every send is answered after its commit,
and the batch's events are published before the first answer. `seq` stays gap-free in
commit order. If the commit fails, every send of the batch fails and nothing is
announced. REST sends are not grouped (one request, one transaction).
"""

import asyncio
from weakref import WeakKeyDictionary

from django.conf import settings

from chat import events, services
from chat.models import Message


class _RoomQueue:
    """A room's sends waiting for the next batch; the queue lives while its committer runs."""

    def __init__(self):
        self.waiting: list[tuple[dict, asyncio.Future]] = []
        self.committer: asyncio.Task | None = None  # held here: the loop keeps only a weak reference


# Futures belong to one event loop; tests run many loops in one process.
_queues: WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _RoomQueue]] = WeakKeyDictionary()


async def run_send(**kwargs) -> tuple[Message, bool]:
    """`events.run_service(services.message_send, **kwargs)`, committed together with the
    other sends into the same room that are waiting meanwhile (PARLEY_GROUP_COMMIT)."""
    if not settings.PARLEY_GROUP_COMMIT:
        return await events.run_service(services.message_send, **kwargs)
    return await queue_send(**kwargs)


def queue_send(**kwargs) -> asyncio.Future:
    """Queue a send for its room's next batch (PARLEY_GROUP_COMMIT on); the future is its
    outcome. Sends into a room are stored in the order they were queued, so a socket may
    queue its next send before the last one is answered (chat.consumers)."""
    loop = asyncio.get_running_loop()
    rooms = _queues.setdefault(loop, {})
    room_id = kwargs["room"].pk
    future = loop.create_future()
    queue = rooms.get(room_id)
    if queue is None:
        queue = rooms[room_id] = _RoomQueue()
        queue.committer = asyncio.create_task(_commit_while_waiting(rooms, room_id, queue))
    queue.waiting.append((kwargs, future))
    return future


async def _commit_while_waiting(rooms: dict[int, _RoomQueue], room_id: int, queue: _RoomQueue) -> None:
    batch = []
    announcing: asyncio.Future | None = None  # the last batch's events going out, then its answers
    try:
        while queue.waiting or (announcing is not None and not announcing.done()):
            if not queue.waiting:
                # Sends that arrive meanwhile join this queue, behind what is announced.
                await asyncio.wait([announcing])
                continue
            size = settings.PARLEY_GROUP_COMMIT_MAX
            # A caller cancelled before its batch began (its socket went) is not sent.
            batch = [(kwargs, future) for kwargs, future in queue.waiting[:size] if not future.done()]
            del queue.waiting[:size]
            if batch:
                announcing = await _store(batch, after=announcing)
    finally:
        # No await since `queue.waiting` was found empty and the last announcement done: a
        # send arriving after this starts a new queue, whose events cannot overtake these.
        del rooms[room_id]
        # Someone still waits only if this task was cancelled (its loop is closing).
        for _, future in batch + queue.waiting:
            future.cancel()


async def _store(batch: list[tuple[dict, asyncio.Future]], *, after: asyncio.Future | None) -> asyncio.Future:
    """Commit the batch; return its announcement, which runs while the next batch commits:
    publishing (a round trip to Redis) is not part of the room's one-batch-at-a-time stretch."""
    pending = []
    try:
        outcomes, pending, error = await events.run_collecting(_commit, sends=[kwargs for kwargs, _ in batch])
        if error is not None:
            raise error
    except Exception as error:
        outcomes = [(None, error)] * len(batch)
    return asyncio.ensure_future(_announce_then_answer(batch, outcomes, pending, after=after))


async def _announce_then_answer(batch, outcomes, pending, *, after: asyncio.Future | None) -> None:
    if after is not None:
        await asyncio.wait([after])  # the previous batch's events first (rev order); never raises
    # The batch's events go out before any of its sends is answered.
    await events.publish_all(pending)
    for (_, future), (result, error) in zip(batch, outcomes, strict=True):
        if future.done():
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


def _commit(*, sends: list[dict]) -> list[tuple[tuple[Message, bool] | None, Exception | None]]:
    return services.message_send_together(sends)
