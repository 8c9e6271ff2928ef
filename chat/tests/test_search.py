"""Search (SPEC §6.3): GET /api/search/ and the index behind it, on SQLite and PostgreSQL.

Personas: olivia owns `lobby` (public) and `secret` (private), mia is a member of both,
oscar of neither.
"""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from chat import search, services
from chat.models import Message, MessageSearch, Room
from core import ratelimit

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_send_limit(settings):
    settings.PARLEY_RATE_BURST = 1000


def say(user, room, body):
    return services.message_send(sender=user, room=room, body=body)[0]


def found(client, **params):
    response = client.get("/api/search/", params)
    assert response.status_code == 200, response.json()
    return response.json()


def bodies(client, **params):
    return [m["body"] for m in found(client, **params)["results"]]


def test_the_examples_of_the_spec(api, mia, lobby):
    say(mia, lobby, "还有可能是定期检修")
    say(mia, lobby, "我們的數據庫很快")
    say(mia, lobby, "这个数据库很慢")
    say(mia, lobby, "Hello World from the Database team")
    client = api(mia)

    assert bodies(client, q="可能") == ["还有可能是定期检修"]
    assert bodies(client, q="检") == ["还有可能是定期检修"]  # one character, inside a word
    assert bodies(client, q="数据库") == ["这个数据库很慢", "我們的數據庫很快"]  # newest first
    assert bodies(client, q="數據庫") == ["这个数据库很慢", "我們的數據庫很快"]
    assert bodies(client, q="hello DATABASE") == ["Hello World from the Database team"]
    assert bodies(client, q='"world from"') == ["Hello World from the Database team"]
    assert bodies(client, q='"from world"') == []
    assert bodies(client, q="data") == []  # Latin words match whole
    assert bodies(client, q="可能 数据库") == []  # every term must match


def test_highlights_are_merged_code_point_spans_of_the_body(api, mia, lobby):
    say(mia, lobby, "😀 數據庫 and 数据库, Café")
    result = found(api(mia), q="数据库 cafe")["results"][0]
    assert result["highlights"] == [[2, 5], [10, 13], [15, 19]]
    body = result["body"]
    assert [body[a:b] for a, b in result["highlights"]] == ["數據庫", "数据库", "Café"]
    assert result["room"] == "lobby" and result["sender"]["username"] == "mia"
    assert found(api(mia), q="据库 数据")["results"][0]["highlights"] == [[2, 5], [10, 13]]


def test_recalled_deleted_purged_or_edited_away_is_not_found(api, olivia, mia, lobby):
    recalled = say(mia, lobby, "alpha recalled")
    deleted = say(mia, lobby, "alpha deleted")
    edited = say(mia, lobby, "alpha before the edit")
    old = say(mia, lobby, "alpha purged")
    kept = say(mia, lobby, "alpha kept")
    services.message_recall(user=mia, message_id=recalled.id)
    services.message_delete(user=olivia, message_id=deleted.id)
    services.message_edit(user=mia, message_id=edited.id, body="omega now")
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    Room.objects.filter(pk=lobby.pk).update(retention_max_age=timedelta(days=1))
    services.room_purge(room=Room.objects.get(pk=lobby.pk))

    client = api(mia)
    assert bodies(client, q="alpha") == ["alpha kept"]
    assert bodies(client, q="omega") == ["omega now"]
    assert set(MessageSearch.objects.values_list("message_id", flat=True)) == {edited.id, kept.id}


def test_private_rooms_only_for_members_now(api, olivia, mia, oscar, secret, lobby):
    say(mia, secret, "quarterly numbers 季度")
    say(mia, lobby, "quarterly party")
    assert bodies(api(mia), q="quarterly") == ["quarterly party", "quarterly numbers 季度"]
    assert bodies(api(oscar), q="quarterly") == ["quarterly party"]
    services.room_remove_member(by=olivia, room=secret, username="mia")
    assert bodies(api(mia), q="quarterly") == ["quarterly party"]
    assert bodies(api(mia), q="季度") == []
    assert api(mia).get("/api/search/", {"q": "季度", "room": "secret"}).status_code == 404


