"""Moderation and safety (SPEC §6.4): who may do what, and mutes, bans and suspensions that
end by themselves (a frozen, then advanced clock: time-machine).

Personas: olivia owns `secret` (private) and `lobby` (public); adam is an admin of both
(olivia appointed him); mia and tom are members; oscar is an outsider; stan is staff and
a member of neither; pete has a direct conversation with tom (the "DM peer").
"""

from datetime import timedelta

import pytest
import time_machine
from channels.db import database_sync_to_async
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from chat import services
from chat.models import AuditEntry, Membership, Message, Room
from chat.tests.helpers import open_room, open_socket
from chat.tests.test_consumers import no_leftover_socket_counts  # noqa: F401 (autouse fixture)
from core.errors import NotFound

db = database_sync_to_async
PASSWORD = "correct horse battery"


@pytest.fixture
def cast(make_user, olivia, mia, oscar, stan, secret, lobby):
    adam, tom, pete = make_user("adam"), make_user("tom"), make_user("pete")
    for room in (secret, lobby):
        if room.kind == Room.Kind.PRIVATE:
            services.room_invite(by=olivia, room=room, username="adam")
            services.room_invite(by=olivia, room=room, username="tom")
        else:
            services.room_join(user=adam, room=room)
            services.room_join(user=tom, room=room)
        services.member_role_set(by=olivia, room=room, username="adam", role="admin")
    dm, _ = services.dm_get_or_create(user=pete, other_username="tom")
    return {
        "owner": olivia, "admin": adam, "member": mia, "outsider": oscar, "staff": stan, "peer": pete,
        "tom": tom, "dm": dm,
    }


def said(user, room, body="words") -> Message:
    return services.message_send(sender=user, room=room, body=body)[0]


# The permission matrix: each action × each persona, over REST -----------------------------------

ALLOWED = object()
# (action, {persona: expected status; the code follows from it: 403 forbidden, 404 not_found})
MATRIX = [
    ("role", {"owner": 200, "admin": 403, "member": 403, "outsider": 404, "staff": 200, "peer": 403}),
    ("mute", {"owner": 201, "admin": 201, "member": 403, "outsider": 404, "staff": 201, "peer": 403}),
    ("ban", {"owner": 201, "admin": 201, "member": 403, "outsider": 404, "staff": 201, "peer": 403}),
    ("pin", {"owner": 200, "admin": 200, "member": 403, "outsider": 404, "staff": 200, "peer": 200}),
    ("delete", {"owner": 204, "admin": 204, "member": 403, "outsider": 404, "staff": 204, "peer": 403}),
    ("report", {"owner": 201, "admin": 201, "member": 201, "outsider": 404, "staff": 404, "peer": 201}),
    ("audit", {"owner": 200, "admin": 200, "member": 403, "outsider": 404, "staff": 200, "peer": 403}),
    ("suspend", {"owner": 403, "admin": 403, "member": 403, "outsider": 403, "staff": 200, "peer": 403}),
    ("reports", {"owner": 403, "admin": 403, "member": 403, "outsider": 403, "staff": 200, "peer": 403}),
]
CASES = [(action, who, status) for action, row in MATRIX for who, status in row.items()]
CODES = {403: "forbidden", 404: "not_found"}


def _request(client: APIClient, action: str, room: Room, message: Message):
    slug = room.slug
    return {
        "role": lambda: client.put(f"/api/rooms/{slug}/members/tom/", {"role": "admin"}, format="json"),
        "mute": lambda: client.post(f"/api/rooms/{slug}/mutes/", {"username": "tom", "minutes": 10}, format="json"),
        "ban": lambda: client.post(f"/api/rooms/{slug}/bans/", {"username": "tom", "minutes": 10}, format="json"),
        "pin": lambda: client.post(f"/api/messages/{message.id}/pin/"),
        "delete": lambda: client.delete(f"/api/messages/{message.id}/"),
        "report": lambda: client.post(f"/api/messages/{message.id}/report/", {"reason": "spam"}, format="json"),
        "audit": lambda: client.get(f"/api/rooms/{slug}/audit/"),
        "suspend": lambda: client.post("/api/users/tom/suspend/", {"minutes": 10}, format="json"),
        "reports": lambda: client.get("/api/reports/"),
    }[action]()


