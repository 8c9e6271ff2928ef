"""Per-room retention (SPEC §2): room_purge, `manage.py purge_messages`, and what
connected and resuming clients see.

Personas: olivia owns `lobby` (public), mia is a member.
"""

import io
import json
from datetime import timedelta
from unittest import mock

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.utils import timezone

from chat import retention, selectors, services
from chat.models import Message, Room
from chat.tests.test_consumers import no_leftover_socket_counts, send, sockets  # noqa: F401 (fixtures)
from chat.tests.test_images import media_files, post_image
from core.tests import pictures

db = database_sync_to_async


@pytest.fixture
def published():
    sent = []
    with mock.patch("chat.events.publish", side_effect=lambda group, event: sent.append(json.loads(event["frame"]))):
        yield sent


def fill(room, user, count: int, *, prefix="m") -> list[Message]:
    return [services.message_send(sender=user, room=room, body=f"{prefix}{n}")[0] for n in range(count)]


def keep(room: Room, *, count=None, age=None) -> Room:
    Room.objects.filter(pk=room.pk).update(retention_max_count=count, retention_max_age=age)
    room.refresh_from_db()
    return room


@pytest.mark.django_db
def test_count_retention_turns_the_oldest_into_announced_tombstones(
    olivia, lobby, published, django_capture_on_commit_callbacks
):
    sent = fill(lobby, olivia, 5)
    keep(lobby, count=3)

    with django_capture_on_commit_callbacks(execute=True):
        result = services.room_purge(room=lobby)

    assert result == (2, 0)
    rows = list(Message.objects.filter(room=lobby).order_by("seq"))
    assert [(m.seq, m.deleted, m.body) for m in rows] == [
        (1, True, ""), (2, True, ""), (3, False, "m2"), (4, False, "m3"), (5, False, "m4"),
    ]
    assert [m.rev for m in rows[:2]] == [6, 7] and all(m.deleted_at for m in rows[:2])
    assert Room.objects.get(pk=lobby.pk).rev == 7
    assert published == [
        {"type": "message.deleted", "id": sent[0].id, "room": "lobby", "seq": 1, "rev": 6},
        {"type": "message.deleted", "id": sent[1].id, "room": "lobby", "seq": 2, "rev": 7},
    ]
    # Safe to run again: nothing more to do, nothing announced.
    published.clear()
    assert services.room_purge(room=lobby) == (0, 0) and published == []


@pytest.mark.django_db
def test_age_retention_and_rooms_without_a_policy(olivia, mia, lobby):
    other = services.room_create(creator=olivia, slug="forever", name="Forever")
    old = fill(lobby, olivia, 3, prefix="old") + fill(other, olivia, 2, prefix="old")
    Message.objects.filter(pk__in=[m.pk for m in old]).update(created_at=timezone.now() - timedelta(hours=25))
    fill(lobby, mia, 2, prefix="new")
    keep(lobby, age=timedelta(hours=24))

    assert retention.purge_all() == {"lobby": (3, 0)}

    assert list(Message.objects.filter(room=lobby, deleted=False).values_list("body", flat=True)) == ["new0", "new1"]
    assert Message.objects.filter(room=other, deleted=False).count() == 2  # no policy: everything kept
    assert [m.body for m in selectors.message_history(room=lobby)] == ["new0", "new1"]


@pytest.mark.django_db
def test_purged_images_leave_the_disk(api, mia, lobby, django_capture_on_commit_callbacks):
    post_image(api(mia), "lobby", pictures.small_png(), "a.png")
    fill(lobby, mia, 1)
    keep(lobby, count=1)
    assert len(media_files()) == 1

    with django_capture_on_commit_callbacks(execute=True):
        services.room_purge(room=lobby)

    assert media_files() == []
    assert not Message.objects.get(room=lobby, seq=1).image


@pytest.mark.django_db
def test_old_tombstones_are_dropped_and_the_horizon_rises(olivia, lobby, settings):
    settings.PARLEY_TOMBSTONE_SECONDS = 3600
    fill(lobby, olivia, 4)
    keep(lobby, count=2)
    now = timezone.now()
    assert services.room_purge(room=lobby, now=now) == (2, 0)  # tombstones are kept a while
    assert Room.objects.get(pk=lobby.pk).horizon_rev == 0

    assert services.room_purge(room=lobby, now=now + timedelta(seconds=3601)) == (0, 2)

    assert list(Message.objects.filter(room=lobby).values_list("seq", flat=True)) == [3, 4]
    room = Room.objects.get(pk=lobby.pk)
    assert room.horizon_rev == 6 and room.rev == 6  # the two tombstones had revs 5 and 6
    # The REST history and since_rev pages only show what is left.
    assert [m.seq for m in selectors.message_changes_since(room_id=room.id, rev=0, limit=50)] == [3, 4]


@pytest.mark.django_db
def test_since_rev_below_the_horizon_answers_410_truncated_not_a_list_without_the_deletions(
    api, olivia, mia, lobby, settings
):
    settings.PARLEY_TOMBSTONE_SECONDS = 3600
    fill(lobby, olivia, 4)  # revs 1-4; mia's screen shows all four, she saw up to rev 4
    keep(lobby, count=2)
    now = timezone.now()
    services.room_purge(room=lobby, now=now)  # seq 1, 2 become tombstones at revs 5, 6
    services.room_purge(room=lobby, now=now + timedelta(seconds=3601))  # and are dropped: horizon 6

    for rev in (0, 4, 5):
        response = api(mia).get(f"/api/rooms/lobby/messages/?since_rev={rev}")
        # A 200 here would be [] or [3, 4] without the deletions of 1 and 2, which stay on screen.
        assert response.status_code == 410, (rev, response.content)
        assert response.json()["code"] == "truncated" and response.json()["detail"]
    # From the horizon on, nothing is missing: the list answers as before.
    assert api(mia).get("/api/rooms/lobby/messages/?since_rev=6").json() == []
    assert [m["seq"] for m in api(mia).get("/api/rooms/lobby/messages/").json()] == [3, 4]  # the reload


