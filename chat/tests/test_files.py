"""Files (SPEC §6.4): kind `file` messages over REST multipart, served only to readers of
the room and only as a download, within a size limit and a per-user quota.

Personas: olivia owns `secret` (private) and mia is a member; oscar is an outsider.
"""

import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from chat import services
from chat.models import Message
from chat.services.files import clean_file_name

HTML = b"<!doctype html><script>alert(document.cookie)</script>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'


def stored(root) -> list[str]:
    folder = os.path.join(root, "files")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def upload(client, content: bytes, name="notes.txt", content_type="text/plain", slug="secret", **extra):
    return client.post(
        f"/api/rooms/{slug}/messages/", {"file": SimpleUploadedFile(name, content, content_type=content_type), **extra}
    )


def download(user, message: dict):
    """The file's URL fetched as a browser of `user` would (session cookie; None: anonymous)."""
    client = Client()
    if user is not None:
        client.force_login(user)
    return client.get(message["file"]["url"])


@pytest.mark.django_db
def test_a_file_message_carries_name_size_type_and_downloads_for_readers(api, mia, olivia, secret, settings):
    sent = upload(api(mia), b"hello file", name="../../etc/report.txt", body="minutes")
    assert sent.status_code == 201, sent.content
    message = sent.json()
    assert message["kind"] == "file" and message["body"] == "minutes"
    assert {k: v for k, v in message["file"].items() if k != "url"} == {
        "name": "report.txt", "size": 10, "type": "text/plain"
    }
    response = download(olivia, message)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"hello file"
    assert response["Content-Disposition"] == 'attachment; filename="report.txt"'
    assert len(stored(settings.MEDIA_ROOT)) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("name, content, content_type", [("page.html", HTML, "text/html"), ("x.svg", SVG, "image/svg+xml")])
def test_html_and_svg_are_served_as_attachments_never_inline(api, mia, secret, name, content, content_type):
    message = upload(api(mia), content, name=name, content_type=content_type).json()
    assert message["file"]["type"] == content_type  # shown as declared ...

    response = download(mia, message)

    # ... but served as opaque bytes to save, never rendered or sniffed.
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_production_hands_the_file_to_nginx_with_the_same_headers(api, mia, secret, settings):
    settings.PARLEY_MEDIA_ACCEL_PREFIX = "/protected-media/"
    message = upload(api(mia), HTML, name="page.html", content_type="text/html").json()
    response = download(mia, message)
    assert response["X-Accel-Redirect"] == "/protected-media/files/" + message["file"]["url"].rsplit("/", 1)[1]
    assert response["Content-Disposition"].startswith("attachment;") and response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db
def test_an_outsider_or_anonymous_gets_404(api, mia, oscar, secret):
    message = upload(api(mia), b"secret plans").json()
    assert download(oscar, message).status_code == 404
    assert download(None, message).status_code == 404


@pytest.mark.django_db
def test_a_file_over_the_quota_is_refused_and_nothing_is_stored(api, mia, secret, settings):
    settings.PARLEY_USER_QUOTA_BYTES = 100
    assert upload(api(mia), b"x" * 60).status_code == 201
    before = stored(settings.MEDIA_ROOT)

    refused = upload(api(mia), b"y" * 41)

    assert refused.status_code == 413 and refused.json()["code"] == "quota_exceeded"
    assert stored(settings.MEDIA_ROOT) == before
    assert Message.objects.filter(kind="file").count() == 1
    assert upload(api(mia), b"y" * 40).status_code == 201  # exactly up to the quota


@pytest.mark.django_db
def test_a_file_over_the_size_limit_is_too_large(api, mia, secret, settings):
    settings.PARLEY_FILE_MAX_BYTES = 10
    refused = upload(api(mia), b"z" * 11)
    assert refused.status_code == 413 and refused.json()["code"] == "too_large"
    assert stored(settings.MEDIA_ROOT) == []


@pytest.mark.django_db(transaction=True)
def test_deleting_the_message_deletes_the_file_and_frees_the_quota(api, mia, olivia, secret, settings):
    settings.PARLEY_USER_QUOTA_BYTES = 100
    message = upload(api(mia), b"x" * 100).json()
    assert upload(api(mia), b"x").json()["code"] == "quota_exceeded"

    services.message_delete(user=olivia, message_id=message["id"])

    assert stored(settings.MEDIA_ROOT) == []
    assert download(mia, message).status_code == 404
    assert upload(api(mia), b"x" * 100).status_code == 201


@pytest.mark.django_db
def test_a_muted_user_cannot_send_files(api, mia, olivia, secret, settings):
    services.room_mute(by=olivia, room=secret, username="mia", minutes=5)
    refused = upload(api(mia), b"x")
    assert refused.status_code == 403 and refused.json()["code"] == "muted"
    assert stored(settings.MEDIA_ROOT) == []


@pytest.mark.parametrize("given, shown", [
    ("C:\\Users\\me\\..\\notes.txt", "notes.txt"),
    ("a\x00b\tc\u202e.txt", "a b c .txt"),
    ('..hidden "q" <x>.pdf', 'hidden _q_ _x_.pdf'),
    ("", "file"),
    ("x" * 300 + ".tar.gz", "x" * 197 + ".gz"),
])
def test_file_names_are_cleaned(given, shown):
    assert clean_file_name(given) == shown
