"""Room lists stay bounded however many rooms exist (SPEC §4 `GET /api/rooms/`, §5 sidebar,
§6 limits): creations and joins are rate-limited per user, the API list is paged by slug
and searchable, and the app shell lists the user's own rooms in full but only a sample of
the public rooms they have not joined.

Personas: olivia owns `lobby` (public) and `secret` (private), mia is a member of both,
oscar is an outsider.
"""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from chat import selectors, services
from chat.models import Membership, Room

pytestmark = pytest.mark.django_db


def public_rooms(count: int, *, prefix="pub", start=0, age_from=timedelta(0)) -> list[Room]:
    """`count` public rooms, the first most recently active (made in bulk: no limits apply)."""
    now = timezone.now()
    rooms = Room.objects.bulk_create(
        [Room(slug=f"{prefix}-{i:04d}", name=f"{prefix.title()} {i}", kind=Room.Kind.PUBLIC) for i in range(start, start + count)]
    )
    for i, room in enumerate(rooms):
        room.last_activity_at = now - age_from - timedelta(minutes=i)
    Room.objects.bulk_update(rooms, ["last_activity_at"])
    return rooms


def listed(html: str) -> list[str]:
    return re.findall(r'data-room="([^"]+)"', html)


def sample(html: str) -> list[str]:
    """The slugs in the sidebar's list of public rooms not joined."""
    block = html.split('id="room-discover"', 1)[1].split("</ul>", 1)[0]
    return listed(block)


def page(user, path="/") -> str:
    client = Client()
    if user is not None:
        client.force_login(user)
    response = client.get(path)
    assert response.status_code == 200
    return response.content.decode()


# Rate limits ----------------------------------------------------------------------------