@pytest.mark.django_db
@pytest.mark.parametrize("action, who, status", CASES)
def test_permission_matrix_over_rest(cast, secret, action, who, status):
    # The DM peer acts in their own conversation with tom; everyone else in `secret`.
    room = cast["dm"] if who == "peer" else secret
    message = said(cast["tom"], room)
    client = APIClient()
    client.force_authenticate(cast[who])
    before = AuditEntry.objects.count()

    response = _request(client, action, room, message)

    assert response.status_code == status, response.content
    if status >= 400:
        assert response.json()["code"] == CODES[status]
        assert AuditEntry.objects.count() == before  # a refusal changes nothing
        assert Membership.objects.filter(room=room, user=cast["tom"]).exists()
    elif action in ("role", "mute", "ban", "pin", "delete", "suspend"):
        entry = AuditEntry.objects.latest("id")
        assert (entry.actor, entry.target) == (cast[who], cast["tom"])


@pytest.mark.django_db
def test_admins_cannot_act_on_the_owner_or_each_other_and_members_cannot_be_made_owner(cast, secret, api):
    make_admin = api(cast["owner"]).put("/api/rooms/secret/members/mia/", {"role": "admin"}, format="json")
    assert make_admin.status_code == 200 and make_admin.json()["role"] == "admin"
    adam = api(cast["admin"])
    assert adam.post("/api/rooms/secret/mutes/", {"username": "olivia", "minutes": 5}, format="json").status_code == 403
    assert adam.post("/api/rooms/secret/bans/", {"username": "mia"}, format="json").status_code == 403
    owner = api(cast["owner"])
    assert owner.put("/api/rooms/secret/members/mia/", {"role": "owner"}, format="json").json()["code"] == "invalid"
    assert owner.post("/api/rooms/secret/mutes/", {"username": "tom", "minutes": 0}, format="json").json()["code"] == "invalid"
    # The owner demotes an admin again.
    assert owner.put("/api/rooms/secret/members/mia/", {"role": "member"}, format="json").json()["role"] == "member"


# Mutes ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_ten_minute_mute_refuses_sends_with_until_and_ends_on_its_own(cast, secret, api):
    tom = api(cast["tom"])
    with time_machine.travel(timezone.now(), tick=False) as clock:
        api(cast["owner"]).post("/api/rooms/secret/mutes/", {"username": "tom", "minutes": 10}, format="json")
        refused = tom.post("/api/rooms/secret/messages/", {"body": "let me talk"}, format="json")
        assert refused.status_code == 403
        assert refused.json()["code"] == "muted"
        assert refused.json()["until"] == (timezone.now() + timedelta(minutes=10)).isoformat()
        assert not Message.objects.filter(body="let me talk").exists()
        clock.shift(timedelta(minutes=9, seconds=59))
        assert tom.post("/api/rooms/secret/messages/", {"body": "now?"}, format="json").json()["code"] == "muted"
        clock.shift(timedelta(seconds=1))
        assert tom.post("/api/rooms/secret/messages/", {"body": "back"}, format="json").status_code == 201


@pytest.mark.django_db
def test_lifting_a_mute_lets_them_talk_at_once(cast, secret, api):
    services.room_mute(by=cast["owner"], room=secret, username="tom", minutes=60)
    assert api(cast["admin"]).delete("/api/rooms/secret/mutes/tom/").status_code == 204
    assert api(cast["tom"]).post("/api/rooms/secret/messages/", {"body": "thanks"}, format="json").status_code == 201
    assert [e.action for e in AuditEntry.objects.filter(room=secret).order_by("id")][-2:] == ["mute", "unmute"]


@pytest.mark.django_db(transaction=True)
async def test_a_muted_socket_send_gets_an_error_frame_with_until(cast, secret):
    sock, _ = await open_room("secret", user=cast["tom"])
    mute = await db(services.room_mute)(by=cast["owner"], room=secret, username="tom", minutes=10)
    await sock.send({"type": "message.send", "body": "hi", "client_id": "c1"})
    frame = await sock.receive_type("error")
    assert frame["code"] == "muted" and frame["until"] == mute.until.isoformat() and frame["client_id"] == "c1"
    await sock.close()


