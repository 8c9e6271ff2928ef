"""The browser UI in a real browser (SPEC §5): Debian's Chromium driven by Playwright
against a real `uvicorn` server with its own SQLite database.

What a person does: register and log in, chat live with someone else, paste and send a
picture, recall it, send HTML that must stay text, lose the server mid-conversation and
get every message back exactly once, see unread badges come and go, use it at 360 px
and read it in Chinese. Screenshots of the room view go to a temporary folder, or to
docs/screenshots/ with PARLEY_SCREENSHOTS=1.

Runs in the SQLite pass only (the server under test uses its own SQLite file either way).
"""

import json
import os
import re
import secrets
import time
from pathlib import Path

import pytest

from testkit.servers import REPO, Uvicorn, http_get, manage

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct-horse-battery-9"

pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"{CHROMIUM} is missing (apt-get install chromium fonts-noto-cjk; .ci/run does it)",
    ),
    pytest.mark.dbless,  # the server has its own SQLite file: run once, in the SQLite pass
]

expect = sync_api.expect


# The server -----------------------------------------------------------------------------


def request(server: Uvicorn, method: str, path: str, body=None, token: str | None = None) -> tuple[int, object]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    status, response_headers, data = http_get(server.port, path, method=method, headers=headers,
                                              body=json.dumps(body) if body is not None else None)
    is_json = (response_headers.get("Content-Type") or "").startswith("application/json")
    return status, json.loads(data) if data and is_json else None


def new_user(server: Uvicorn, prefix: str) -> "User":
    """A new account, with an API token for server-side setup."""
    username = f"{prefix}{secrets.token_hex(3)}"
    status, _ = request(server, "POST", "/api/auth/register/", {"username": username, "password": PASSWORD})
    assert status == 201
    status, data = request(server, "POST", "/api/auth/token/", {"username": username, "password": PASSWORD})
    assert status == 200
    return User(server, username, data["token"])


class User:
    def __init__(self, server: Uvicorn, username: str, token: str):
        self.server, self.username, self.token = server, username, token

    def api(self, method: str, path: str, body=None):
        status, data = request(self.server, method, path, body, token=self.token)
        assert status < 300, (status, data)
        return data

    def room(self, kind: str = "public", name: str | None = None) -> str:
        slug = f"r-{secrets.token_hex(4)}"
        self.api("POST", "/api/rooms/", {"slug": slug, "name": name or slug, "kind": kind})
        return slug

    def say(self, slug: str, body: str) -> dict:
        return self.api("POST", f"/api/rooms/{slug}/messages/", {"body": body, "client_id": secrets.token_hex(8)})


@pytest.fixture(scope="module")
def server(browser_server):
    """Parley under uvicorn on its own SQLite file (conftest.py: one for every browser test
    module, each test makes its own users and rooms); a test may kill it like a crash and
    start it again on the same port and database."""
    return browser_server


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser, server):
    """open_page(user=None, **context options) -> a page in its own browser context,
    logged in as `user`; collects the JavaScript dialogs it raised in page.dialogs."""
    contexts = []

    def make(user: User | None = None, **options):
        options.setdefault("viewport", {"width": 1280, "height": 800})
        context = browser.new_context(base_url=server.base, **options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        if user is not None:
            context.request.get("/accounts/login/")
            csrf = next(c["value"] for c in context.cookies() if c["name"] == "csrftoken")
            response = context.request.post(
                "/accounts/login/",
                form={"username": user.username, "password": PASSWORD, "csrfmiddlewaretoken": csrf},
                max_redirects=0,
            )
            assert response.status == 302, response.text()
        page = context.new_page()
        page.dialogs = []

        def on_dialog(dialog):
            page.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        return page

    yield make
    for context in contexts:
        context.close()


def messages(page) -> list[tuple[int, int]]:
    """(seq, id) of every message element, in page order."""
    pairs = page.eval_on_selector_all(
        "#messages > [data-seq]", "nodes => nodes.map(n => [Number(n.dataset.seq), Number(n.dataset.id)])"
    )
    return [tuple(pair) for pair in pairs]


def connected(page) -> None:
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "connected")