def test_room_creation_is_rate_limited_per_user(api, oscar, mia, settings):
    settings.PARLEY_ROOM_CREATE_PER_HOUR = 3

    statuses = [
        api(oscar).post("/api/rooms/", {"slug": f"mine-{i}", "name": f"Mine {i}"}, format="json").status_code
        for i in range(5)
    ]

    assert statuses == [201, 201, 201, 429, 429]
    refused = api(oscar).post("/api/rooms/", {"slug": "one-more", "name": "One more"}, format="json")
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 1200  # one room per 20 minutes after the burst
    assert not Room.objects.filter(slug__in=["mine-3", "mine-4", "one-more"]).exists()
    # The sidebar's form says so and creates nothing.
    client = Client()
    client.force_login(oscar)
    response = client.post("/rooms/", {"slug": "by-form", "name": "By form", "next": "/"}, follow=True)
    assert b"many rooms lately" in response.content and not Room.objects.filter(slug="by-form").exists()
    chinese = client.post("/rooms/", {"slug": "zh", "name": "Zh", "next": "/"}, follow=True, HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert "你最近创建的聊天室太多了" in chinese.content.decode()
    # Someone else's allowance is their own.
    assert api(mia).post("/api/rooms/", {"slug": "hers", "name": "Hers"}, format="json").status_code == 201


def test_room_joins_are_rate_limited_per_user(api, oscar, settings):
    settings.PARLEY_ROOM_JOIN_PER_HOUR = 2
    rooms = public_rooms(4)

    statuses = [api(oscar).post(f"/api/rooms/{room.slug}/join/").status_code for room in rooms[:3]]

    assert statuses == [200, 200, 429]
    assert Membership.objects.filter(user=oscar).count() == 2
    # Joining a room again changes nothing and is not refused.
    assert api(oscar).post(f"/api/rooms/{rooms[0].slug}/join/").status_code == 200
    # The page's join button says so instead of failing.
    client = Client()
    client.force_login(oscar)
    response = client.post(f"/rooms/{rooms[3].slug}/join/", follow=True)
    assert response.status_code == 200 and b"many rooms lately" in response.content
    assert not Membership.objects.filter(user=oscar, room=rooms[3]).exists()


# GET /api/rooms/ ------------------------------------------------------------------------


def test_room_list_is_paged_by_slug_not_unbounded(api, oscar, lobby, secret):
    public_rooms(7)
    Membership.objects.create(user=oscar, room=Room.objects.create(slug="aaa-private", name="A", kind=Room.Kind.PRIVATE))
    visible = sorted(["lobby", "aaa-private", *(f"pub-{i:04d}" for i in range(7))])

    first = api(oscar).get("/api/rooms/?limit=4").json()
    assert [r["slug"] for r in first] == visible[:4]
    seen, after = [], None
    while True:
        rows = api(oscar).get("/api/rooms/", {"limit": 4, **({"after": after} if after else {})}).json()
        if not rows:
            break
        seen += [r["slug"] for r in rows]
        after = rows[-1]["slug"]
    assert seen == visible  # every room once, in slug order, `secret` (not hers) never
    assert next(r for r in first if r["slug"] == "aaa-private")["member"] is True


def test_room_list_default_page_is_200(api, oscar):
    public_rooms(205)

    assert len(api(oscar).get("/api/rooms/").json()) == 200
    assert len(api(oscar).get("/api/rooms/?limit=500").json()) == 205


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=abc", "q=" + "x" * 81, "after=" + "a" * 51, "q=a%00b"])
def test_room_list_refuses_bad_paging(api, oscar, query):
    response = api(oscar).get(f"/api/rooms/?{query}")

    assert response.status_code == 400 and response.json()["code"] == "invalid"


def test_room_list_q_finds_rooms_by_name_or_slug(api, oscar, lobby, secret):
    public_rooms(30)
    Room.objects.create(slug="tea", name="Green Teahouse", kind=Room.Kind.PUBLIC)

    def found(q):
        return [r["slug"] for r in api(oscar).get("/api/rooms/", {"q": q}).json()]

    assert found("TEAHOUSE") == ["tea"]  # name, any case
    assert found("pub-002") == [f"pub-{i:04d}" for i in range(20, 30)]  # slug substring
    assert found("secret") == []  # not hers to see
    assert found("pub-000") == [f"pub-{i:04d}" for i in range(10)]
    assert [r["slug"] for r in api(oscar).get("/api/rooms/?q=pub&limit=3&after=pub-0010").json()] == [
        "pub-0011", "pub-0012", "pub-0013",
    ]


# The app shell --------------------------------------------------------------------------


def test_home_lists_own_rooms_in_full_but_only_a_sample_of_the_others(mia, lobby, secret):
    bound = selectors.DISCOVER_ROOMS
    rooms = public_rooms(bound + 30)
    for room in rooms[-25:]:  # the least recently active ones: hers all the same
        Membership.objects.create(user=mia, room=room)

    html = page(mia)

    mine = {"lobby", "secret", *(r.slug for r in rooms[-25:])}
    assert mine <= set(listed(html))
    assert sample(html) == [r.slug for r in rooms[:bound]]  # not joined, most recent first
    assert len(listed(html)) == len(mine) + bound
    # A room outside the sample is found by searching: through the API, or the form without JS.
    hidden = rooms[bound + 2]
    assert hidden.slug not in listed(html)
    assert [r["slug"] for r in Client().get("/api/rooms/", {"q": hidden.slug}).json()] == [hidden.slug]
    assert sample(page(mia, f"/?q={hidden.slug}")) == [hidden.slug]


def test_home_stays_the_same_size_with_ten_times_the_public_rooms(mia, lobby, django_assert_max_num_queries):
    public_rooms(40)
    client = Client()
    client.force_login(mia)
    before = client.get("/").content.decode()

    public_rooms(400, prefix="old", age_from=timedelta(days=1))
    # (9: one is the first-run check, whether any staff account exists yet)
    with django_assert_max_num_queries(9):
        after = client.get("/").content.decode()

    assert len(after) == len(before)
    assert sample(after) == sample(before)


def test_anonymous_visitors_see_a_sample_too(lobby, settings):
    rooms = public_rooms(selectors.DISCOVER_ROOMS + 5)

    html = page(None)

    assert len(sample(html)) == selectors.DISCOVER_ROOMS
    assert rooms[-1].slug not in listed(html)
    settings.PARLEY_ANONYMOUS_READ = False
    assert sample(page(None)) == []


def test_the_room_on_screen_is_in_the_sidebar_even_outside_the_sample(oscar):
    rooms = public_rooms(selectors.DISCOVER_ROOMS + 5)
    quiet = rooms[-1]

    html = page(oscar, f"/rooms/{quiet.slug}/")

    assert quiet.slug in sample(html)
    assert re.search(rf'class="room-link active" href="/rooms/{quiet.slug}/"', html)


def test_joining_moves_a_room_from_the_sample_to_her_own(api, oscar):
    rooms = public_rooms(3)
    services.room_join(user=oscar, room=rooms[1])

    html = page(oscar)

    assert sample(html) == [rooms[0].slug, rooms[2].slug]
    assert listed(html).count(rooms[1].slug) == 1


@pytest.mark.parametrize(
    ("language", "placeholder", "heading"),
    [("en", "Find a room…", "Recently active"), ("zh-CN", "查找聊天室…", "最近活跃"), ("zh-TW", "尋找聊天室…", "最近活躍")],
)
def test_the_room_search_speaks_all_three_languages(lobby, language, placeholder, heading):
    html = Client().get("/", HTTP_ACCEPT_LANGUAGE=language).content.decode()

    assert f'placeholder="{placeholder}"' in html and heading in html
