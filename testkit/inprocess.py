"""Parley under `uvicorn.Server` inside the test process, in a thread with its own event
loop (uvloop, as `make run` gets it, or plain asyncio): for checks of what the server
object does, which a separate process cannot show. Needs Django's settings (tests only)."""

import asyncio
import threading
import time

import uvicorn
import uvloop
from asgiref.sync import sync_to_async
from django.db import connections

from testkit.servers import free_port, make_run_flags


def make_run_config(app, port: int, ws=None) -> uvicorn.Config:
    """uvicorn.Config with the WebSocket and proxy options of `make run` (and another
    WebSocket protocol class, if given)."""
    params = uvicorn.main.make_context("uvicorn", ["config.asgi:application", *make_run_flags()]).params
    options = {name: params[name] for name in ("ws_max_size", "ws_per_message_deflate", "proxy_headers", "server_header")}
    return uvicorn.Config(app, host="127.0.0.1", port=port, ws=ws or params["ws"], lifespan="off", log_config=None,
                          access_log=False, timeout_graceful_shutdown=2, **options)


class InProcessUvicorn:
    """`with InProcessUvicorn(...) as server:` Parley's application served on server.port."""

    def __init__(self, *, ws=None, loop: str = "uvloop"):
        from config.asgi import application

        self.port = free_port()
        self.server = uvicorn.Server(make_run_config(application, self.port, ws))
        self.loop = uvloop.new_event_loop() if loop == "uvloop" else asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self.server.serve(),), daemon=True)

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> "InProcessUvicorn":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn did not start"
            assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "uvicorn did not stop"
        # The consumers' database thread keeps its connection (CONN_MAX_AGE), and
        # pytest-django could not drop the test database.
        self.loop.run_until_complete(sync_to_async(connections.close_all)())
        self.loop.close()
