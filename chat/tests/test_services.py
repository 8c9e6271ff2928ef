"""The rules in chat/services.py, below any door: numbering, idempotency, permissions,
and that events leave only after commit.

Personas: olivia owns `lobby` (public) and `secret` (private), mia is a member of both,
oscar is an outsider, stan is staff.
"""

import json
from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.utils import timezone

from chat import events, services
from chat.models import Membership, Message, Room
from core.errors import AuthRequired, InvalidInput, NotAllowed, NotFound, RateLimited, RecallWindowPassed, TooLarge

pytestmark = pytest.mark.django_db


@pytest.fixture
def published():
    """Every (group, frame, envelope) that chat.events.publish was asked to send."""
    sent = []

    def record(group, event):
        frame = json.loads(event["frame"]) if "frame" in event else None
        sent.append((group, frame, event))

    with mock.patch("chat.events.publish", side_effect=record):
        yield sent


def frames(sent, group=None) -> list[dict]:
    return [frame for g, frame, _ in sent if group is None or g == group]


# Sending ------------------------------------------------------------------------------


def test_send_broadcasts_exactly_one_message_event_after_commit(
    mia, lobby, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        message, created = services.message_send(sender=mia, room=lobby, body="hi", client_id="c-1")
    assert created
    assert published == []  # nothing leaves before the commit

    for callback in callbacks:
        callback()

    assert [(g, f["type"]) for g, f, _ in published] == [(events.room_group(lobby.id), "message")]
    group, frame, envelope = published[0]
    assert frame["id"] == message.id and frame["body"] == "hi" and frame["seq"] == 1
    assert frame["client_id"] == "c-1" and frame["sender"]["username"] == "mia"
    assert envelope["rev"] == message.rev == 1


def test_rolled_back_send_is_never_announced(mia, lobby, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            services.message_send(sender=mia, room=lobby, body="hi")
            raise RuntimeError("the surrounding work failed")

    assert published == []
    assert not Message.objects.exists()
    assert Room.objects.get(pk=lobby.pk).last_seq == 0


def test_retry_with_same_client_id_stores_and_announces_nothing_new(
    mia, lobby, published, django_capture_on_commit_callbacks
):
    first, _ = services.message_send(sender=mia, room=lobby, body="hi", client_id="c-1")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again, created = services.message_send(sender=mia, room=lobby, body="changed", client_id="c-1")

    assert not created and again.id == first.id and again.body == "hi"
    assert callbacks == [] and published == []
    assert Message.objects.count() == 1
    assert Room.objects.get(pk=lobby.pk).rev == 1


def test_client_id_is_unique_per_sender_across_rooms(mia, lobby, secret):
    first, _ = services.message_send(sender=mia, room=lobby, body="hi", client_id="c-1")

    again, created = services.message_send(sender=mia, room=secret, body="hi", client_id="c-1")

    assert not created and again.id == first.id and again.room_id == lobby.id
    assert Room.objects.get(pk=secret.pk).last_seq == 1  # only the invitation's system message


def test_seq_and_rev_count_up_and_the_room_follows(olivia, mia, lobby):
    one, _ = services.message_send(sender=olivia, room=lobby, body="one")
    two, _ = services.message_send(sender=mia, room=lobby, body="two")
    services.message_recall(user=olivia, message_id=one.id)
    three, _ = services.message_send(sender=mia, room=lobby, body="three")

    assert [(m.seq, m.rev) for m in Message.objects.order_by("seq")] == [(1, 3), (2, 2), (3, 4)]
    room = Room.objects.get(pk=lobby.pk)
    assert (room.last_seq, room.rev) == (3, 4)
    assert (lobby.last_seq, lobby.rev) == (3, 4)  # the caller's object is kept current too
    assert three.seq == 3


def test_sending_moves_only_the_senders_read_marker(olivia, mia, lobby):
    services.message_send(sender=olivia, room=lobby, body="one")
    services.message_send(sender=mia, room=lobby, body="two")

    markers = dict(Membership.objects.filter(room=lobby).values_list("user__username", "last_read_seq"))
    assert markers == {"olivia": 1, "mia": 2}


@pytest.mark.parametrize(
    "body, error",
    [("", InvalidInput), ("  \n ", InvalidInput), (None, InvalidInput), (5, InvalidInput), ("x" * 4001, TooLarge)],
)
def test_bad_bodies_store_and_announce_nothing(
    mia, lobby, published, django_capture_on_commit_callbacks, body, error
):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(error):
        services.message_send(sender=mia, room=lobby, body=body)

    assert not Message.objects.exists() and published == []


def test_max_body_follows_the_setting(mia, lobby, settings):
    settings.PARLEY_MAX_BODY = 5
    services.message_send(sender=mia, room=lobby, body="12345")

    with pytest.raises(TooLarge):
        services.message_send(sender=mia, room=lobby, body="123456")


def test_outsiders_and_anonymous_cannot_send(oscar, secret, lobby):
    with pytest.raises(NotFound):
        services.message_send(sender=oscar, room=secret, body="let me in")
    with pytest.raises(AuthRequired):
        services.message_send(sender=AnonymousUser(), room=lobby, body="hi")
    with pytest.raises(AuthRequired):
        services.message_send(sender=None, room=lobby, body="hi")

    assert Message.objects.filter(sender__isnull=False).count() == 0


def test_removed_member_can_no_longer_send(olivia, mia, secret):
    services.room_remove_member(by=olivia, room=secret, username="mia")

    with pytest.raises(NotFound):
        services.message_send(sender=mia, room=secret, body="still here?")


def test_send_query_count_is_pinned(mia, lobby, secret, django_assert_max_num_queries):
    services.message_send(sender=mia, room=lobby, body="warm up")

    # the ban check of a public room, the mute check, savepoint, is the sender a member
    # (sending joins a public room), bump the room's numbers (locking it), insert, its
    # search document, look up the members with push subscriptions (the Web Push outbox),
    # move read marker, release
    with django_assert_max_num_queries(10):
        services.message_send(sender=mia, room=lobby, body="hi", client_id="c-1")
    # the membership check of a private room instead of the ban check; no join check
    with django_assert_max_num_queries(9):
        services.message_send(sender=mia, room=secret, body="hi", client_id="c-2")


# Recall and delete ---------------------------------------------------------------------


def test_recall_erases_content_and_announces_after_commit(
    mia, lobby, published, django_capture_on_commit_callbacks
):
    message, _ = services.message_send(sender=mia, room=lobby, body="oops")

    with django_capture_on_commit_callbacks(execute=True):
        services.message_recall(user=mia, message_id=message.id)

    message.refresh_from_db()
    assert message.recalled and message.body == "" and not message.image
    assert frames(published) == [{"type": "message.recalled", "id": message.id, "room": "lobby", "seq": 1, "rev": 2}]


def test_recall_twice_changes_nothing_more(mia, lobby, published, django_capture_on_commit_callbacks):
    message, _ = services.message_send(sender=mia, room=lobby, body="oops")
    services.message_recall(user=mia, message_id=message.id)

    with django_capture_on_commit_callbacks(execute=True):
        services.message_recall(user=mia, message_id=message.id)

    assert published == [] and Room.objects.get(pk=lobby.pk).rev == 2


def test_only_the_sender_recalls_and_only_within_the_window(olivia, mia, stan, lobby, settings):
    message, _ = services.message_send(sender=mia, room=lobby, body="mine")
    for other in (olivia, stan):  # not the owner, not staff
        with pytest.raises(NotAllowed) as refused:
            services.message_recall(user=other, message_id=message.id)
        assert refused.value.code == "forbidden"

    settings.PARLEY_RECALL_SECONDS = 10
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(seconds=11))
    with pytest.raises(RecallWindowPassed):
        services.message_recall(user=mia, message_id=message.id)

    message.refresh_from_db()
    assert not message.recalled and message.body == "mine" and message.rev == 1


@pytest.mark.parametrize("message_id", ["1", None, 1.0, True])
def test_recall_and_delete_want_an_integer_id(mia, lobby, message_id):
    services.message_send(sender=mia, room=lobby, body="x")

    with pytest.raises(InvalidInput):
        services.message_recall(user=mia, message_id=message_id)
    with pytest.raises(InvalidInput):
        services.message_delete(user=mia, message_id=message_id)


def test_delete_keeps_a_tombstone_and_announces_it(
    olivia, mia, lobby, published, django_capture_on_commit_callbacks
):
    message, _ = services.message_send(sender=mia, room=lobby, body="bye")

    with django_capture_on_commit_callbacks(execute=True):
        services.message_delete(user=olivia, message_id=message.id)  # the room owner

    tombstone = Message.objects.get(pk=message.pk)
    assert tombstone.deleted and tombstone.body == "" and tombstone.seq == 1 and tombstone.rev == 2
    assert frames(published) == [{"type": "message.deleted", "id": message.id, "room": "lobby", "seq": 1, "rev": 2}]
    assert published[0][2]["meta"]["was_live"] is True


def test_deleting_a_recalled_message_says_it_no_longer_counted(
    mia, lobby, published, django_capture_on_commit_callbacks
):
    message, _ = services.message_send(sender=mia, room=lobby, body="oops")
    services.message_recall(user=mia, message_id=message.id)

    with django_capture_on_commit_callbacks(execute=True):
        services.message_delete(user=mia, message_id=message.id)

    assert published[0][2]["meta"]["was_live"] is False


def test_a_delete_that_lost_the_race_changes_and_announces_nothing(
    olivia, mia, lobby, published, django_capture_on_commit_callbacks
):
    """Defect: message_delete did not re-check `deleted` under the lock, so a delete
    that committed between another's check and its lock was tombstoned and announced
    again (the two-thread version is in test_concurrency.py)."""
    message, _ = services.message_send(sender=mia, room=lobby, body="twice")
    lock_room = services.messages.lock_room

    def other_delete_commits_first(room_id):
        Message.objects.filter(pk=message.pk).update(deleted=True, body="", rev=2)
        Room.objects.filter(pk=room_id).update(rev=2)
        return lock_room(room_id)

    with mock.patch("chat.services.messages.lock_room", side_effect=other_delete_commits_first):
        with django_capture_on_commit_callbacks(execute=True), pytest.raises(NotFound):
            services.message_delete(user=olivia, message_id=message.id)

    assert published == []


def test_deleting_a_message_purged_meanwhile_is_not_found(olivia, mia, lobby, published):
    """Defect: a message dropped by retention between the check and the lock was a 500."""
    message, _ = services.message_send(sender=mia, room=lobby, body="old")
    lock_room = services.messages.lock_room

    def purged_first(room_id):
        Message.objects.filter(pk=message.pk).delete()
        return lock_room(room_id)

    with mock.patch("chat.services.messages.lock_room", side_effect=purged_first), pytest.raises(NotFound):
        services.message_delete(user=olivia, message_id=message.id)
    assert Room.objects.get(pk=lobby.pk).rev == 1


def test_who_may_delete(olivia, mia, oscar, stan, lobby, secret):
    services.room_join(user=oscar, room=lobby)
    owners, _ = services.message_send(sender=olivia, room=lobby, body="owner")
    for user in (mia, oscar):
        with pytest.raises(NotAllowed):
            services.message_delete(user=user, message_id=owners.id)
    services.message_delete(user=stan, message_id=owners.id)  # staff

    private, _ = services.message_send(sender=olivia, room=secret, body="private")
    with pytest.raises(NotFound):
        services.message_delete(user=oscar, message_id=private.id)
    with pytest.raises(NotFound):
        services.message_delete(user=stan, message_id=999_999)
    # Staff moderate rooms they cannot read (the admin's delete action relies on it).
    services.message_delete(user=stan, message_id=private.id)
    private.refresh_from_db()
    assert private.deleted and private.body == ""


def test_rate_limit_refuses_and_stores_nothing_but_answers_retries(mia, lobby, settings):
    settings.PARLEY_RATE_BURST = 2
    settings.PARLEY_RATE_INTERVAL = 60
    first, _ = services.message_send(sender=mia, room=lobby, body="one", client_id="r1")
    services.message_send(sender=mia, room=lobby, body="two", client_id="r2")
    with pytest.raises(RateLimited) as limited:
        services.message_send(sender=mia, room=lobby, body="three", client_id="r3")
    assert 59 <= limited.value.retry_after <= 61
    assert Message.objects.filter(room=lobby).count() == 2
    # A retry of a message that was stored is answered with it, limit or not.
    again, created = services.message_send(sender=mia, room=lobby, body="one", client_id="r1")
    assert (again.id, created) == (first.id, False)


# Rooms --------------------------------------------------------------------------------


def test_room_update_is_for_moderators_and_says_what_changed(
    olivia, mia, oscar, stan, lobby, secret, published, django_capture_on_commit_callbacks
):
    with pytest.raises(NotAllowed):
        services.room_update(by=mia, room=lobby, name="Mine")  # a plain member
    with pytest.raises(NotFound):
        services.room_update(by=oscar, room=secret, name="Mine")  # cannot see it
    with pytest.raises(InvalidInput):
        services.room_update(by=olivia, room=lobby, name="n" * 81)
    with pytest.raises(InvalidInput):
        services.room_update(by=olivia, room=lobby, kind="dm")
    dm, _ = services.dm_get_or_create(user=olivia, other_username="mia")
    with pytest.raises(InvalidInput):
        services.room_update(by=stan, room=dm, kind="public")
    services.room_update(by=olivia, room=lobby, name=" Lobby ", kind="public")  # no change: no message
    assert not Message.objects.filter(room=lobby).exists()

    with django_capture_on_commit_callbacks(execute=True):
        services.room_update(by=stan, room=lobby, name="Hall", kind="private")  # staff, not a member

    room = Room.objects.get(pk=lobby.pk)
    assert (room.name, room.kind, room.rev) == ("Hall", "private", 1)
    [(_, frame, envelope)] = published
    assert frame["body"] == "stan renamed the room to “Hall” and made the room private"
    assert envelope["public"] is False and sorted(envelope["keep"]) == sorted([olivia.id, mia.id])


def test_a_socket_holding_a_room_that_went_private_cannot_post_in_it(mia, oscar, lobby):
    """Defect: a room socket keeps the Room it opened with; an outsider's socket on a
    public room went on posting after it became private. The kind is checked again
    under the room lock."""
    held = Room.objects.get(pk=lobby.pk)  # what the socket read when it connected
    Room.objects.filter(pk=lobby.pk).update(kind=Room.Kind.PRIVATE)

    with pytest.raises(NotFound):
        services.message_send(sender=oscar, room=held, body="still here?")

    assert not Message.objects.exists() and Room.objects.get(pk=lobby.pk).rev == 0
    services.message_send(sender=mia, room=Room.objects.get(pk=lobby.pk), body="members still can")


def test_a_join_racing_a_switch_to_private_is_refused(oscar, lobby):
    held = Room.objects.get(pk=lobby.pk)  # read as public just before the switch
    Room.objects.filter(pk=lobby.pk).update(kind=Room.Kind.PRIVATE)

    with pytest.raises(NotFound):
        services.room_join(user=oscar, room=held)
    assert not Membership.objects.filter(user=oscar).exists()


def test_staff_invite_and_remove_in_any_room(stan, mia, oscar, secret):
    """Staff moderate everywhere (selectors.room_may_moderate), the admin acts as staff."""
    services.room_invite(by=stan, room=secret, username="oscar")
    services.room_remove_member(by=stan, room=secret, username="mia")
    assert sorted(Membership.objects.filter(room=secret).values_list("user__username", flat=True)) == ["olivia", "oscar"]


def test_room_create_makes_the_creator_owner(oscar):
    room = services.room_create(creator=oscar, slug="den", name="  Den  ", kind="private")

    assert room.name == "Den"
    assert Membership.objects.get(room=room).role == Membership.Role.OWNER


def test_room_create_refuses_a_taken_slug_without_a_trace(oscar, lobby):
    with pytest.raises(InvalidInput):
        services.room_create(creator=oscar, slug="lobby", name="Mine")

    assert Room.objects.count() == 1 and not Membership.objects.filter(user=oscar).exists()


def test_invite_announces_to_the_room_and_to_the_invitee(
    olivia, oscar, secret, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        membership = services.room_invite(by=olivia, room=secret, username="oscar")

    assert membership.last_read_seq == 1  # earlier history is not "unread" for him
    assert frames(published, events.room_group(secret.id))[0]["body"] == "olivia added oscar"
    (group, _, envelope), = [p for p in published if p[0] == events.user_group(oscar.id)]
    assert (envelope["control"], envelope["room_id"]) == ("room.added", secret.id)


def test_invite_twice_is_quiet(olivia, secret, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.room_invite(by=olivia, room=secret, username="mia")

    assert published == [] and Message.objects.filter(room=secret).count() == 1


def test_removing_from_a_private_room_revokes_the_members_access(
    olivia, mia, secret, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.room_remove_member(by=olivia, room=secret, username="mia")

    (group, frame, envelope), = published
    assert group == events.room_group(secret.id)
    assert frame["body"] == "mia was removed" and envelope["revoke"] == [mia.id]


def test_admin_may_invite_and_remove(olivia, mia, oscar, secret):
    Membership.objects.filter(room=secret, user=mia).update(role=Membership.Role.ADMIN)

    services.room_invite(by=mia, room=secret, username="oscar")
    services.room_remove_member(by=mia, room=secret, username="oscar")

    with pytest.raises(NotAllowed):
        services.room_remove_member(by=mia, room=secret, username="olivia")  # the owner stays


def test_direct_conversations_cannot_be_left(olivia, mia):
    dm = Room.objects.create(slug="dm-1-2", name="dm", kind=Room.Kind.DM)
    Membership.objects.create(room=dm, user=olivia)
    Membership.objects.create(room=dm, user=mia)

    with pytest.raises(NotAllowed):
        services.room_leave(user=olivia, room=dm)
    with pytest.raises(NotAllowed):
        services.room_remove_member(by=olivia, room=dm, username="mia")
    assert dm.memberships.count() == 2


# Read markers -------------------------------------------------------------------------


def test_mark_read_moves_forward_only_and_tells_the_users_sockets(
    olivia, mia, lobby, published, django_capture_on_commit_callbacks
):
    for i in range(4):
        services.message_send(sender=olivia, room=lobby, body=f"m{i}")

    with django_capture_on_commit_callbacks(execute=True):
        assert services.room_mark_read(user=mia, room=lobby, seq=3) == 1
        assert services.room_mark_read(user=mia, room=lobby, seq=1) == 1

    assert Membership.objects.get(room=lobby, user=mia).last_read_seq == 3
    assert frames(published) == [{"type": "unread", "room": "lobby", "count": 1, "mentions": 0, "last_seq": 4}] * 2
    assert {g for g, _, _ in published} == {events.user_group(mia.id)}


def test_unread_skips_system_recalled_and_deleted_messages(olivia, mia, oscar, secret):
    counted, _ = services.message_send(sender=olivia, room=secret, body="counts")
    recalled, _ = services.message_send(sender=olivia, room=secret, body="recalled")
    deleted, _ = services.message_send(sender=olivia, room=secret, body="deleted")
    services.message_recall(user=olivia, message_id=recalled.id)
    services.message_delete(user=olivia, message_id=deleted.id)
    services.room_invite(by=olivia, room=secret, username="oscar")

    assert services.room_mark_read(user=mia, room=secret, seq=0) == 1
    assert Message.objects.filter(room=secret, kind=Message.Kind.SYSTEM).count() == 2
