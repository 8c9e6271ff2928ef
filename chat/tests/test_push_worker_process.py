"""The push worker as its own process (`manage.py push_worker`, the compose `push`
service) against a real server: it is killed in the middle of sending and while messages
arrive, and started again: every pending push is delivered, at least once, repeats with
the same message id. Meanwhile the server itself pushes nothing (PARLEY_PUSH_WORKER_EMBEDDED
is off): pushing is outside the request path."""

import json
import secrets
import sys
import time

import pytest

from chat.tests.test_push import Browser, PushService
from testkit.servers import ServerProcess, Uvicorn, clean_env, free_port, http_get, migrate_and_collectstatic, running

pytestmark = pytest.mark.dbless

PASSWORD = "push worker test password"


class Client:
    def __init__(self, server, username):
        self.server, self.username = server, username
        assert self.call("POST", "/api/auth/register/", {"username": username, "password": PASSWORD}, auth=False)[0] == 201
        self.token = self.call("POST", "/api/auth/token/", {"username": username, "password": PASSWORD}, auth=False)[1]["token"]

    def call(self, method, path, body=None, *, auth=True):
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Token {self.token}"
        status, _, data = http_get(self.server.port, path, method=method, headers=headers,
                                   body=json.dumps(body) if body is not None else None)
        return status, json.loads(data) if data else None


def wait_for(predicate, what: str, timeout: float = 40):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def service():
    service = PushService()
    yield service
    service.close()


def test_a_killed_worker_loses_no_push(tmp_path, service):
    env = clean_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        STATIC_ROOT=tmp_path / "static",
        MEDIA_ROOT=tmp_path / "media",
        SECRET_KEY="push-worker-test-" + secrets.token_urlsafe(30),
        PARLEY_PUSH_ALLOW_INSECURE="true",
        PARLEY_PUSH_WORKER_EMBEDDED="false",
        PARLEY_RATE_BURST=1000,
        LOG_LEVEL="WARNING",
    )
    migrate_and_collectstatic(env)
    web = Uvicorn("web", env, "--log-level", "warning")
    worker = ServerProcess("push", [sys.executable, "manage.py", "push_worker"], port=free_port(), env=env)
    with running([web, worker]):
        web.start()
        olivia, mia = Client(web, "olivia"), Client(web, "mia")
        assert olivia.call("POST", "/api/rooms/", {"slug": "lobby", "name": "Lobby"})[0] == 201
        assert mia.call("POST", "/api/rooms/lobby/join/")[0] == 200
        assert mia.call("PUT", "/api/rooms/lobby/settings/", {"notify": "all"})[0] == 200
        browser = Browser()
        status, _ = mia.call("POST", "/api/push/subscriptions/", {"endpoint": service.endpoint("mia"), "keys": browser.keys()})
        assert status == 201

        def say(body):
            status, message = olivia.call("POST", "/api/rooms/lobby/messages/", {"body": body})
            assert status == 201
            return message["id"]

        def delivered():
            return [browser.read(push)["id"] for push in service.received]

        sent = [say("before the worker starts")]
        time.sleep(1.5)
        assert service.received == []  # the server does not push by itself
        worker.start(wait=False)
        wait_for(lambda: delivered() == sent, "the first push")

        # Killed while the push service holds its answer: that push is claimed, not done.
        service.stall.set()
        sent.append(say("sent while the worker is stuck"))
        wait_for(lambda: len(service.received) == 2, "the stuck push to arrive")
        worker.kill()
        service.stall.clear()
        service.released.set()
        sent += [say(f"while the worker is down {n}") for n in range(3)]
        time.sleep(1.5)
        assert len(service.received) == 2  # nobody pushes while the worker is down

        worker.start(wait=False)
        wait_for(lambda: set(delivered()) == set(sent), "every pending push after the restart")
        got = delivered()
        assert set(got) == set(sent)
        repeats = [message_id for message_id in set(got) if got.count(message_id) > 1]
        assert set(repeats) <= {sent[1]}  # only the push in flight at the kill may come twice
        status, subscriptions = mia.call("GET", "/api/push/subscriptions/")
        assert subscriptions[0]["last_success_at"]