def send(page, text: str) -> None:
    box = page.locator("#composer textarea[name=body]")
    box.fill(text)
    box.press("Enter")


def bubble(page, text: str):
    return page.locator("#messages > [data-seq] .message-text", has_text=text)


SCREENSHOTS = REPO / "docs" / "screenshots" if os.environ.get("PARLEY_SCREENSHOTS") == "1" else None


def screenshot(page, name: str, tmp_path: Path) -> None:
    folder = SCREENSHOTS or tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name))


# Tests --------------------------------------------------------------------------------------


def test_register_log_out_log_in_and_chat_live(server, open_page):
    ann = open_page()
    username = f"ann{secrets.token_hex(3)}"
    ann.goto("/accounts/register/")
    ann.get_by_label("Username").fill(username)
    ann.get_by_label("Password").fill(PASSWORD)
    ann.get_by_role("button", name="Register").click()
    expect(ann).to_have_url(f"{server.base}/")
    ann.locator(".sidebar-foot").get_by_role("button", name="Log out").click()
    expect(ann).to_have_url(f"{server.base}/accounts/login/")
    ann.get_by_label("Username").fill(username)
    ann.get_by_label("Password").fill(PASSWORD)
    ann.locator("form.auth-card").get_by_role("button", name="Log in").click()
    expect(ann).to_have_url(f"{server.base}/")

    # A room from the sidebar form, then someone else comes in.
    ann.locator(".new-room summary").click()
    ann.get_by_label("Name").fill("Tea Room")
    slug = ann.get_by_label("Address").input_value()
    assert slug == "tea-room"
    ann.get_by_label("Address").fill(f"tea-{secrets.token_hex(3)}")
    ann.get_by_role("button", name="Create room").click()
    expect(ann.locator(".room-head h1")).to_have_text("Tea Room")
    connected(ann)
    slug = ann.locator("#room").get_attribute("data-room")

    bob = open_page(new_user(server, "bob"))
    bob.goto(f"/rooms/{slug}/")
    connected(bob)
    expect(bob.locator("#online")).to_contain_text(username)  # who is here (hello.room.online)

    send(ann, "hello bob")
    expect(bubble(bob, "hello bob")).to_be_visible()
    expect(bob.locator("#messages > .theirs .message-text", has_text="hello bob")).to_have_count(1)
    send(bob, "hi ann, see https://example.com/tea.")
    expect(bubble(ann, "hi ann")).to_be_visible()
    link = ann.locator("#messages a", has_text="https://example.com/tea")
    expect(link).to_have_attribute("href", "https://example.com/tea")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(link).to_have_attribute("target", "_blank")
    expect(ann.locator("#messages > .mine .message-text", has_text="hello bob")).to_have_count(1)

    # Shift+Enter is a new line, Enter sends.
    box = ann.locator("#composer textarea[name=body]")
    box.fill("line one")
    box.press("Shift+Enter")
    box.type("line two")
    box.press("Enter")
    expect(bubble(bob, "line two")).to_have_text("line one\nline two")
    assert messages(ann) == messages(bob)


def test_html_in_a_message_stays_text(server, open_page):
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room()
    bob.api("POST", f"/api/rooms/{slug}/join/")
    sender, reader = open_page(ann), open_page(bob)
    for page in (sender, reader):
        page.goto(f"/rooms/{slug}/")
        connected(page)
    evil = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    send(sender, evil)
    for page in (sender, reader):
        expect(bubble(page, "onerror")).to_have_text(evil)
        assert page.locator("#messages img[src=x], #messages script").count() == 0
    reader.reload()  # the server-rendered history is text too
    expect(bubble(reader, "onerror")).to_have_text(evil)
    reader.wait_for_timeout(300)
    assert sender.dialogs == [] and reader.dialogs == []


PASTE_IMAGE = """async (textarea) => {
  const canvas = document.createElement("canvas");
  canvas.width = 240; canvas.height = 160;
  const ctx = canvas.getContext("2d");
  const gradient = ctx.createLinearGradient(0, 0, 240, 160);
  gradient.addColorStop(0, "#6366f1"); gradient.addColorStop(1, "#f59e0b");
  ctx.fillStyle = gradient; ctx.fillRect(0, 0, 240, 160);
  ctx.fillStyle = "#fff"; ctx.font = "bold 28px sans-serif"; ctx.fillText("Parley", 70, 90);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  const data = new DataTransfer();
  data.items.add(new File([blob], "pasted.png", { type: "image/png" }));
  textarea.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
}"""


