"""The installable app (SPEC §6.2): what a browser's installability check (Lighthouse's)
asks of the manifest and the service worker."""

import re

import pytest
from django.contrib.staticfiles import finders
from PIL import Image


@pytest.mark.django_db
def test_every_page_links_a_manifest_that_makes_the_app_installable(client):
    page = client.get("/accounts/login/").content.decode()
    link = re.search(r'<link rel="manifest" href="([^"]+)"', page)
    assert link and link.group(1) == "/manifest.webmanifest"
    response = client.get("/manifest.webmanifest")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/manifest+json"
    manifest = response.json()
    assert manifest["name"] and manifest["short_name"]
    assert manifest["start_url"] == "/" and manifest["display"] == "standalone"
    assert re.fullmatch(r"#[0-9a-f]{6}", manifest["theme_color"]) and manifest["background_color"]
    sizes = {}
    for icon in manifest["icons"]:
        assert icon["type"] == "image/png"
        name = icon["src"].split("/static/", 1)[1]
        name = re.sub(r"\.[0-9a-f]{12}\.png$", ".png", name)  # collectstatic's hashed copy
        with Image.open(finders.find(name)) as image:
            assert icon["sizes"] == f"{image.width}x{image.height}"
            sizes[image.width] = image.format
    assert sizes == {192: "PNG", 512: "PNG"}


@pytest.mark.django_db
def test_the_service_worker_sits_at_the_root_with_a_fetch_handler_and_caches_no_api(client):
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Service-Worker-Allowed"] == "/"
    source = response.content.decode()
    assert 'addEventListener("fetch"' in source and 'addEventListener("push"' in source
    shell = re.search(r"const SHELL = (\[.*?\]);", source).group(1)
    assert "/static/" in shell and "/api/" not in shell and "/rooms/" not in shell
    # Only static files are ever answered from the cache.
    assert "url.pathname.startsWith(STATIC_URL)" in source
