"""`manage.py import_slack` (SPEC §6.5) on a Slack export built here: users without
passwords, public channels as rooms, messages in ts order with their times, threads as
replies, reactions, an edit, a deleted thread parent, a file as a link; the private
part and notices skipped with reasons; a second run doubles nothing."""

import io
import json
import zipfile
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from chat.models import Membership, Message, Reaction, Room

pytestmark = pytest.mark.django_db
User = get_user_model()

T0 = 1_700_000_000  # 2023-11-14 22:13:20 UTC


def ts(offset: int, micro: int = 0) -> str:
    return f"{T0 + offset}.{micro:06d}"


USERS = [
    {"id": "U1", "name": "alice", "real_name": "Alice Liddell", "profile": {"display_name": "Alice", "real_name": "Alice Liddell"}},
    {"id": "U2", "name": "bob", "profile": {"display_name": "", "real_name": "鲍勃"}},
    {"id": "U3", "name": "carol", "deleted": True, "profile": {"real_name": "Carol"}},
    {"id": "U4", "name": "mia", "profile": {"display_name": "Mia from Slack"}},  # taken here
]
CHANNELS = [
    {"id": "C1", "name": "general", "creator": "U1", "members": ["U1", "U2", "U4"]},
    {"id": "C2", "name": "random", "creator": "U2", "members": ["U1", "U2"]},
]
GENERAL_DAY1 = [
    {"type": "message", "subtype": "channel_join", "user": "U2", "text": "<@U2> has joined the channel", "ts": ts(0)},
    {"type": "message", "user": "U1", "text": "Hello <@U2>, see <https://example.com|the plan> &amp; *go*", "ts": ts(10),
     "reactions": [{"name": "+1", "users": ["U2", "U4"], "count": 2}, {"name": "heart::skin-tone-2", "users": ["U1"], "count": 1},
                   {"name": "partyparrot", "users": ["U2"], "count": 1}]},
    {"type": "message", "user": "U2", "text": "a thread starts", "ts": ts(20), "thread_ts": ts(20), "reply_count": 2,
     "reply_users": ["U1", "U3"]},
    {"type": "message", "user": "U1", "text": "first reply", "ts": ts(30), "thread_ts": ts(20), "parent_user_id": "U2"},
    # Same second, later microseconds: still after the one above.
    {"type": "message", "user": "U3", "text": "second reply", "ts": ts(30, 5), "thread_ts": ts(20), "parent_user_id": "U2"},
]
GENERAL_DAY2 = [
    # Listed out of order on purpose: the import sorts by ts.
    {"type": "message", "user": "U2", "text": "typo fixed", "ts": ts(86_410), "edited": {"user": "U2", "ts": ts(86_500)}},
    {"type": "message", "user": "U4", "text": "", "ts": ts(86_400),
     "files": [{"id": "F1", "name": "report.pdf", "title": "Q3 report", "mimetype": "application/pdf",
                "url_private": "https://files.slack.com/files-pri/T1-F1/report.pdf",
                "permalink": "https://acme.slack.com/files/U4/F1/report.pdf"}]},
    {"type": "message", "subtype": "tombstone", "user": "USLACKBOT", "text": "This message was deleted.",
     "ts": ts(86_420), "thread_ts": ts(86_420), "reply_count": 1},
    {"type": "message", "user": "U1", "text": "reply to a deleted parent", "ts": ts(86_430), "thread_ts": ts(86_420)},
    {"type": "message", "user": "USLACKBOT", "text": "Reminder: standup", "ts": ts(86_440)},
    {"type": "message", "subtype": "bot_message", "bot_id": "B1", "username": "Jenkins", "text": "Build #7 passed",
     "ts": ts(86_450)},
]
RANDOM_DAY1 = [
    {"type": "message", "user": "U2", "text": "随机频道的第一条消息", "ts": ts(5)},
    {"type": "message", "user": "U1", "text": "second", "ts": ts(15)},
]


def export_zip(tmp_path, **extra) -> str:
    path = tmp_path / "slack-export.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("users.json", json.dumps(USERS))
        archive.writestr("channels.json", json.dumps(CHANNELS))
        archive.writestr("groups.json", json.dumps([{"id": "G1", "name": "secret-plans"}]))
        archive.writestr("general/2023-11-14.json", json.dumps(GENERAL_DAY1))
        archive.writestr("general/2023-11-15.json", json.dumps(GENERAL_DAY2))
        archive.writestr("random/2023-11-14.json", json.dumps(RANDOM_DAY1))
        for name, content in extra.items():
            archive.writestr(name, content)
    return str(path)