def test_pasted_image_reaches_the_other_user_and_recall_removes_it(server, open_page):
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room()
    sender, reader = open_page(ann), open_page(bob)
    for page in (sender, reader):
        page.goto(f"/rooms/{slug}/")
        connected(page)
    box = sender.locator("#composer textarea[name=body]")

    box.evaluate(PASTE_IMAGE)
    expect(sender.locator("#attachment")).to_be_visible()
    sender.get_by_role("button", name="Cancel").click()
    expect(sender.locator("#attachment")).to_be_hidden()

    box.evaluate(PASTE_IMAGE)
    expect(sender.locator("#attachment-preview")).to_have_attribute("src", re.compile(r"^blob:"))
    box.fill("a cake")
    box.press("Enter")
    image = reader.locator("#messages > [data-seq] img.message-image")
    expect(image).to_have_count(1)
    assert image.get_attribute("src").startswith("/media/messages/")
    expect(reader.locator("#messages .message-text", has_text="a cake")).to_be_visible()
    expect(image).to_have_js_property("naturalWidth", 240)  # loaded (it may still be on its way)

    # Click to enlarge, Escape to close.
    image.click()
    expect(reader.locator("#lightbox")).to_be_visible()
    reader.keyboard.press("Escape")
    expect(reader.locator("#lightbox")).to_be_hidden()

    mine = sender.locator("#messages > .mine", has=sender.locator("img.message-image"))
    mine.hover()
    mine.get_by_role("button", name="Recall").click()
    expect(reader.locator("#messages > [data-seq] img.message-image")).to_have_count(0)
    expect(reader.locator("#messages > .recalled")).to_contain_text("recalled a message")
    expect(reader.locator("#messages", has_text="a cake")).to_have_count(0)


def test_server_restart_resumes_without_lost_or_doubled_messages(server, open_page):
    ann, bob, carol = new_user(server, "ann"), new_user(server, "bob"), new_user(server, "carol")
    slug = ann.room()
    bob.api("POST", f"/api/rooms/{slug}/join/")
    first, second = open_page(ann), open_page(bob)
    for page in (first, second):
        page.goto(f"/rooms/{slug}/")
        connected(page)
    for n in range(3):
        send(first if n % 2 == 0 else second, f"before {n}")
    expect(bubble(second, "before 2")).to_be_visible()
    expect(bubble(first, "before 2")).to_be_visible()

    server.kill()  # a crash: no goodbye to anyone
    for page in (first, second):
        expect(page.locator("#connection-status")).to_have_attribute("data-state", "reconnecting")
    send(first, "written while the server was down")  # kept and resent, same client_id
    expect(first.locator("#pending .pending")).to_have_count(1)

    server.start()
    for n in range(3):  # while the browsers are still backing off
        carol.say(slug, f"after {n}")
    for page in (first, second):
        connected(page)
        expect(bubble(page, "written while the server was down")).to_have_count(1)
        expect(bubble(page, "after 2")).to_be_visible()
    expect(first.locator("#pending .pending")).to_have_count(0)

    history = [(m["seq"], m["id"]) for m in ann.api("GET", f"/api/rooms/{slug}/messages/?limit=200")]
    assert [seq for seq, _ in history] == list(range(1, len(history) + 1))
    assert len(history) >= 7
    assert messages(first) == history
    assert messages(second) == history


