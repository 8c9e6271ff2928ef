"""core/rows.py: a row stored by insert() is the row Model.save() would have stored."""

import datetime

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.forms.models import model_to_dict

from chat.models import Message, Room
from core import rows


def _stored(message: Message) -> dict:
    row = model_to_dict(Message.objects.get(pk=message.pk))
    row.pop("id")
    row["created_at"] = Message.objects.get(pk=message.pk).created_at
    return row


def test_an_inserted_message_is_stored_as_save_would_store_it(olivia, mia, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    room = Room.objects.create(slug="lobby", name="Lobby")
    earlier = Message.objects.create(room=room, seq=1, rev=1, sender=olivia, body="first")
    fields = dict(
        room=room, seq=2, rev=2, sender=mia, kind=Message.Kind.IMAGE, body="look", html="<p>look</p>",
        client_id="c-1", reply_to=earlier, mentions=["olivia"], mentions_all=True, sender_name="bot",
        image=ContentFile(b"GIF89a", name="shot.gif"),
    )
    saved = Message.objects.create(**{**fields, "seq": 3, "rev": 3, "client_id": "c-2",
                                      "image": ContentFile(b"GIF89a", name="shot.gif")})
    before = datetime.datetime.now(datetime.UTC)

    inserted = rows.insert(Message(**fields))

    assert inserted.pk is not None and not inserted._state.adding
    assert inserted.pk > saved.pk
    mine, theirs = _stored(inserted), _stored(saved)
    # created_at came from auto_now_add, the uploaded picture was written to storage.
    assert mine.pop("created_at") >= before
    theirs.pop("created_at")
    assert mine.pop("image").name.endswith(".gif") and inserted.image.storage.exists(inserted.image.name)
    theirs.pop("image")
    assert {**mine, "seq": 3, "rev": 3, "client_id": "c-2"} == theirs
    assert mine["mentions"] == ["olivia"] and mine["reply_to"] == earlier.pk


def test_messages_inserted_together_get_their_ids_in_order(olivia, mia):
    room = Room.objects.create(slug="lobby", name="Lobby")
    messages = [Message(room=room, seq=seq, rev=seq, sender=[olivia, mia][seq % 2], body=f"m{seq}") for seq in range(1, 8)]

    rows.insert_many(messages)

    stored = dict(Message.objects.filter(room=room).values_list("pk", "body"))
    assert [stored[message.pk] for message in messages] == [f"m{seq}" for seq in range(1, 8)]
    assert all(not message._state.adding for message in messages)


@pytest.mark.postgres
def test_a_batch_insert_is_one_statement_whatever_its_number_of_rows(olivia, mia):
    """On PostgreSQL the rows go in as one array per column: PostgreSQL (and a pool
    connection's prepared statements) see one statement, not one per batch size."""
    room = Room.objects.create(slug="lobby", name="Lobby")

    def batch(first: int, size: int) -> list[Message]:
        return [
            Message(room=room, seq=seq, rev=seq, sender=[olivia, mia][seq % 2], body=f"m{seq}", mentions=["mia"])
            for seq in range(first, first + size)
        ]

    statements = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        two, thirty_two = rows.insert_many(batch(1, 2)), rows.insert_many(batch(3, 32))

    assert len(statements) == 2 and statements[0] == statements[1]
    stored = {m.pk: (m.seq, m.sender_id, m.body, m.mentions) for m in Message.objects.filter(room=room)}
    assert [stored[m.pk] for m in two + thirty_two] == [
        (seq, [olivia, mia][seq % 2].pk, f"m{seq}", ["mia"]) for seq in range(1, 35)
    ]