def run(path, *args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_slack", path, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def at(offset: int, micro: int = 0) -> datetime:
    return datetime.fromtimestamp(T0 + offset + micro / 1e6, tz=UTC)


def test_import_then_again(tmp_path, mia):
    path = export_zip(tmp_path)
    out, err = run(path, "--room-prefix", "slack-")

    assert "[" + "#" * 30 + "] 13/13 messages" in err  # the progress bar, complete
    assert "users: 4 created" in out and "rooms: 2 created" in out
    assert "messages: 11 imported" in out and "reactions: 3 imported" in out
    for reason in ("channel_join", "groups.json: private conversations", "partyparrot",
                   "messages from users not in users.json"):
        assert reason in out, out
    assert "user 'mia' (U4) is 'mia-slack' here" in out

    alice, bob, carol = (User.objects.get(username=n) for n in ("alice", "bob", "carol"))
    slack_mia = User.objects.get(username="mia-slack")
    assert not alice.has_usable_password() and alice.is_active and not carol.is_active
    assert (alice.profile.display_name, bob.profile.display_name, slack_mia.profile.display_name) == (
        "Alice", "鲍勃", "Mia from Slack")
    assert mia.profile.display_name == ""  # the local mia is untouched

    general, random = Room.objects.get(slug="slack-general"), Room.objects.get(slug="slack-random")
    assert general.kind == random.kind == Room.Kind.PUBLIC
    assert set(Membership.objects.filter(room=general).values_list("user__username", "role")) == {
        ("alice", "owner"), ("bob", "member"), ("mia-slack", "member")}

    messages = list(Message.objects.filter(room=general).order_by("seq"))
    assert [m.seq for m in messages] == list(range(1, 10))
    assert sorted(m.rev for m in messages) == list(range(1, general.rev + 1)) and general.last_seq == 9
    assert [m.created_at for m in messages] == [at(10), at(20), at(30), at(30, 5), at(86_400), at(86_410),
                                                at(86_420), at(86_430), at(86_450)]
    hello, parent, first, second, upload, typo, tombstone, orphan, bot = messages
    assert hello.sender == alice
    assert hello.body == "Hello @bob, see [the plan](https://example.com) & **go**"
    assert '<a href="https://example.com"' in hello.html and "<strong>go</strong>" in hello.html
    assert sorted(Reaction.objects.filter(message=hello).values_list("emoji", "user__username")) == sorted(
        [("👍", "bob"), ("👍", "mia-slack"), ("❤️", "alice")])
    assert first.reply_to == parent and second.reply_to == parent and second.sender == carol
    assert upload.body == "📎 [report.pdf](https://acme.slack.com/files/U4/F1/report.pdf)"
    assert typo.edited_at == at(86_500)
    assert tombstone.deleted and tombstone.body == "" and orphan.reply_to == tombstone
    assert bot.sender is None and bot.sender_name == "Jenkins"
    assert [m.body for m in Message.objects.filter(room=random).order_by("seq")] == ["随机频道的第一条消息", "second"]
    # Imported history starts read.
    assert set(Membership.objects.filter(room=general).values_list("last_read_seq", flat=True)) == {9}

    before = (list(Message.objects.order_by("id").values()), list(Reaction.objects.order_by("id").values()),
              User.objects.count(), list(Room.objects.order_by("id").values("id", "rev", "last_seq")))
    out, _ = run(path, "--room-prefix", "slack-")
    assert "users: 0 created, 4 already imported" in out
    assert "rooms: 0 created, 2 already imported" in out
    assert "messages: 0 imported, 11 already imported" in out
    after = (list(Message.objects.order_by("id").values()), list(Reaction.objects.order_by("id").values()),
             User.objects.count(), list(Room.objects.order_by("id").values("id", "rev", "last_seq")))
    assert after == before


def test_a_later_export_adds_only_what_is_new(tmp_path):
    run(export_zip(tmp_path))
    later = json.dumps(GENERAL_DAY2 + [{"type": "message", "user": "U2", "text": "new day", "ts": ts(172_800)}])
    (tmp_path / "again").mkdir()
    path = export_zip(tmp_path / "again", **{"general/2023-11-16.json": later})
    out, _ = run(path)
    assert "messages: 1 imported" in out
    general = Room.objects.get(slug="general")
    assert list(Message.objects.filter(room=general).order_by("seq").values_list("seq", "body"))[-1] == (10, "new day")


@pytest.mark.parametrize(
    ("content", "error"),
    [(b"not a zip", "Not a readable zip file"), (None, "users.json is missing")],
)
def test_not_an_export(tmp_path, content, error):
    path = tmp_path / "x.zip"
    if content is None:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("readme.txt", "hi")
    else:
        path.write_bytes(content)
    with pytest.raises(CommandError, match=error):
        run(str(path))
    assert not Message.objects.exists() and not User.objects.exists()