# Bans -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("slug", ["secret", "lobby"])
def test_a_ban_removes_and_keeps_out_until_it_ends(cast, api, slug):
    tom = api(cast["tom"])
    with time_machine.travel(timezone.now(), tick=False) as clock:
        response = api(cast["admin"]).post(f"/api/rooms/{slug}/bans/", {"username": "tom", "minutes": 60}, format="json")
        assert response.status_code == 201 and response.json()["until"]
        assert not Membership.objects.filter(room__slug=slug, user=cast["tom"]).exists()
        assert tom.get(f"/api/rooms/{slug}/messages/").status_code == 404
        assert tom.post(f"/api/rooms/{slug}/join/").status_code == 404
        assert tom.post(f"/api/rooms/{slug}/messages/", {"body": "x"}, format="json").status_code == 404
        if slug == "secret":  # nor may anyone invite them back meanwhile
            again = api(cast["owner"]).post(f"/api/rooms/{slug}/members/", {"username": "tom"}, format="json")
            assert again.status_code == 403
        clock.shift(timedelta(minutes=61))
        if slug == "lobby":
            assert tom.post(f"/api/rooms/{slug}/join/").status_code == 200
        else:
            assert api(cast["owner"]).post(f"/api/rooms/{slug}/members/", {"username": "tom"}, format="json").status_code == 201
        assert tom.get(f"/api/rooms/{slug}/messages/").status_code == 200


@pytest.mark.django_db
def test_a_banned_sender_is_refused_by_the_send_itself_until_the_ban_ends(cast, lobby):
    # The doors check the room first; this is the service's own check, which a socket
    # that opened the room before the ban relies on.
    with time_machine.travel(timezone.now(), tick=False) as clock:
        services.room_ban(by=cast["owner"], room=lobby, username="tom", minutes=60)
        before = Message.objects.filter(room=lobby).count()
        with pytest.raises(NotFound):
            services.message_send(sender=cast["tom"], room=lobby, body="still here?")
        assert Message.objects.filter(room=lobby).count() == before
        clock.shift(timedelta(minutes=61))
        message, _ = services.message_send(sender=cast["tom"], room=lobby, body="back")
        assert message.body == "back" and Membership.objects.filter(room=lobby, user=cast["tom"]).exists()


@pytest.mark.django_db
def test_a_ban_until_lifted_ends_when_lifted(cast, api):
    api(cast["owner"]).post("/api/rooms/lobby/bans/", {"username": "tom", "minutes": None}, format="json")
    tom = api(cast["tom"])
    with time_machine.travel(timezone.now() + timedelta(days=400)):
        assert tom.get("/api/rooms/lobby/messages/").status_code == 404
    assert api(cast["owner"]).delete("/api/rooms/lobby/bans/tom/").status_code == 204
    assert tom.get("/api/rooms/lobby/messages/").status_code == 200


@pytest.mark.django_db
def test_moderators_list_the_bans_that_last_and_nobody_else_does(cast, api):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        owner = api(cast["owner"])
        owner.post("/api/rooms/secret/bans/", {"username": "tom", "minutes": 10}, format="json")
        owner.post("/api/rooms/secret/bans/", {"username": "pete"}, format="json")
        listed = api(cast["admin"]).get("/api/rooms/secret/bans/").json()
        assert [(b["user"]["username"], b["until"] is None) for b in listed] == [("tom", False), ("pete", True)]
        assert api(cast["member"]).get("/api/rooms/secret/bans/").json()["code"] == "forbidden"
        assert api(cast["outsider"]).get("/api/rooms/secret/bans/").status_code == 404
        assert api(cast["staff"]).get("/api/rooms/secret/bans/").status_code == 200
        clock.shift(timedelta(minutes=11))  # tom's ended by itself
        assert [b["user"]["username"] for b in owner.get("/api/rooms/secret/bans/").json()] == ["pete"]
        page = Client()
        page.force_login(cast["owner"])
        html = page.get("/rooms/secret/").content.decode()
        assert 'id="banned-list"' in html and 'data-username="pete"' in html and "banned until lifted" in html
        page.force_login(cast["member"])
        assert 'id="banned-list"' not in page.get("/rooms/secret/").content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("slug", ["secret", "lobby"])
async def test_a_ban_closes_the_users_room_sockets_with_4403(cast, slug):
    toms, _ = await open_room(slug, user=cast["tom"])
    mias, _ = await open_room(slug, user=cast["member"])
    await db(services.room_ban)(by=cast["owner"], room=await db(Room.objects.get)(slug=slug), username="tom")
    assert await toms.closed_with() == 4403
    assert (await mias.receive_type("message"))["body"] == "tom was banned"
    sock, accepted = await open_socket(f"/ws/chat/{slug}/", user=cast["tom"])
    assert not accepted or await sock.closed_with() in (4403, 4404)
    await mias.close()


