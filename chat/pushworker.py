"""The push worker: empties the Web Push outbox (chat.services.push.push_due) outside the
request and socket path. Runs as `manage.py push_worker`, or inside the server process
(PARLEY_PUSH_WORKER_EMBEDDED, the default: one command, one SQLite writer) as a thread
started on the ASGI lifespan startup. Pushes left when it stops wait in the database."""

import logging
import threading

from django.db import DatabaseError, close_old_connections, connection

log = logging.getLogger(__name__)

IDLE_SECONDS = 1.0
# After a failed step (the database away or not migrated yet): wait longer, say it once.
FAILED_SECONDS = 5.0


def run(stop: threading.Event, *, idle: float = IDLE_SECONDS) -> None:
    from chat.services.push import push_due

    failing = False
    while not stop.is_set():
        handled, failed = 0, False
        try:
            close_old_connections()
            handled = push_due()
        except DatabaseError as error:
            failed = True
            if not failing:
                log.warning("push worker: database unavailable (%s); pending pushes wait", error)
        except Exception:
            failed = True
            log.exception("push worker step failed")
        finally:
            close_old_connections()
        failing = failed
        if not handled:
            stop.wait(FAILED_SECONDS if failed else idle)
    connection.close()  # this thread's: the database sees the worker go at once


_embedded: tuple[threading.Thread, threading.Event] | None = None


def start_embedded() -> None:
    global _embedded
    if _embedded is not None:
        return
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(stop,), name="parley-push-worker", daemon=True)
    thread.start()
    _embedded = (thread, stop)


def stop_embedded() -> None:
    global _embedded
    if _embedded is None:
        return
    thread, stop = _embedded
    stop.set()
    thread.join(timeout=15)
    _embedded = None
