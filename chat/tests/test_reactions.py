"""Reactions (SPEC §6.1): chat.services.reaction_add / reaction_remove, the emoji rule,
and `reactions` on the message object.

Personas: olivia owns `lobby` (public) and `secret` (private), mia is a member of both,
oscar is an outsider, stan is staff.
"""

import pytest
from django.contrib.auth.models import AnonymousUser

from chat import events, selectors, services
from chat.models import Message, Reaction, Room
from chat.serializers import message_to_dict
from chat.services.reactions import clean_emoji
from core.errors import AuthRequired, InvalidInput, NotFound

pytestmark = pytest.mark.django_db

ONE_EMOJI = ["❤", "❤️", "👍", "👍🏽", "👨‍👩‍👧‍👦", "🇨🇳", "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
             "1️⃣", "#️⃣", "🫠", "©"]
NOT_ONE_EMOJI = ["", "a", "1", "#", "👍👍", "❤ ", " ❤", "🇨", "🇨🇳🇨", "\u200d", "🙂\u200d", "\u200d🙂", "🏽", "\ufe0f",
                 "x\u0301", ":+1:", "<script>", "👍" + "\u200d👍" * 10, None, 5, ["👍"]]


@pytest.mark.parametrize("emoji", ONE_EMOJI)
def test_one_emoji_is_accepted_exactly_as_sent(emoji):
    assert clean_emoji(emoji) == emoji


@pytest.mark.parametrize("value", NOT_ONE_EMOJI, ids=repr)
def test_anything_but_one_emoji_is_invalid(value):
    with pytest.raises(InvalidInput):
        clean_emoji(value)


@pytest.fixture
def note(mia, lobby):
    message, _ = services.message_send(sender=mia, room=lobby, body="lunch?")
    return message