def test_unread_badge_appears_and_clears_and_announcements_are_live(server, open_page):
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room(name="Bakery")
    bob.api("POST", f"/api/rooms/{slug}/join/")
    page = open_page(bob)
    page.goto("/")
    badge = page.locator(f'.room-link[data-room="{slug}"] .badge')
    expect(badge).to_be_hidden()
    expect(page.locator("body")).to_have_attribute("data-stream", "connected")

    ann.say(slug, "fresh bread")
    expect(badge).to_have_text("1")
    ann.say(slug, "and cake")
    expect(badge).to_have_text("2")

    page.locator(f'.room-link[data-room="{slug}"]').click()
    expect(bubble(page, "and cake")).to_be_visible()
    deadline = time.monotonic() + 10
    while bob.api("GET", "/api/unread/").get(slug) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert bob.api("GET", "/api/unread/")[slug] == 0
    page.goto("/")
    expect(page.locator("body")).to_have_attribute("data-stream", "connected")
    expect(badge).to_be_hidden()

    # Staff publish an announcement; it shows for everyone at once.
    staff = new_user(server, "staff")
    manage(server.env, "shell", "-c", f"from django.contrib.auth.models import User; User.objects.filter(username='{staff.username}').update(is_staff=True)")
    editor = open_page(staff)
    editor.goto("/")
    editor.get_by_label("Text").fill("Ordering opens at 9")
    editor.get_by_role("button", name="Publish").click()
    expect(page.locator("#announcement")).to_contain_text("Ordering opens at 9")


def test_sidebar_lists_a_sample_of_public_rooms_and_search_finds_the_rest(server, open_page):
    ann, bob, carol = new_user(server, "ann"), new_user(server, "bob"), new_user(server, "carol")
    mark = secrets.token_hex(3)
    quiet = ann.room(name=f"Quiet corner {mark}")
    for n in range(21):  # newer, so more recently active: they fill the sample
        (ann if n % 2 else bob).room()
    page = open_page(carol)
    page.goto("/")
    sample = page.locator("#room-discover .room-link")
    expect(sample).to_have_count(20)
    expect(page.locator(f'.room-link[data-room="{quiet}"]')).to_have_count(0)

    search = page.get_by_placeholder("Find a room…")
    search.fill(f"corner {mark}")
    expect(page.locator(f'#room-discover .room-link[data-room="{quiet}"]')).to_be_visible()
    expect(sample).to_have_count(1)
    search.fill("")
    expect(sample).to_have_count(20)
    search.fill(mark.upper())
    page.locator(f'#room-discover .room-link[data-room="{quiet}"]').click()
    expect(page.locator(".room-head h1")).to_have_text(f"Quiet corner {mark}")


PURGE_WHILE_AWAY = """
from datetime import timedelta
from django.utils import timezone
from chat import services
from chat.models import Room
Room.objects.filter(slug='{slug}').update(retention_max_count=2)
services.room_purge(room=Room.objects.get(slug='{slug}'))
services.room_purge(room=Room.objects.get(slug='{slug}'), now=timezone.now() + timedelta(days=2))
"""


def test_messages_purged_while_away_leave_the_screen_on_resume(server, open_page):
    ann = new_user(server, "ann")
    slug = ann.room()
    for n in range(4):
        ann.say(slug, f"note {n}")
    page = open_page(ann)
    page.goto(f"/rooms/{slug}/")
    connected(page)
    expect(bubble(page, "note 0")).to_be_visible()

    server.stop()
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "reconnecting")
    # Retention keeps two: notes 0 and 1 become tombstones, and those are dropped too, so
    # the resume is truncated and `?since_rev=` from the page's revision answers 410.
    manage(server.env, "shell", "-c", PURGE_WHILE_AWAY.format(slug=slug))
    server.start()
    # The purge took seconds, so the page's backoff has grown: the network is back, retry now.
    page.evaluate("window.dispatchEvent(new Event('online'))")
    connected(page)

    # The 410 empties the list and loads the latest page: wait for the list it ends with.
    expect(bubble(page, "note 0")).to_have_count(0)
    expect(bubble(page, "note 1")).to_have_count(0)
    expect(page.locator("#messages > [data-seq]")).to_have_count(2)
    expect(bubble(page, "note 3")).to_be_visible()
    assert [seq for seq, _ in messages(page)] == [3, 4]


