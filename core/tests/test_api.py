"""core/api.py: JSON bodies the API cannot use are a 400 `invalid`, never a server error.

Personas: mia is a logged-in user; the login endpoint takes anyone.
"""

import pytest
from rest_framework.test import APIClient

DEEP = ["[" * 100_000, '{"a":' * 100_000, "[" * 50_000 + "]" * 50_000]


@pytest.mark.django_db
@pytest.mark.parametrize("body", DEEP, ids=["open-lists", "open-objects", "closed-lists"])
@pytest.mark.parametrize("path", ["/api/auth/token/", "/api/rooms/", "/api/me/"])
def test_deeply_nested_json_body_is_a_400_not_a_server_error(path, body, mia):
    client = APIClient()
    client.force_authenticate(mia)
    method = client.patch if path == "/api/me/" else client.post
    response = method(path, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/projects/", {"title": "shop\x00", "slug": "shop"}),
        ("/api/rooms/", {"slug": "tea", "name": "tea\x00time"}),
    ],
    ids=["project-title", "room-name"],
)
def test_text_with_a_nul_character_is_a_400_not_a_server_error(path, body, mia):
    # PostgreSQL cannot store NUL in text; the fuzzer found the 500 there.
    client = APIClient()
    client.force_authenticate(mia)
    response = client.post(path, body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