# Suspensions --------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_suspension_closes_sockets_4401_refuses_tokens_and_logins_and_ends_on_time(cast, lobby, settings):
    settings.PARLEY_SWEEP_SECONDS = 30  # the suspension itself must close them, not a sweep
    tom = cast["tom"]
    token = (await db(Token.objects.create)(user=tom)).key
    by_session, _ = await open_room("lobby", user=tom)
    by_token, _ = await open_room("lobby", token=token, origin=None)
    stream, accepted = await open_socket("/ws/", user=tom)
    assert accepted

    await db(services.user_suspend)(by=cast["staff"], username="tom", minutes=30)

    for sock in (by_session, by_token, stream):
        assert await sock.closed_with() == 4401

    @db
    def doors():
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        page = Client()
        return (
            api.get("/api/me/").status_code,
            APIClient().post("/api/auth/token/", {"username": "tom", "password": PASSWORD}, format="json").status_code,
            page.login(username="tom", password=PASSWORD),
        )

    assert await doors() == (401, 400, False)
    with time_machine.travel(timezone.now() + timedelta(minutes=31)):
        assert await doors() == (200, 200, True)


@pytest.mark.django_db
def test_lifting_a_suspension_and_who_may(cast, api):
    staff = api(cast["staff"])
    assert staff.post("/api/users/tom/suspend/", {}, format="json").json()["until"] is None
    assert staff.post("/api/users/stan/suspend/", {}, format="json").json()["code"] == "invalid"
    assert api(cast["owner"]).delete("/api/users/tom/suspend/").status_code == 403
    assert Client().login(username="tom", password=PASSWORD) is False
    assert staff.delete("/api/users/tom/suspend/").status_code == 204
    assert Client().login(username="tom", password=PASSWORD) is True
    assert [e.action for e in AuditEntry.objects.filter(room=None).order_by("id")] == ["suspend", "unsuspend"]


# Pins -----------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_pin_is_a_room_change_every_reader_hears_and_the_pinned_list_shows(cast, lobby):
    message = await db(said)(cast["tom"], lobby, "read the rules")
    sock, _ = await open_room("lobby", user=cast["member"])

    pinned = await db(services.message_pin)(user=cast["admin"], message_id=message.id, pinned=True)

    frame = await sock.receive_type("message.pinned")
    assert frame == {"type": "message.pinned", "id": message.id, "room": "lobby", "seq": message.seq,
                     "rev": pinned.rev, "pinned": True}
    assert (await db(Room.objects.get)(slug="lobby")).rev == pinned.rev

    @db
    def read(path):
        client = APIClient()
        client.force_authenticate(cast["member"])
        return client.get(path).json()

    assert [m["body"] for m in await read("/api/rooms/lobby/pins/")] == ["read the rules"]
    changes = await read(f"/api/rooms/lobby/messages/?since_rev={pinned.rev - 1}")
    assert [(m["id"], m["pinned"]) for m in changes] == [(message.id, True)]

    await db(services.message_delete)(user=cast["tom"], message_id=message.id)
    assert await read("/api/rooms/lobby/pins/") == []
    await sock.close()


@pytest.mark.django_db
def test_unpin_and_pins_in_a_dm(cast, api):
    message = said(cast["tom"], cast["dm"], "our address")
    peer = api(cast["peer"])
    assert peer.post(f"/api/messages/{message.id}/pin/").json()["pinned"] is True
    assert [m["id"] for m in api(cast["tom"]).get(f"/api/rooms/{cast['dm'].slug}/pins/").json()] == [message.id]
    assert api(cast["tom"]).delete(f"/api/messages/{message.id}/pin/").json()["pinned"] is False
    assert peer.get(f"/api/rooms/{cast['dm'].slug}/pins/").json() == []
    assert api(cast["outsider"]).get(f"/api/rooms/{cast['dm'].slug}/pins/").status_code == 404


