"""Replies (SPEC §6.1): `reply_to` on sends, the quoted original kept current, and
history around a seq.

Personas: olivia owns `lobby` (public) and `secret` (private), mia is a member of both,
oscar is an outsider, stan is staff.
"""

from unittest import mock

import pytest

from chat import selectors, services
from chat.models import Message
from chat.serializers import message_to_dict
from core.errors import InvalidInput
from core.tests import pictures

pytestmark = pytest.mark.django_db


@pytest.fixture
def png_upload():
    return lambda: pictures.upload(pictures.small_png(), "a.png", "image/png")


def _fresh(message: Message) -> dict:
    return message_to_dict(Message.objects.get(pk=message.pk))


def test_reply_carries_the_quoted_original(olivia, mia, lobby, published, django_capture_on_commit_callbacks):
    original, _ = services.message_send(sender=mia, room=lobby, body="x" * 150)

    with django_capture_on_commit_callbacks(execute=True):
        reply, _ = services.message_send(sender=olivia, room=lobby, body="agreed", reply_to=original.id)

    quote = {
        "id": original.id, "seq": 1, "sender": {"username": "mia", "display_name": "mia", "avatar": None},
        "excerpt": "x" * 100, "recalled": False, "deleted": False,
    }
    assert reply.reply_to_id == original.id
    assert _fresh(reply)["reply_to"] == quote
    [(_, frame, _)] = published
    assert frame["type"] == "message" and frame["reply_to"] == quote


def test_the_quote_follows_the_original(olivia, mia, lobby):
    original, _ = services.message_send(sender=mia, room=lobby, body="first try")
    reply, _ = services.message_send(sender=olivia, room=lobby, body="hm", reply_to=original.id)
    other, _ = services.message_send(sender=mia, room=lobby, body="second")
    reply2, _ = services.message_send(sender=olivia, room=lobby, body="ok", reply_to=other.id)

    services.message_edit(user=mia, message_id=original.id, body="second try")
    assert _fresh(reply)["reply_to"]["excerpt"] == "second try"
    reply_rev = Message.objects.get(pk=reply.pk).rev
    assert reply_rev == reply.rev  # the reply itself did not change

    services.message_recall(user=mia, message_id=original.id)
    services.message_delete(user=mia, message_id=other.id)
    recalled, deleted = _fresh(reply)["reply_to"], _fresh(reply2)["reply_to"]
    assert (recalled["excerpt"], recalled["recalled"], recalled["deleted"]) == (None, True, False)
    assert (deleted["excerpt"], deleted["recalled"], deleted["deleted"]) == (None, False, True)


def test_a_reply_must_answer_a_live_message_of_the_same_room(olivia, mia, lobby, secret, db_state):
    elsewhere, _ = services.message_send(sender=mia, room=secret, body="private")
    gone, _ = services.message_send(sender=mia, room=lobby, body="gone")
    services.message_delete(user=mia, message_id=gone.id)
    before = db_state()

    for reply_to in (elsewhere.id, gone.id, gone.id + 100, "1", True, 1.5, 0, -1, 2**63, [1]):
        with pytest.raises(InvalidInput) as refused:
            services.message_send(sender=olivia, room=lobby, body="re", reply_to=reply_to)
        assert refused.value.code == "invalid"
    assert db_state() == before


def test_a_recalled_message_can_still_be_answered(olivia, mia, lobby):
    """It still has its place in the room (a placeholder); a reply racing the recall works."""
    original, _ = services.message_send(sender=mia, room=lobby, body="oops")
    services.message_recall(user=mia, message_id=original.id)

    reply, _ = services.message_send(sender=olivia, room=lobby, body="what was it?", reply_to=original.id)

    assert _fresh(reply)["reply_to"]["recalled"] is True


def test_an_image_can_be_a_reply(olivia, mia, lobby, png_upload):
    original, _ = services.message_send(sender=mia, room=lobby, body="show me")

    reply, _ = services.message_send_image(sender=olivia, room=lobby, upload=png_upload(), reply_to=original.id)

    assert _fresh(reply)["reply_to"]["id"] == original.id


