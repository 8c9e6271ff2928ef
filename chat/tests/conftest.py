"""Rooms for the chat tests. olivia owns both; mia is a member of both; oscar of neither."""

import pytest
from rest_framework.test import APIClient

from chat import services
from chat.models import Membership, Message, Room


@pytest.fixture
def lobby(olivia, mia):
    """Public room: olivia owns it, mia is a member (from the start: no "joined" message,
    so the room's history is empty; joining itself is tested in test_pages)."""
    room = services.room_create(creator=olivia, slug="lobby", name="Lobby")
    Membership.objects.create(room=room, user=mia)
    room.refresh_from_db()
    return room


@pytest.fixture
def secret(olivia, mia):
    """Private room: olivia owns it and invited mia (system message seq 1)."""
    room = services.room_create(creator=olivia, slug="secret", name="Secret", kind=Room.Kind.PRIVATE)
    services.room_invite(by=olivia, room=room, username="mia")
    room.refresh_from_db()
    return room


@pytest.fixture
def api():
    """api(user) -> an APIClient logged in as `user` (anonymous when None)."""

    def make(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return make


@pytest.fixture
def db_state():
    """A snapshot of every chat row, to show a refused request changed nothing."""

    def snapshot():
        return (
            list(Room.objects.order_by("id").values()),
            list(Membership.objects.order_by("id").values()),
            list(Message.objects.order_by("id").values()),
        )

    return snapshot


@pytest.fixture(autouse=True)
def fresh_presence():
    """No one is online at the start of a test (the in-process presence outlives event loops)."""
    from chat import presence

    presence.reset()
    yield
    presence.reset()


@pytest.fixture
def published():
    """Every (group, frame, envelope) chat.events.publish was asked to send, frames parsed."""
    import json
    from unittest import mock

    sent = []

    def record(group, event):
        sent.append((group, json.loads(event["frame"]) if "frame" in event else None, event))

    with mock.patch("chat.events.publish", side_effect=record):
        yield sent


@pytest.fixture(scope="session", autouse=True)
def database_threads_closed(django_db_setup):
    """The database threads' connections (chat/dbpool.py's and Channels' one) are closed
    before the test database is dropped: PostgreSQL refuses to drop a database in use."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    from chat import dbpool

    dbpool.shutdown()
    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)
