"""Editing messages (SPEC §6.1): chat.services.message_edit and the version history.

Personas: olivia owns `lobby` (public) and `secret` (private), mia is a member of both,
oscar is an outsider, stan is staff.
"""

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from chat import events, selectors, services
from chat.formatting import render
from chat.models import Message, MessageVersion, Reaction, Room
from core.errors import AuthRequired, InvalidInput, NotAllowed, NotFound, TooLarge

pytestmark = pytest.mark.django_db


def test_edit_stores_the_new_body_keeps_the_original_and_takes_the_next_rev(
    mia, lobby, published, django_capture_on_commit_callbacks
):
    message, _ = services.message_send(sender=mia, room=lobby, body="teh plan")
    services.message_send(sender=mia, room=lobby, body="later")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        edited = services.message_edit(user=mia, message_id=message.id, body="the **plan**")
    assert published == []  # nothing leaves before the commit
    for callback in callbacks:
        callback()

    row = Message.objects.get(pk=message.id)
    assert (row.body, row.html) == ("the **plan**", "<p>the <strong>plan</strong></p>")
    assert row.edited_at is not None and row.edited_at == edited.edited_at
    assert (row.seq, row.rev) == (1, 3)  # keeps its seq, takes the room's next rev
    room = Room.objects.get(pk=lobby.pk)
    assert (room.last_seq, room.rev) == (2, 3)
    assert list(MessageVersion.objects.values_list("message_id", "body", "edited_at")) == [
        (message.id, "teh plan", message.created_at)
    ]
    [(group, frame, envelope)] = published
    assert group == events.room_group(lobby.id)
    assert frame == {
        "type": "message.edited", "id": message.id, "room": "lobby", "seq": 1, "rev": 3,
        "body": "the **plan**", "html": "<p>the <strong>plan</strong></p>", "edited_at": row.edited_at.isoformat(),
        "mentions": [], "mentions_all": False,
    }
    assert envelope["rev"] == 3
    assert envelope["meta"]["created"] is False and not envelope["meta"]["recalled"] and not envelope["meta"]["deleted"]


def test_every_version_is_listed_original_first(mia, lobby):
    message, _ = services.message_send(sender=mia, room=lobby, body="one")
    first = services.message_edit(user=mia, message_id=message.id, body="two").edited_at
    second = services.message_edit(user=mia, message_id=message.id, body="three").edited_at

    assert selectors.message_versions(user=mia, message_id=message.id) == [
        ("one", message.created_at), ("two", first), ("three", second)
    ]
    assert second >= first >= message.created_at


def test_a_message_never_edited_has_one_version(olivia, mia, lobby):
    message, _ = services.message_send(sender=mia, room=lobby, body="as sent")

    assert selectors.message_versions(user=olivia, message_id=message.id) == [("as sent", message.created_at)]
    assert not MessageVersion.objects.exists()


def test_the_same_body_again_changes_nothing(mia, lobby, published, django_capture_on_commit_callbacks):
    message, _ = services.message_send(sender=mia, room=lobby, body="same")

    with django_capture_on_commit_callbacks(execute=True):
        again = services.message_edit(user=mia, message_id=message.id, body="  same \n")

    assert again.edited_at is None and again.rev == 1
    assert published == [] and not MessageVersion.objects.exists()
    assert Room.objects.get(pk=lobby.pk).rev == 1


def test_only_the_sender_edits(olivia, mia, stan, lobby):
    message, _ = services.message_send(sender=mia, room=lobby, body="mine")

    for other in (olivia, stan):  # not the room's owner, not staff
        with pytest.raises(NotAllowed) as refused:
            services.message_edit(user=other, message_id=message.id, body="theirs")
        assert refused.value.code == "forbidden"
    assert Message.objects.get(pk=message.id).body == "mine"


def test_recalled_or_deleted_messages_cannot_be_edited(mia, lobby):
    recalled, _ = services.message_send(sender=mia, room=lobby, body="oops")
    services.message_recall(user=mia, message_id=recalled.id)
    deleted, _ = services.message_send(sender=mia, room=lobby, body="gone")
    services.message_delete(user=mia, message_id=deleted.id)

    for message in (recalled, deleted):
        with pytest.raises(InvalidInput) as refused:
            services.message_edit(user=mia, message_id=message.id, body="back")
        assert refused.value.code == "invalid"
    assert Room.objects.get(pk=lobby.pk).rev == 4


def test_outsiders_and_anonymous_users_get_nothing(mia, oscar, secret, lobby):
    message, _ = services.message_send(sender=mia, room=secret, body="private")

    with pytest.raises(NotFound):
        services.message_edit(user=oscar, message_id=message.id, body="x")
    with pytest.raises(NotFound):
        services.message_edit(user=mia, message_id=message.id + 1000, body="x")
    with pytest.raises(AuthRequired):
        services.message_edit(user=AnonymousUser(), message_id=message.id, body="x")