def test_a_bad_reply_to_is_refused_before_the_image_is_processed(olivia, lobby, png_upload, settings):
    with mock.patch("core.images.process_upload") as process, pytest.raises(InvalidInput):
        services.message_send_image(sender=olivia, room=lobby, upload=png_upload(), reply_to=12345)

    assert not process.called
    assert not Message.objects.filter(kind=Message.Kind.IMAGE).exists()


def test_retention_dropping_the_original_leaves_a_reply_without_a_quote(olivia, mia, lobby, settings):
    original, _ = services.message_send(sender=mia, room=lobby, body="old")
    reply, _ = services.message_send(sender=olivia, room=lobby, body="re", reply_to=original.id)
    services.message_delete(user=mia, message_id=original.id)
    settings.PARLEY_TOMBSTONE_SECONDS = 1
    Message.objects.filter(pk=original.pk).update(deleted_at=original.created_at.replace(year=2000))

    services.room_purge(room=lobby)

    assert not Message.objects.filter(pk=original.pk).exists()
    assert _fresh(reply)["reply_to"] is None


# History around a seq ------------------------------------------------------------------------


@pytest.fixture
def thirty(olivia, lobby):
    for n in range(1, 31):
        services.message_send(sender=olivia, room=lobby, body=f"m{n}")
    return lobby


def _seqs(messages) -> list[int]:
    return [m.seq for m in messages]


def test_around_seq_centres_the_page(thirty):
    assert _seqs(selectors.message_around(room=thirty, seq=15, limit=10)) == list(range(10, 20))
    assert _seqs(selectors.message_around(room=thirty, seq=15, limit=1)) == [15]


def test_around_seq_near_either_end_fills_from_the_other_side(thirty):
    assert _seqs(selectors.message_around(room=thirty, seq=2, limit=10)) == list(range(1, 11))
    assert _seqs(selectors.message_around(room=thirty, seq=29, limit=10)) == list(range(21, 31))
    assert _seqs(selectors.message_around(room=thirty, seq=99, limit=5)) == list(range(26, 31))
    assert _seqs(selectors.message_around(room=thirty, seq=0, limit=5)) == list(range(1, 6))


def test_around_seq_leaves_deleted_messages_out(olivia, thirty):
    for seq in (14, 15, 16):
        services.message_delete(user=olivia, message_id=Message.objects.get(room=thirty, seq=seq).id)

    assert _seqs(selectors.message_around(room=thirty, seq=15, limit=6)) == [11, 12, 13, 17, 18, 19]


# REST ---------------------------------------------------------------------------------------


def test_rest_send_takes_reply_to_as_json_and_as_a_form_field(api, olivia, mia, lobby):
    original, _ = services.message_send(sender=mia, room=lobby, body="question")

    as_json = api(olivia).post("/api/rooms/lobby/messages/", {"body": "a", "reply_to": original.id}, format="json")
    with_image = api(olivia).post(
        "/api/rooms/lobby/messages/",
        {"image": pictures.upload(pictures.small_png(), "a.png", "image/png"), "reply_to": str(original.id)},
        format="multipart",
    )

    assert as_json.status_code == 201 and with_image.status_code == 201, with_image.content
    assert as_json.json()["reply_to"]["id"] == with_image.json()["reply_to"]["id"] == original.id
    assert as_json.json()["reply_to"]["excerpt"] == "question"


@pytest.mark.parametrize("reply_to", [999999, "x", "1.5", True, [1], {"id": 1}, -3])
def test_rest_send_with_a_bad_reply_to_is_invalid(api, olivia, mia, lobby, db_state, reply_to):
    services.message_send(sender=mia, room=lobby, body="question")
    before = db_state()

    response = api(olivia).post("/api/rooms/lobby/messages/", {"body": "a", "reply_to": reply_to}, format="json")

    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert db_state() == before


def test_rest_history_around_a_seq(api, olivia, thirty):
    response = api(olivia).get("/api/rooms/lobby/messages/?around_seq=15&limit=4")

    assert response.status_code == 200
    assert [m["seq"] for m in response.json()] == [13, 14, 15, 16]
    assert api(olivia).get("/api/rooms/lobby/messages/?around_seq=-1").status_code == 400