def test_anonymous_visitors_find_public_rooms_only_when_anonymous_read_is_on(api, settings, mia, lobby, secret):
    say(mia, lobby, "open sesame")
    say(mia, secret, "closed sesame")
    settings.PARLEY_ANONYMOUS_READ = True
    assert bodies(api(), q="sesame") == ["open sesame"]
    settings.PARLEY_ANONYMOUS_READ = False
    assert bodies(api(), q="sesame") == []


def test_filters_and_pages(api, olivia, mia, lobby, secret, monkeypatch):
    monkeypatch.setattr(search, "PG_FIRST_WINDOW", 1)  # PostgreSQL: windows of ids 1, 4, 16, …
    for i in range(5):
        say(mia, lobby, f"report {i}")
    say(olivia, lobby, "report by olivia")
    say(mia, secret, "report in secret")
    client = api(mia)
    assert bodies(client, q="report", **{"from": "olivia"}) == ["report by olivia"]
    assert bodies(client, q="report", room="secret") == ["report in secret"]
    assert bodies(client, q="report", after=(timezone.now() + timedelta(days=1)).date().isoformat()) == []
    assert len(bodies(client, q="report", before=(timezone.now() + timedelta(days=1)).date().isoformat())) == 7

    first = found(client, q="report", limit=3)
    second = found(client, q="report", limit=3, cursor=first["next_cursor"])
    third = found(client, q="report", limit=3, cursor=second["next_cursor"])
    seen = [m["body"] for page in (first, second, third) for m in page["results"]]
    assert seen == ["report in secret", "report by olivia", "report 4", "report 3", "report 2", "report 1", "report 0"]
    assert third["next_cursor"] is None


@pytest.mark.parametrize(
    "params",
    [{}, {"q": "   "}, {"q": "..."}, {"q": "x", "limit": "0"}, {"q": "x", "cursor": "abc"}, {"q": "x", "after": "soon"}],
)
def test_bad_queries_are_400_invalid(api, mia, params):
    response = api(mia).get("/api/search/", params)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_searching_too_often_is_429(api, settings, mia):
    settings.PARLEY_SEARCH_PER_MINUTE = 2
    ratelimit.reset()
    client = api(mia)
    assert [client.get("/api/search/", {"q": "x"}).status_code for _ in range(3)] == [200, 200, 429]
    assert client.get("/api/search/", {"q": "x"}).json()["code"] == "rate_limited"


def test_rebuild_command_indexes_what_is_there(mia, lobby, capsys):
    say(mia, lobby, "繁體 text")
    MessageSearch.objects.all().delete()
    assert search.candidate_ids(
        search.parse("繁体"), rooms_sql="SELECT %s", rooms_params=[lobby.pk], below_id=None, filters={}, limit=5
    ) == []
    call_command("rebuild_search_index")
    ids = search.candidate_ids(
        search.parse("繁体"), rooms_sql="SELECT %s", rooms_params=[lobby.pk], below_id=None, filters={}, limit=5
    )
    assert len(ids) == 1


def test_documents_cut_cjk_into_pairs_and_single_characters():
    assert search.document("還有可能 Foo_bar") == "还有 有可 可能 foo bar 还 有 可 能"
    assert search.normalize("ＡＢＣ Straße") == "abc strasse"


def test_the_search_page_marks_matches_and_links_to_the_message(client, mia, lobby):
    message = say(mia, lobby, "我們的數據庫 <b>很快</b>")
    client.force_login(mia)
    home = client.get("/").content.decode()
    assert 'id="search"' in home and 'name="q"' in home
    page = client.get("/search/", {"q": "数据库"}).content.decode()
    assert "我們的<mark>數據庫</mark> &lt;b&gt;很快&lt;/b&gt;" in page
    assert f"/rooms/lobby/?around_seq={message.seq}&amp;message={message.id}" in page
    assert "#lobby" in page
    assert "No messages match." in client.get("/search/", {"q": "nothing-here"}).content.decode()
