"""Avatar upload through PATCH /api/me/ (SPEC §4): cleaned like every image, public."""

from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from PIL import Image
from rest_framework.test import APIClient

from core.tests import pictures

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_avatar_is_a_small_clean_square_shown_to_everyone(mia):
    response = client_for(mia).patch(
        "/api/me/", {"avatar": pictures.upload(pictures.photo_jpeg(), "me.jpg"), "display_name": "Mia"},
        format="multipart",
    )

    assert response.status_code == 200, response.content
    data = response.json()
    assert data["display_name"] == "Mia" and data["avatar"].startswith("/media/avatars/")
    path = Path(settings.MEDIA_ROOT) / data["avatar"].removeprefix("/media/")
    image = Image.open(path)
    assert image.size == (256, 256) and not image.getexif() and path.stat().st_size <= 204_800
    assert Client().get(data["avatar"]).status_code == 200  # avatars are public
    assert client_for(mia).get("/api/me/").json()["avatar"] == data["avatar"]


def test_a_new_avatar_replaces_the_old_file(mia, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = client_for(mia).patch("/api/me/", {"avatar": pictures.upload(pictures.small_png(), "a.png")},
                                      format="multipart").json()["avatar"]
    with django_capture_on_commit_callbacks(execute=True):
        second = client_for(mia).patch("/api/me/", {"avatar": pictures.upload(pictures.transparent_png(), "b.png")},
                                       format="multipart").json()["avatar"]
    assert first != second and [p.name for p in files()] == [second.rsplit("/", 1)[1]]


@pytest.mark.parametrize(
    "content, name, status, code",
    [
        (pictures.SVG, "me.svg", 400, "invalid_image"),
        (pictures.png_bomb(), "me.png", 400, "invalid_image"),
        (pictures.too_big(11 * 1024 * 1024), "me.jpg", 413, "too_large"),
    ],
)
def test_bad_avatars_change_nothing(mia, content, name, status, code):
    response = client_for(mia).patch("/api/me/", {"avatar": pictures.upload(content, name), "display_name": "X"},
                                     format="multipart")
    assert response.status_code == status and response.json()["code"] == code
    assert files() == []
    me = client_for(mia).get("/api/me/").json()
    assert me["avatar"] is None and me["display_name"] == "mia"