def test_phone_width_has_no_horizontal_scroll_and_a_drawer(server, open_page, tmp_path):
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room(name="Weekend plans")
    bob.api("POST", f"/api/rooms/{slug}/join/")
    hike = bob.say(slug, "Anyone up for a **hike** on Saturday? The weather looks great: https://example.com/forecast")
    bob.api("PUT", f"/api/messages/{hike['id']}/reactions/%F0%9F%99%8C/")  # 🙌
    ann.say(slug, "Yes! " + "long-word-" * 12)
    bob.api(
        "POST",
        f"/api/rooms/{slug}/messages/",
        {"body": "Trail map:\n```\nparking → ridge → lake → back\n```", "client_id": "hike-map", "reply_to": hike["id"]},
    )
    page = open_page(ann, viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    page.goto(f"/rooms/{slug}/")
    connected(page)
    send(page, "I'll bring sandwiches")
    expect(bubble(page, "sandwiches")).to_be_visible()
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 360
    assert page.evaluate("document.getElementById('scroller').scrollWidth") <= 360
    screenshot(page, "room-phone.png", tmp_path)

    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    page.get_by_role("button", name="Open the list of conversations").click()
    expect(page.locator("#sidebar")).to_be_in_viewport()
    page.keyboard.press("Escape")
    expect(page.locator("#sidebar")).not_to_be_in_viewport()

    page.goto("/")
    expect(page.locator(f'.room-link[data-room="{slug}"]')).to_be_visible()
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 360


@pytest.mark.parametrize(
    ("locale", "lang", "log_in", "connected_label"),
    [("zh-CN", "zh-hans", "登录", "已连接"), ("zh-TW", "zh-hant", "登入", "已連線")],
)
def test_chinese_from_accept_language(server, open_page, locale, lang, log_in, connected_label):
    page = open_page(locale=locale)
    page.goto("/accounts/login/")
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page.locator("h1")).to_have_text(log_in)
    ann = new_user(server, "ann")
    slug = ann.room()
    page = open_page(ann, locale=locale)
    page.goto(f"/rooms/{slug}/")
    expect(page.locator("#connection-status .connection-label")).to_have_text(connected_label)


def test_language_switch(server, open_page):
    page = open_page(locale="en-US")
    page.goto("/accounts/login/")
    expect(page.locator("h1")).to_have_text("Log in")
    page.wait_for_load_state("load")
    page.locator(".topbar .language-select").select_option("zh-hant")
    expect(page.locator("h1")).to_have_text("登入")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hant")
    # The switch submits itself from a module script: let the new page run it first.
    page.wait_for_load_state("load")
    page.locator(".topbar .language-select").select_option("zh-hans")
    expect(page.locator("h1")).to_have_text("登录")


def test_desktop_screenshot(server, open_page, tmp_path):
    """The room view at 1280x800 with a conversation in it (for the README): formatting, a
    reply, reactions and a picture."""
    ann, bob, carol = new_user(server, "ann"), new_user(server, "bob"), new_user(server, "carol")
    for user, name in ((ann, "Ann Lee"), (bob, "Bob Chen"), (carol, "Carol")):
        user.api("PATCH", "/api/me/", {"display_name": name})
    slug = ann.room(name="Design team")
    for user in (bob, carol):
        user.api("POST", f"/api/rooms/{slug}/join/")
    mockups = bob.say(slug, "Morning! The new **onboarding** mockups are up.")
    ask = {"body": "Looks great. Can we make the `Sign up` button *bigger* on phones?", "reply_to": mockups["id"]}
    carol.api("POST", f"/api/rooms/{slug}/messages/", ask)
    for user, emoji in ((carol, "%F0%9F%91%8D"), (ann, "%F0%9F%91%8D"), (carol, "%F0%9F%8E%89")):  # 👍 👍 🎉
        user.api("PUT", f"/api/messages/{mockups['id']}/reactions/{emoji}/")
    page = open_page(ann)
    page.goto(f"/rooms/{slug}/")
    connected(page)
    send(page, "Love it! Shipping this week.")
    page.locator("#composer textarea[name=body]").evaluate(PASTE_IMAGE)
    page.locator("#composer textarea[name=body]").fill("Here's the new banner")
    page.locator("#composer textarea[name=body]").press("Enter")
    expect(page.locator("#messages img.message-image")).to_have_count(1)
    expect(page.locator("#messages img.message-image")).to_have_js_property("complete", True)
    carol.say(slug, "Nice work, both of you")
    expect(bubble(page, "Nice work")).to_be_visible()
    page.mouse.move(0, 0)
    screenshot(page, "room-desktop.png", tmp_path)