# Reports and the audit log --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_report_reaches_staffs_queue_and_is_resolved_into_the_audit_log(cast, secret, api):
    message = said(cast["tom"], secret, "buy my pills")
    made = api(cast["member"]).post(f"/api/messages/{message.id}/report/", {"reason": "spam"}, format="json")
    assert made.status_code == 201
    staff = api(cast["staff"])

    queue = staff.get("/api/reports/").json()

    assert [(r["id"], r["reporter"], r["reason"], r["resolved"], r["message"]["body"]) for r in queue] == [
        (made.json()["id"], "mia", "spam", False, "buy my pills")
    ]
    assert set(queue[0]) == {"id", "message", "reporter", "reason", "created_at", "resolved"}
    resolved = staff.post(f"/api/reports/{made.json()['id']}/resolve/")
    assert resolved.status_code == 200 and resolved.json()["resolved"] is True
    assert staff.get("/api/reports/").json() == []
    assert len(staff.get("/api/reports/?resolved=true").json()) == 1
    audit = api(cast["owner"]).get("/api/rooms/secret/audit/").json()
    assert audit[0]["action"] == "resolve" and audit[0]["actor"] == "stan" and audit[0]["target"] == "tom"
    assert audit[0]["message"] == message.id
    assert set(audit[0]) == {"actor", "action", "target", "message", "detail", "at"}


@pytest.mark.django_db
def test_every_moderation_action_is_in_the_audit_log(cast, secret, api):
    olivia = api(cast["owner"])
    message = said(cast["tom"], secret, "x")
    olivia.put("/api/rooms/secret/members/tom/", {"role": "admin"}, format="json")
    olivia.put("/api/rooms/secret/members/tom/", {"role": "member"}, format="json")
    olivia.post("/api/rooms/secret/mutes/", {"username": "tom", "minutes": 5}, format="json")
    olivia.delete("/api/rooms/secret/mutes/tom/")
    olivia.post(f"/api/messages/{message.id}/pin/")
    olivia.delete(f"/api/messages/{message.id}/pin/")
    olivia.delete(f"/api/messages/{message.id}/")
    olivia.post("/api/rooms/secret/bans/", {"username": "tom"}, format="json")
    olivia.delete("/api/rooms/secret/bans/tom/")
    own = said(cast["member"], secret, "mine")  # a sender deleting their own is not moderation
    api(cast["member"]).delete(f"/api/messages/{own.id}/")

    audit = olivia.get("/api/rooms/secret/audit/").json()

    # The two role changes in setting up the cast (adam made admin) come first.
    assert [(e["actor"], e["action"], e["target"]) for e in reversed(audit)][1:] == [
        ("olivia", "role", "tom"), ("olivia", "role", "tom"), ("olivia", "mute", "tom"), ("olivia", "unmute", "tom"),
        ("olivia", "pin", "tom"), ("olivia", "unpin", "tom"), ("olivia", "delete", "tom"),
        ("olivia", "ban", "tom"), ("olivia", "unban", "tom"),
    ]


@pytest.mark.django_db
def test_the_admin_shows_the_queue_and_the_log_and_resolves(cast, secret, make_user):
    root = make_user("root", staff=True)
    root.is_superuser = True
    root.save()
    report = services.report_create(user=cast["member"], message_id=said(cast["tom"], secret).id, reason="rude")
    admin = Client()
    admin.force_login(root)
    assert "rude" in admin.get("/admin/chat/report/").content.decode()
    admin.post("/admin/chat/report/", {"action": "resolve_reports", "_selected_action": [report.pk]})
    report.refresh_from_db()
    assert report.resolved and report.resolved_by == root
    open_queue = admin.get("/admin/chat/report/", {"resolved__exact": "0"}).content.decode()
    assert "rude" not in open_queue and "0 reports" in open_queue
    assert "tom: words" in admin.get("/admin/chat/report/", {"q": "rude"}).content.decode()  # the reported text
    assert "resolve" in admin.get("/admin/chat/auditentry/").content.decode()
    log = admin.get("/admin/chat/auditentry/", {"action__exact": "resolve"}).content.decode()
    assert "1 audit entry" in log
    admin.post("/admin/accounts/suspension/add/", {"user": cast["tom"].pk, "minutes": 5})
    assert Client().login(username="tom", password=PASSWORD) is False
    assert AuditEntry.objects.filter(action="suspend", actor=root, target=cast["tom"]).exists()


