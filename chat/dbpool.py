"""Where services run when called from the event loop (chat.events.run_service).

Channels runs every `database_sync_to_async` call of a process on one thread, so on
PostgreSQL each send waited for the commit (WAL flush included) of the one before it,
and one worker stalled long before it ran out of CPU. On PostgreSQL, services therefore
run on a small pool of PARLEY_DB_THREADS threads, each with its own persistent
connection (CONN_MAX_AGE, CONN_HEALTH_CHECKS): commits overlap, while `seq` and `rev`
still follow commit order without gaps, because each is taken by an `UPDATE … RETURNING`
that keeps the room row locked until commit (chat/services/changes.py). Each send is
still answered only after the commit that stored it; sends into one room that arrive
together share that commit (chat/groupcommit.py).

Those connections prepare the statements they run more than once (PARLEY_DB_PREPARE):
a batch of sends is a few statements that differ only by their values, whatever the
batch's size (core/rows.py), and PostgreSQL spent about half of its CPU parsing and
planning them again. Only these: what else a process runs (HTTP pages, search, the
hub's reads) is neither as hot nor as alike, and a prepared search would be planned
once for every search term.

SQLite allows one writer at a time, and its connections are best kept to one thread
(closing one checkpoints the WAL): there every call stays on Channels' database thread.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import SyncToAsync
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import close_old_connections, connections
from django.db.backends.signals import connection_created
from django.dispatch import receiver
from psycopg.types.numeric import IntBinaryDumper, IntDumper

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_pool_thread = threading.local()

# psycopg prepares a statement once it has run it this many times (its own default: 5).
# A socket thread runs a few statements over and over: each is worth preparing early.
PREPARE_THRESHOLD = 2


def threads() -> int:
    """How many threads services run on in this process: 1 unless on PostgreSQL."""
    if connections["default"].vendor != "postgresql":
        return 1
    return settings.PARLEY_DB_THREADS


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        with _lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(
                    max_workers=threads(), thread_name_prefix="parley-db", initializer=_mark_pool_thread
                )
    return _executor


def _mark_pool_thread() -> None:
    _pool_thread.member = True


@receiver(connection_created)
def _prepare_statements(sender, connection, **kwargs) -> None:
    if getattr(_pool_thread, "member", False) and connection.vendor == "postgresql" and settings.PARLEY_DB_PREPARE:
        connection.connection.prepare_threshold = PREPARE_THRESHOLD
        connection.connection.adapters.register_dumper(int, _Int4BinaryDumper)  # arrays (core/rows.py)
        connection.connection.adapters.register_dumper(int, _Int4Dumper)  # the rest, and the default


class _Int4Dumper(IntDumper):
    """psycopg's dumper for `int`, except that every number that fits is an int4.

    psycopg keys a prepared statement by its text and its parameters' types, and types an
    `int` by its size: int2 below 32,768, int4 above. So a statement had a shape for
    each mix of small and large ids and seqs among its parameters, each counted and
    prepared apart, while psycopg keeps 100. Group commits of every size into four
    rooms, with ids and seqs on both sides of 32,768, ran 736 shapes; 13 with this and
    core/rows.py's one statement for any number of rows. int4, not int8: PostgreSQL
    widens an int4 wherever an int8 is wanted, not the other way round (a function that
    takes an integer would refuse a bigint).
    """

    def upgrade(self, obj: int, format):
        if -(2**31) <= obj < 2**31:
            return self._int4_dumper
        return super().upgrade(obj, format)


class _Int4BinaryDumper(IntBinaryDumper):
    upgrade = _Int4Dumper.upgrade


def run_in_pool(function):
    """`function` as a coroutine function, run like `database_sync_to_async(function)`
    (old connections closed around it), on the pool when there is one."""
    single = database_sync_to_async(function)

    async def call(*args, **kwargs):
        if threads() == 1:
            return await single(*args, **kwargs)
        return await _PoolCall(function, thread_sensitive=False, executor=_pool())(*args, **kwargs)

    return call


# A connection that answered within this many seconds is used again without a health check.
HEALTHY_FOR_SECONDS = 1.0
_last_answered = threading.local()


class _PoolCall(SyncToAsync):
    """database_sync_to_async's connection hygiene (old and broken connections closed
    before and after the call), except the health check. With CONN_HEALTH_CHECKS, Django
    checks a persistent connection with `SELECT 1` before its first query of every call:
    a round trip per send, each also a wait for the GIL behind the event loop. A
    connection that answered less than HEALTHY_FOR_SECONDS ago is not asked again; after
    a pause it is, as before. One that broke meanwhile fails that call's query, and is
    closed and reopened for the next (errors_occurred)."""

    def thread_handler(self, loop, *args, **kwargs):
        close_old_connections()
        connection = connections["default"]
        answered = getattr(_last_answered, "at", None)
        if connection.connection is not None and answered is not None:
            if time.monotonic() - answered < HEALTHY_FOR_SECONDS:
                connection.health_check_done = True
        try:
            return super().thread_handler(loop, *args, **kwargs)
        finally:
            _last_answered.at = None if connection.errors_occurred else time.monotonic()
            close_old_connections()


def shutdown() -> None:
    """Close the pool's connections and stop its threads (tests, before dropping a database)."""
    global _executor
    with _lock:
        executor, _executor = _executor, None
    if executor is None:
        return
    # Each task holds its thread until all are running: one close per thread.
    count = executor._max_workers
    barrier = threading.Barrier(count)

    def close():
        connections.close_all()
        barrier.wait(timeout=5)

    for future in [executor.submit(close) for _ in range(count)]:
        future.result()
    executor.shutdown(wait=True)
