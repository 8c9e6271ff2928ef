"""The push worker: empties the Web Push outbox (chat.services.push.push_due) outside the
request and socket path. Runs as `manage.py push_worker`, or inside the server process
(PARLEY_PUSH_WORKER_EMBEDDED, the default: one command, one SQLite writer) as a thread
started on the ASGI lifespan startup. Pushes left when it stops wait in the database."""

import logging
import threading

from django.db import close_old_connections

log = logging.getLogger(__name__)

IDLE_SECONDS = 1.0


def run(stop: threading.Event, *, idle: float = IDLE_SECONDS) -> None:
    from chat.services.push import push_due

    while not stop.is_set():
        handled = 0
        try:
            close_old_connections()
            handled = push_due()
        except Exception:
            log.exception("push worker step failed")
        finally:
            close_old_connections()
        if not handled:
            stop.wait(idle)


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