# Blocking ----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_blocked_user_cannot_open_or_write_to_a_conversation_with_you(cast, api, make_user):
    tom, pete = api(cast["tom"]), api(cast["peer"])
    assert tom.post("/api/blocks/", {"username": "pete"}, format="json").status_code == 201
    assert [u["username"] for u in tom.get("/api/blocks/").json()] == ["pete"]

    assert pete.post("/api/dm/tom/").json()["code"] == "forbidden"
    refused = pete.post(f"/api/rooms/{cast['dm'].slug}/messages/", {"body": "hey"}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    # The one who blocked may still write.
    assert tom.post(f"/api/rooms/{cast['dm'].slug}/messages/", {"body": "stop"}, format="json").status_code == 201

    assert tom.delete("/api/blocks/", {"username": "pete"}, format="json").status_code == 204
    assert pete.post(f"/api/rooms/{cast['dm'].slug}/messages/", {"body": "sorry"}, format="json").status_code == 201


@pytest.mark.django_db
def test_a_blocked_visitor_cannot_open_a_project_conversation(cast, api):
    from projects import services as project_services

    project = project_services.project_create(owner=cast["tom"], title="Shop", slug="shop")
    services.block_add(user=cast["tom"], username="pete")
    from core.errors import NotAllowed

    with pytest.raises(NotAllowed):
        project_services.project_chat_open(visitor=cast["peer"], project=project)


@pytest.mark.django_db
def test_a_blocked_users_messages_in_shared_rooms_are_collapsed_for_you_only(cast, lobby, api):
    services.room_join(user=cast["peer"], room=lobby)
    said(cast["peer"], lobby, "spam spam")
    said(cast["member"], lobby, "hello")
    services.block_add(user=cast["tom"], username="pete")

    for_tom = api(cast["tom"]).get("/api/rooms/lobby/messages/").json()
    for_mia = api(cast["member"]).get("/api/rooms/lobby/messages/").json()

    assert [(m["body"], m["blocked"]) for m in for_tom if m["kind"] == "text"] == [("spam spam", True), ("hello", False)]
    assert [m["blocked"] for m in for_mia] == [False] * len(for_mia)


@pytest.mark.django_db
def test_search_marks_and_mentions_drop_a_blocked_users_messages_also_those_from_before(cast, lobby, api):
    services.room_join(user=cast["peer"], room=lobby)
    services.room_join(user=cast["tom"], room=lobby)
    said(cast["peer"], lobby, "@tom cheap watches")
    said(cast["member"], lobby, "@tom watches are nice")
    tom = api(cast["tom"])
    assert len(tom.get("/api/mentions/").json()) == 2
    assert [r["mention_count"] for r in tom.get("/api/rooms/").json() if r["slug"] == "lobby"] == [2]

    services.block_add(user=cast["tom"], username="pete")  # after pete's mention

    assert [m["body"] for m in tom.get("/api/mentions/").json()] == ["@tom watches are nice"]
    assert [r["mention_count"] for r in tom.get("/api/rooms/").json() if r["slug"] == "lobby"] == [1]
    found = tom.get("/api/search/", {"q": "watches"}).json()["results"]
    assert sorted((r["body"], r["blocked"]) for r in found) == [
        ("@tom cheap watches", True), ("@tom watches are nice", False)
    ]
    assert not any(r["blocked"] for r in api(cast["member"]).get("/api/search/", {"q": "watches"}).json()["results"])
    page = Client()
    page.force_login(cast["tom"])
    html = page.get("/search/", {"q": "watches"}).content.decode()
    assert html.count('class="search-result blocked"') == 1 and "Message from a user you blocked" in html

    services.block_remove(user=cast["tom"], username="pete")
    assert len(tom.get("/api/mentions/").json()) == 2


# The same matrix over the socket, where a frame exists ----------------------------------------------------

SOCKET_CASES = [
    # (persona, in the DM?, frame, expected error code or None for done)
    ("owner", False, "message.delete", None),
    ("admin", False, "message.delete", None),
    ("member", False, "message.delete", "forbidden"),
    ("peer", True, "message.delete", "forbidden"),
    ("member", False, "muted send", "muted"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who, in_dm, frame, code", SOCKET_CASES)
async def test_permission_matrix_over_the_socket(cast, secret, who, in_dm, frame, code):
    room = cast["dm"] if in_dm else secret
    message = await db(said)(cast["tom"], room, "target")
    sock, _ = await open_room(room.slug, user=cast[who])
    if frame == "muted send":
        await db(services.room_mute)(by=cast["owner"], room=room, username=cast[who].username, minutes=10)
        await sock.send({"type": "message.send", "body": "hi", "client_id": "m1"})
    else:
        await sock.send({"type": "message.delete", "id": message.id})
    if code is None:
        assert (await sock.receive_type("message.deleted"))["id"] == message.id
    else:
        assert (await sock.receive_type("error"))["code"] == code
        assert not (await db(Message.objects.get)(pk=message.id)).deleted
    await sock.close()