@pytest.mark.parametrize(
    "body, error", [("", InvalidInput), ("   ", InvalidInput), (None, InvalidInput), (7, InvalidInput),
                    ("x" * 4001, TooLarge)]
)
def test_bad_bodies_change_nothing(mia, lobby, published, django_capture_on_commit_callbacks, body, error):
    message, _ = services.message_send(sender=mia, room=lobby, body="fine")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(error):
        services.message_edit(user=mia, message_id=message.id, body=body)

    assert Message.objects.get(pk=message.id).body == "fine" and published == []


@pytest.mark.parametrize("message_id", ["1", None, True, 1.0, -1, 2**63])
def test_edit_wants_an_integer_id(mia, lobby, message_id):
    services.message_send(sender=mia, room=lobby, body="hi")

    with pytest.raises(InvalidInput):
        services.message_edit(user=mia, message_id=message_id, body="x")


def test_an_image_caption_may_be_emptied(mia, lobby):
    message, _ = services.message_send(
        sender=mia, room=lobby, body="caption", kind=Message.Kind.IMAGE, image="messages/x.png"
    )

    edited = services.message_edit(user=mia, message_id=message.id, body="")

    assert (edited.body, edited.html) == ("", "")
    assert selectors.message_versions(user=mia, message_id=message.id)[0] == ("caption", message.created_at)


def test_edit_window_follows_the_setting(mia, lobby, settings):
    message, _ = services.message_send(sender=mia, room=lobby, body="old")
    Message.objects.filter(pk=message.id).update(created_at=timezone.now() - timedelta(days=400))

    services.message_edit(user=mia, message_id=message.id, body="no limit by default")

    settings.PARLEY_EDIT_SECONDS = 60
    with pytest.raises(NotAllowed) as refused:
        services.message_edit(user=mia, message_id=message.id, body="too late")
    assert refused.value.code == "forbidden"
    fresh, _ = services.message_send(sender=mia, room=lobby, body="new")
    assert services.message_edit(user=mia, message_id=fresh.id, body="in time").body == "in time"


def test_recall_and_delete_take_the_versions_and_reactions_with_them(olivia, mia, lobby):
    recalled, _ = services.message_send(sender=mia, room=lobby, body="v1")
    deleted, _ = services.message_send(sender=mia, room=lobby, body="w1")
    for message in (recalled, deleted):
        services.message_edit(user=mia, message_id=message.id, body="v2")
        services.reaction_add(user=olivia, message_id=message.id, emoji="👍")
    assert MessageVersion.objects.count() == 2 and Reaction.objects.count() == 2

    services.message_recall(user=mia, message_id=recalled.id)
    services.message_delete(user=olivia, message_id=deleted.id)

    assert not MessageVersion.objects.exists() and not Reaction.objects.exists()
    row = Message.objects.get(pk=recalled.id)
    assert (row.body, row.html, row.edited_at) == ("", "", None)
    assert selectors.message_versions(user=olivia, message_id=recalled.id) == []
    with pytest.raises(NotFound):
        selectors.message_versions(user=olivia, message_id=deleted.id)


def test_retention_takes_the_versions_and_reactions_too(olivia, mia, lobby):
    message, _ = services.message_send(sender=mia, room=lobby, body="v1")
    services.message_edit(user=mia, message_id=message.id, body="v2")
    services.reaction_add(user=olivia, message_id=message.id, emoji="👍")
    Room.objects.filter(pk=lobby.pk).update(retention_max_count=0)
    lobby.refresh_from_db()

    services.room_purge(room=lobby)

    assert not MessageVersion.objects.exists() and not Reaction.objects.exists()


def test_versions_are_for_readers_of_the_room(olivia, mia, oscar, secret, lobby, settings):
    private, _ = services.message_send(sender=mia, room=secret, body="private")
    public, _ = services.message_send(sender=mia, room=lobby, body="public")

    with pytest.raises(NotFound):
        selectors.message_versions(user=oscar, message_id=private.id)
    assert selectors.message_versions(user=oscar, message_id=public.id) == [("public", public.created_at)]
    assert selectors.message_versions(user=AnonymousUser(), message_id=public.id)[0][0] == "public"
    settings.PARLEY_ANONYMOUS_READ = False
    with pytest.raises(NotFound):
        selectors.message_versions(user=AnonymousUser(), message_id=public.id)


def test_edit_query_count_is_pinned(mia, lobby, secret, django_assert_max_num_queries):
    message, _ = services.message_send(sender=mia, room=lobby, body="one")
    private, _ = services.message_send(sender=mia, room=secret, body="one")

    # savepoint, find the message, lock the room, read it again with its details, its
    # reactions (for the answer), keep the old body, take the rev, update, its search
    # document, release; the ban check of a public room
    with django_assert_max_num_queries(11):
        services.message_edit(user=mia, message_id=message.id, body="two")
    # the membership check of a private room instead
    with django_assert_max_num_queries(11):
        services.message_edit(user=mia, message_id=private.id, body="two")


