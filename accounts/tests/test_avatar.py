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


def test_avatar_uploads_are_rate_limited_before_decoding(mia, settings, monkeypatch):
    from core import images

    settings.PARLEY_AVATAR_PER_HOUR = 2
    decodes = []
    real = images.process_upload
    monkeypatch.setattr(images, "process_upload", lambda upload, **kw: decodes.append(upload.name) or real(upload, **kw))

    answers = [
        client_for(mia).patch("/api/me/", {"avatar": pictures.upload(pictures.small_png(), f"{n}.png"),
                                           "display_name": f"Mia {n}"}, format="multipart")
        for n in range(3)
    ]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["code"] == "rate_limited" and "avatar" in answers[2].json()["detail"]
    assert 1_700 <= int(answers[2]["Retry-After"]) <= 1_800  # two an hour: the next in half an hour
    assert decodes == ["0.png", "1.png"]
    me = client_for(mia).get("/api/me/").json()
    assert me["display_name"] == "Mia 1" and me["avatar"] == answers[1].json()["avatar"]
    # A name change alone is never limited.
    assert client_for(mia).patch("/api/me/", {"display_name": "Mia"}, format="json").status_code == 200
