"""Per-room notification settings (SPEC §6.2): GET / PUT /api/rooms/<slug>/settings/."""

import pytest

from chat import services


@pytest.mark.django_db
def test_defaults_change_and_refusals(api, lobby, mia, oscar, olivia, db_state):
    assert api(mia).get("/api/rooms/lobby/settings/").json() == {"room": "lobby", "notify": "mentions", "muted_until": None}
    dm, _ = services.dm_get_or_create(user=mia, other_username="olivia")
    assert api(mia).get(f"/api/rooms/{dm.slug}/settings/").json()["notify"] == "all"

    response = api(mia).put("/api/rooms/lobby/settings/", {"notify": "all", "muted_until": "2099-01-02T03:04:05Z"}, format="json")
    assert response.status_code == 200
    assert response.json() == {"room": "lobby", "notify": "all", "muted_until": "2099-01-02T03:04:05+00:00"}
    # Leaving a field out keeps it; null unmutes.
    assert api(mia).put("/api/rooms/lobby/settings/", {"notify": "none"}, format="json").json()["muted_until"]
    assert api(mia).put("/api/rooms/lobby/settings/", {"muted_until": None}, format="json").json() == {
        "room": "lobby", "notify": "none", "muted_until": None,
    }
    before = db_state()
    for bad in ({"notify": "loud"}, {"notify": 3}, {"muted_until": "tomorrow"}, {"muted_until": 5}):
        response = api(mia).put("/api/rooms/lobby/settings/", bad, format="json")
        assert (response.status_code, response.json()["code"]) == (400, "invalid"), bad
    # oscar reads the public room but is no member: nothing to keep; a stranger's private room is not there.
    assert api(oscar).get("/api/rooms/lobby/settings/").status_code == 400
    assert api(oscar).put("/api/rooms/lobby/settings/", {"notify": "all"}, format="json").status_code == 400
    assert api(None).get("/api/rooms/lobby/settings/").status_code in (401, 403)
    assert db_state() == before


@pytest.mark.django_db
def test_settings_never_change_the_counts(api, lobby, mia, olivia):
    api(mia).put("/api/rooms/lobby/settings/", {"notify": "none", "muted_until": "2099-01-01T00:00:00Z"}, format="json")
    services.message_send(sender=olivia, room=lobby, body="hello @mia")
    row = next(r for r in api(mia).get("/api/rooms/").json() if r["slug"] == "lobby")
    assert (row["unread_count"], row["mention_count"]) == (1, 1)