@pytest.mark.django_db
def test_the_command_shows_progress_and_can_run_again(olivia, lobby):
    fill(lobby, olivia, 260)
    keep(lobby, count=10)
    out = io.StringIO()

    call_command("purge_messages", "-v", "2", stdout=out)

    text = out.getvalue()
    assert "lobby: 200 removed" in text and "lobby: 250 removed" in text  # batch by batch
    assert "250 messages removed" in text
    assert Message.objects.filter(room=lobby, deleted=False).count() == 10
    again = io.StringIO()
    call_command("purge_messages", stdout=again)
    assert "0 messages removed, 0 tombstones dropped" in again.getvalue()


@pytest.mark.django_db
def test_the_command_loops_with_every(olivia, lobby, settings):
    fill(lobby, olivia, 3)
    keep(lobby, count=1)
    settings.PARLEY_PURGE_SECONDS = 7
    naps = []

    def nap(seconds):
        naps.append(seconds)
        if len(naps) == 2:
            raise KeyboardInterrupt

    with (
        mock.patch("time.sleep", side_effect=nap),
        # It would end the test's transaction (on PostgreSQL): the loop's own business.
        mock.patch("chat.management.commands.purge_messages.close_old_connections"),
        pytest.raises(KeyboardInterrupt),
    ):
        call_command("purge_messages", "--every", stdout=io.StringIO())

    assert naps == [7, 7]
    assert Message.objects.filter(room=lobby, deleted=False).count() == 1


@pytest.mark.django_db
def test_the_command_skips_when_another_process_holds_the_lock(olivia, lobby):
    fill(lobby, olivia, 3)
    keep(lobby, count=1)
    out = io.StringIO()
    with mock.patch.object(retention, "exclusive") as exclusive:
        exclusive.return_value.__enter__.return_value = False
        call_command("purge_messages", stdout=out)
    assert "Another process is purging" in out.getvalue()
    assert Message.objects.filter(room=lobby, deleted=False).count() == 3


# What clients see ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_connected_clients_see_purged_messages_disappear(sockets, lobby, olivia, mia):  # noqa: F811
    watcher, _ = await sockets.room("lobby", user=mia)
    sender, _ = await sockets.room("lobby", user=olivia)
    acks = [await send(sender, f"m{n}", f"c{n}") for n in range(3)]
    await db(keep)(lobby, count=1)

    await db(services.room_purge)(room=lobby)

    gone = [await watcher.receive_type("message.deleted") for _ in range(2)]
    assert [(f["id"], f["rev"]) for f in gone] == [(acks[0]["id"], 4), (acks[1]["id"], 5)]


@pytest.mark.django_db(transaction=True)
async def test_resuming_across_dropped_tombstones_is_truncated(sockets, lobby, olivia, mia, settings):  # noqa: F811
    settings.PARLEY_TOMBSTONE_SECONDS = 60
    await db(fill)(lobby, olivia, 4)  # revs 1-4
    await db(keep)(lobby, count=2)
    await db(services.room_purge)(room=lobby)  # tombstones: revs 5, 6
    await db(services.room_purge)(room=lobby, now=timezone.now() + timedelta(minutes=2))  # dropped: horizon 6
    client, hello = await sockets.room("lobby", user=mia)
    assert hello["room"]["rev"] == 6

    # Saw rev 5 but not the deletion at rev 6, which is gone now: truncated, reload via REST.
    await client.send({"type": "resume", "rev": 5})
    resumed = await client.receive_type("resumed")
    assert resumed["truncated"] is True and resumed["rev"] == 6

    # Saw everything up to the horizon: complete.
    await client.send({"type": "resume", "rev": 6})
    assert (await client.receive_type("resumed"))["truncated"] is False

    # Saw rev 4 (before the purge): the tombstones it missed are gone, so truncated.
    await client.send({"type": "resume", "rev": 4})
    assert (await client.receive_type("resumed"))["truncated"] is True


@pytest.mark.django_db(transaction=True)
async def test_resuming_over_kept_tombstones_replays_the_deletions(sockets, lobby, olivia, mia):  # noqa: F811
    messages = await db(fill)(lobby, olivia, 3)
    await db(keep)(lobby, count=1)
    await db(services.room_purge)(room=lobby)
    client, _ = await sockets.room("lobby", user=mia)

    await client.send({"type": "resume", "rev": 3})

    frames = [await client.receive_type("message.deleted"), await client.receive_type("message.deleted")]
    assert [f["id"] for f in frames] == [messages[0].id, messages[1].id]
    assert (await client.receive_type("resumed"))["truncated"] is False



@pytest.mark.postgres
@pytest.mark.django_db
def test_only_one_process_purges_at_a_time():
    """With Redis (the scaled configuration) the purge lock is shared by every process."""
    with retention.exclusive() as first:
        with retention.exclusive() as second:
            assert (first, second) == (True, False)
        assert retention.purge_all() is None
    with retention.exclusive() as again:
        assert again is True
