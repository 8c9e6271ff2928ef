"""Everything from the browser (issue 18): first run, projects and the owner's inbox, the
members of a private room, people to message, pages at phone width, the app's own error
pages. Debian's Chromium driven by Playwright against one real `uvicorn` server for the
module, started on a fresh database (the first test is the instance's first run).
"""

# ruff: noqa: F811 (the tests take the imported fixtures as arguments, as pytest wants)
import re
import secrets

import pytest

from chat.tests.test_browser import (  # noqa: F401 (fixtures and the skip marks)
    PASSWORD,
    browser,
    bubble,
    connected,
    expect,
    new_user,
    open_page,
    pytestmark,
    send,
)
from testkit.servers import Uvicorn, clean_env, manage, migrate_and_collectstatic, running


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Parley on a database of its own, fresh for this module: no account, no room."""
    folder = tmp_path_factory.mktemp("parley-browser-app")
    env = clean_env(
        DATABASE_URL=f"sqlite:///{folder / 'db.sqlite3'}",
        MEDIA_ROOT=folder / "media",
        STATIC_ROOT=folder / "static",
        SECRET_KEY="browser-app-" + secrets.token_urlsafe(40),
        PARLEY_RATE_BURST=1000,
        PARLEY_SWEEP_SECONDS=1,
        LOG_LEVEL="WARNING",
    )
    migrate_and_collectstatic(env)
    worker = Uvicorn("browser-app", env, "--log-level", "warning", log=folder / "server.log")
    with running([worker]):
        worker.start()
        worker.env = env
        yield worker


PHONE = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True}


def no_horizontal_scroll(page) -> None:
    assert page.evaluate("document.scrollingElement.scrollWidth") <= page.viewport_size["width"], page.url


def test_first_run_to_the_first_message(server, open_page):
    """A fresh instance points its first visitor to /setup/; the code `make run` printed
    makes the administrator and leads to the first room, where a message goes out."""
    printed = manage(server.env, "setup_code", "--url", server.base)
    code = re.search(r"setup code (\S+)", printed).group(1)

    page = open_page()
    page.goto("/")
    page.locator("#setup-hint").get_by_role("link", name="Set up Parley").click()
    expect(page).to_have_url(f"{server.base}/setup/")
    page.get_by_label("Setup code").fill("not-the-code")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create the administrator").click()
    expect(page.locator(".form-errors")).to_contain_text("not the setup code")
    page.get_by_label("Setup code").fill(code)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create the administrator").click()
    expect(page.locator(".room-head h1")).to_have_text("General")
    connected(page)
    send(page, "Hello, world")
    expect(bubble(page, "Hello, world")).to_be_visible()
    expect(page.locator('.sidebar a[href="/admin/"]')).to_be_visible()  # the staff find the admin

    # Done: the setup page is gone, and nobody else sees the hint.
    assert manage(server.env, "setup_code") == ""
    other = open_page()
    assert other.goto("/setup/").status == 404
    other.goto("/")
    expect(other.locator("#setup-hint")).to_have_count(0)