def test_add_stores_the_row_takes_a_rev_and_announces_after_commit(
    olivia, lobby, note, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.reaction_add(user=olivia, message_id=note.id, emoji="👍")
    assert published == []
    for callback in callbacks:
        callback()

    assert list(Reaction.objects.values_list("message_id", "user__username", "emoji")) == [(note.id, "olivia", "👍")]
    assert Message.objects.get(pk=note.id).rev == Room.objects.get(pk=lobby.pk).rev == 2
    [(group, frame, envelope)] = published
    assert group == events.room_group(lobby.id)
    assert frame == {
        "type": "message.reactions", "id": note.id, "room": "lobby", "seq": 1, "rev": 2,
        "reactions": [{"emoji": "👍", "count": 1, "users": ["olivia"]}],
    }
    assert envelope["meta"]["created"] is False and not envelope["meta"]["recalled"] and not envelope["meta"]["deleted"]


def test_adding_twice_is_a_no_op(olivia, lobby, note, published, django_capture_on_commit_callbacks):
    services.reaction_add(user=olivia, message_id=note.id, emoji="👍")

    with django_capture_on_commit_callbacks(execute=True):
        services.reaction_add(user=olivia, message_id=note.id, emoji="👍")

    assert Reaction.objects.count() == 1 and published == []
    assert Room.objects.get(pk=lobby.pk).rev == 2


def test_remove_takes_a_rev_and_announces_removing_nothing_does_not(
    olivia, mia, lobby, note, published, django_capture_on_commit_callbacks
):
    services.reaction_add(user=olivia, message_id=note.id, emoji="👍")
    services.reaction_add(user=mia, message_id=note.id, emoji="👍")

    with django_capture_on_commit_callbacks(execute=True):
        services.reaction_remove(user=olivia, message_id=note.id, emoji="👍")
        services.reaction_remove(user=olivia, message_id=note.id, emoji="👍")
        services.reaction_remove(user=olivia, message_id=note.id, emoji="🎉")

    assert [f["reactions"] for _, f, _ in published] == [[{"emoji": "👍", "count": 1, "users": ["mia"]}]]
    assert [f["rev"] for _, f, _ in published] == [4]
    assert Room.objects.get(pk=lobby.pk).rev == 4


def test_variants_are_different_reactions(olivia, note):
    services.reaction_add(user=olivia, message_id=note.id, emoji="❤")
    services.reaction_add(user=olivia, message_id=note.id, emoji="❤️")

    assert message_to_dict(Message.objects.get(pk=note.id))["reactions"] == [
        {"emoji": "❤", "count": 1, "users": ["olivia"]}, {"emoji": "❤️", "count": 1, "users": ["olivia"]}
    ]


def test_at_most_twenty_distinct_emoji(olivia, mia, lobby, note):
    twenty = [chr(0x1F600 + n) for n in range(20)]
    for emoji in twenty:
        services.reaction_add(user=olivia, message_id=note.id, emoji=emoji)
    rev = Room.objects.get(pk=lobby.pk).rev

    with pytest.raises(InvalidInput) as refused:
        services.reaction_add(user=mia, message_id=note.id, emoji="🎉")
    assert refused.value.code == "invalid"

    services.reaction_add(user=mia, message_id=note.id, emoji=twenty[0])  # one already there: fine
    assert Reaction.objects.filter(emoji="🎉").count() == 0
    assert Room.objects.get(pk=lobby.pk).rev == rev + 1


def test_counts_are_exact_and_users_capped_at_fifty(make_user, olivia, note):
    people = [make_user(f"fan{n:02}") for n in range(55)]
    Reaction.objects.bulk_create(Reaction(message=note, user=person, emoji="🎉") for person in people)

    message = services.reaction_add(user=olivia, message_id=note.id, emoji="🎉")

    [entry] = message_to_dict(message)["reactions"]
    assert entry["count"] == 56
    assert entry["users"] == [f"fan{n:02}" for n in range(50)]


def test_readers_react_others_do_not(olivia, mia, oscar, stan, lobby, secret):
    public, _ = services.message_send(sender=mia, room=lobby, body="public")
    private, _ = services.message_send(sender=mia, room=secret, body="private")

    services.reaction_add(user=oscar, message_id=public.id, emoji="👀")  # anyone who may read
    for user, message_id in ((oscar, private.id), (stan, private.id), (mia, private.id + 100)):
        with pytest.raises(NotFound):
            services.reaction_add(user=user, message_id=message_id, emoji="👀")
    with pytest.raises(AuthRequired):
        services.reaction_add(user=AnonymousUser(), message_id=public.id, emoji="👀")


def test_recalled_and_deleted_messages_take_no_reactions(olivia, mia, lobby):
    recalled, _ = services.message_send(sender=mia, room=lobby, body="oops")
    services.message_recall(user=mia, message_id=recalled.id)
    deleted, _ = services.message_send(sender=mia, room=lobby, body="gone")
    services.message_delete(user=mia, message_id=deleted.id)

    with pytest.raises(InvalidInput):
        services.reaction_add(user=olivia, message_id=recalled.id, emoji="👍")
    with pytest.raises(NotFound):
        services.reaction_add(user=olivia, message_id=deleted.id, emoji="👍")
    assert not Reaction.objects.exists()


def test_a_bad_emoji_is_refused_before_anything_is_read(olivia, note, django_assert_num_queries):
    with django_assert_num_queries(0), pytest.raises(InvalidInput):
        services.reaction_add(user=olivia, message_id=note.id, emoji="not one")


def test_reaction_query_count_is_pinned(olivia, note, django_assert_max_num_queries):
    # savepoint, find the message, lock the room, read it again, its reactions, insert,
    # take the rev, update, release; the ban check of a public room
    with django_assert_max_num_queries(10):
        services.reaction_add(user=olivia, message_id=note.id, emoji="👍")
    with django_assert_max_num_queries(10):
        services.reaction_remove(user=olivia, message_id=note.id, emoji="👍")


def test_history_page_reads_reactions_and_replies_in_a_fixed_number_of_queries(
    olivia, mia, lobby, django_assert_num_queries
):
    def page_queries() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            [message_to_dict(m, room_slug="lobby") for m in selectors.message_history(room=lobby, limit=200)]
        return len(captured)

    first, _ = services.message_send(sender=mia, room=lobby, body="first")
    services.reaction_add(user=olivia, message_id=first.id, emoji="👍")
    small = page_queries()
    for n in range(20):
        reply, _ = services.message_send(sender=olivia, room=lobby, body=f"re {n}", reply_to=first.id)
        services.reaction_add(user=mia, message_id=reply.id, emoji="🎉")
        services.reaction_add(user=olivia, message_id=reply.id, emoji="👍")

    assert page_queries() == small == 2  # messages with senders and originals; reactions
    with django_assert_num_queries(2):
        [message_to_dict(m, room_slug="lobby") for m in selectors.message_changes_since(room_id=lobby.id, rev=0, limit=500)]


# REST ---------------------------------------------------------------------------------------


def _path(message_id: int, emoji: str) -> str:
    from urllib.parse import quote

    return f"/api/messages/{message_id}/reactions/{quote(emoji)}/"


def test_put_adds_and_answers_with_the_reactions_delete_removes(api, olivia, mia, note):
    response = api(olivia).put(_path(note.id, "❤️"))

    assert response.status_code == 200, response.content
    assert response.json() == {
        "id": note.id, "room": "lobby", "rev": 2, "reactions": [{"emoji": "❤️", "count": 1, "users": ["olivia"]}]
    }
    assert Reaction.objects.get().emoji == "❤\ufe0f"  # exactly as sent
    assert api(olivia).put(_path(note.id, "❤️")).json()["rev"] == 2  # again: nothing new

    response = api(olivia).delete(_path(note.id, "❤️"))

    assert response.status_code == 204 and not Reaction.objects.exists()
    assert api(olivia).delete(_path(note.id, "❤️")).status_code == 204


@pytest.mark.parametrize("emoji", ["a", "👍👍", "%20", "❤ "])
def test_put_of_anything_but_one_emoji_is_invalid(api, olivia, note, emoji):
    response = api(olivia).put(_path(note.id, emoji))

    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert not Reaction.objects.exists()


def test_the_twenty_first_emoji_is_invalid_over_rest(api, olivia, note):
    for n in range(20):
        assert api(olivia).put(_path(note.id, chr(0x1F600 + n))).status_code == 200

    response = api(olivia).put(_path(note.id, "🎉"))

    assert (response.status_code, response.json()["code"]) == (400, "invalid")


def test_reactions_need_a_login_and_the_room(api, mia, oscar, secret, note):
    private, _ = services.message_send(sender=mia, room=secret, body="private")

    assert api().put(_path(note.id, "👍")).status_code == 401
    assert api(oscar).put(_path(private.id, "👍")).status_code == 404
    assert api(oscar).delete(_path(private.id, "👍")).status_code == 404


def test_history_pages_show_reactions(api, olivia, note):
    services.reaction_add(user=olivia, message_id=note.id, emoji="👍")

    [message] = api(olivia).get("/api/rooms/lobby/messages/").json()

    assert message["reactions"] == [{"emoji": "👍", "count": 1, "users": ["olivia"]}]