def test_html_is_rendered_on_send_and_on_edit(mia, lobby):
    message, _ = services.message_send(sender=mia, room=lobby, body="<b>hi</b> *there*")
    assert message.html == render("<b>hi</b> *there*") == "<p>&lt;b&gt;hi&lt;/b&gt; <em>there</em></p>"

    services.message_edit(user=mia, message_id=message.id, body="[x](javascript:alert(1))")

    assert Message.objects.get(pk=message.id).html == "<p>[x](javascript:alert(1))</p>"


# REST ---------------------------------------------------------------------------------------


def test_patch_edits_and_answers_with_the_message(api, mia, lobby):
    message, _ = services.message_send(sender=mia, room=lobby, body="teh")

    response = api(mia).patch(f"/api/messages/{message.id}/", {"body": "the ~~end~~"}, format="json")

    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["id"], data["body"], data["html"], data["rev"]) == (message.id, "the ~~end~~", "<p>the <s>end</s></p>", 2)
    assert data["edited_at"] is not None and data["seq"] == 1


@pytest.mark.parametrize(
    "who, body, status, code",
    [("olivia", "x", 403, "forbidden"), ("oscar", "x", 403, "forbidden"), (None, "x", 401, "auth_required"),
     ("mia", "", 400, "invalid"), ("mia", None, 400, "invalid"), ("mia", "x" * 4001, 413, "too_large")],
)
def test_patch_refusals(api, olivia, mia, oscar, lobby, db_state, who, body, status, code):
    message, _ = services.message_send(sender=mia, room=lobby, body="mine")
    before = db_state()
    user = {"olivia": olivia, "mia": mia, "oscar": oscar, None: None}[who]

    response = api(user).patch(f"/api/messages/{message.id}/", {"body": body}, format="json")

    assert (response.status_code, response.json()["code"]) == (status, code)
    assert db_state() == before


def test_patch_of_a_recalled_message_is_invalid(api, mia, lobby):
    message, _ = services.message_send(sender=mia, room=lobby, body="oops")
    services.message_recall(user=mia, message_id=message.id)

    response = api(mia).patch(f"/api/messages/{message.id}/", {"body": "back"}, format="json")

    assert (response.status_code, response.json()["code"]) == (400, "invalid")


def test_patch_of_a_message_in_a_room_you_cannot_read_is_404(api, mia, oscar, secret):
    message, _ = services.message_send(sender=mia, room=secret, body="private")

    response = api(oscar).patch(f"/api/messages/{message.id}/", {"body": "x"}, format="json")

    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_history_lists_every_version_original_first(api, olivia, mia, oscar, lobby, secret):
    message, _ = services.message_send(sender=mia, room=lobby, body="one")
    services.message_edit(user=mia, message_id=message.id, body="two")
    private, _ = services.message_send(sender=mia, room=secret, body="private")

    response = api(oscar).get(f"/api/messages/{message.id}/history/")

    assert response.status_code == 200
    current = Message.objects.get(pk=message.id)
    assert response.json() == [
        {"body": "one", "edited_at": message.created_at.isoformat()},
        {"body": "two", "edited_at": current.edited_at.isoformat()},
    ]
    assert api().get(f"/api/messages/{message.id}/history/").status_code == 200  # anonymous, public room
    assert api(oscar).get(f"/api/messages/{private.id}/history/").status_code == 404
    assert api(mia).get(f"/api/messages/{private.id}/history/").json() == [
        {"body": "private", "edited_at": private.created_at.isoformat()}
    ]


# Admin --------------------------------------------------------------------------------------


def test_admin_shows_versions_and_reactions_read_only(client, olivia, mia, stan, lobby):
    message, _ = services.message_send(sender=mia, room=lobby, body="first words")
    services.message_edit(user=mia, message_id=message.id, body="second words")
    services.reaction_add(user=olivia, message_id=message.id, emoji="🦉")
    stan.is_superuser = True
    stan.save()
    client.force_login(stan)

    page = client.get(f"/admin/chat/message/{message.id}/change/").content.decode()

    assert "first words" in page and "🦉" in page and "olivia" in page
    assert 'name="versions-0-body"' not in page and 'name="reactions-0-emoji"' not in page  # nothing editable
    assert 'name="versions-TOTAL_FORMS"' in page


def test_a_nul_character_is_refused_as_invalid_not_a_server_error(api, mia, lobby, db_state):
    """PostgreSQL text cannot hold NUL: the edit (and the send) answered 500 there."""
    message, _ = services.message_send(sender=mia, room=lobby, body="fine")
    before = db_state()

    edit = api(mia).patch(f"/api/messages/{message.id}/", {"body": "a\x00b"}, format="json")
    send = api(mia).post("/api/rooms/lobby/messages/", {"body": "a\x00b"}, format="json")

    assert (edit.status_code, edit.json()["code"]) == (400, "invalid")
    assert (send.status_code, send.json()["code"]) == (400, "invalid")
    assert db_state() == before
