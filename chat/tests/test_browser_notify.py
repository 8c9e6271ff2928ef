"""Mentions and notifications in a real browser (SPEC §6.2), with the server, browser and
page fixtures of test_browser.py: @ autocomplete by pinyin, a system notification while
the page is hidden, and the room settings panel changing what the sidebar counts."""

# ruff: noqa: F811 (the tests take the imported fixtures as arguments, as pytest wants)
import re
import secrets

import pytest

from chat.tests.test_browser import (  # noqa: F401 (fixtures and the skip marks)
    browser,
    bubble,
    connected,
    expect,
    new_user,
    open_page,
    pytestmark,
)
from chat.tests.test_push import PushService
from testkit.servers import browser_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """test_browser's server, accepting a local plain-http push endpoint, with the push
    worker inside it (the `make run` default)."""
    folder = tmp_path_factory.mktemp("parley-browser-notify")
    with browser_server(folder, "browser-notify", PARLEY_PUSH_ALLOW_INSECURE="true") as worker:
        yield worker

# The browser side of Web Push up to the subscription call: Chromium's own
# PushManager.subscribe needs Google's push service, so it answers with a subscription
# to a local push endpoint here, and records the key it was called with.
FAKE_SUBSCRIBE = """
window.__pushCalls = [];
function fakeSubscription() {
  const fake = window.__fakeSubscription;
  return { endpoint: fake.endpoint, toJSON: () => fake, unsubscribe: async () => { localStorage.removeItem("fakePush"); return true; } };
}
PushManager.prototype.subscribe = async function (options) {
  window.__pushCalls.push(Array.from(new Uint8Array(options.applicationServerKey)));
  localStorage.setItem("fakePush", "1");
  return fakeSubscription();
};
PushManager.prototype.getSubscription = async function () { return localStorage.getItem("fakePush") ? fakeSubscription() : null; };
"""

HIDDEN = "Object.defineProperty(document, 'visibilityState', {get: () => 'hidden', configurable: true});"


def link(page, slug):
    return page.locator(f'#sidebar .room-link[data-room="{slug}"]')


def test_mention_autocomplete_by_pinyin_and_the_mention_badge(server, open_page):
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    name = "欧阳" + "锋"
    bob.api("PATCH", "/api/me/", {"display_name": name})
    slug = ann.room()
    bob.api("POST", f"/api/rooms/{slug}/join/")
    other = bob.room()
    theirs = open_page(bob)
    theirs.goto(f"/rooms/{other}/")
    connected(theirs)

    mine = open_page(ann)
    mine.goto(f"/rooms/{slug}/")
    connected(mine)
    box = mine.locator("#composer textarea[name=body]")
    box.fill("hello @oyf")
    box.dispatch_event("input")
    options = mine.locator("#mention-suggest [role=option]")
    expect(options.filter(has_text=bob.username)).to_have_count(1)
    expect(options.first).to_have_attribute("aria-selected", "true")
    index = [o.get_attribute("data-username") for o in options.all()].index(bob.username)
    for _ in range(index):
        box.press("ArrowDown")
    box.press("Enter")  # takes the suggestion, does not send
    expect(box).to_have_value(f"hello @{bob.username} ")
    expect(mine.locator("#mention-suggest")).to_be_hidden()
    box.press("Enter")
    expect(mine.locator("#messages .mention.mention-real", has_text=f"@{bob.username}")).to_be_visible()

    # bob, in another room: the mention badge beside the unread badge.
    expect(link(theirs, slug).locator(".mention-badge")).to_have_text("@1")
    expect(link(theirs, slug).locator(".badge")).to_have_text("1")
    expect(theirs).to_have_title("(1) " + theirs.title().split(") ", 1)[-1])


def test_a_notification_shows_while_the_page_is_hidden_and_opens_the_message(server, open_page):
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room()
    bob.api("POST", f"/api/rooms/{slug}/join/")
    page = open_page(bob, permissions=["notifications"])
    page.add_init_script(HIDDEN)
    page.goto("/")
    expect(page.locator("body")).to_have_attribute("data-stream", "connected")
    expect(page.locator("#notify-permission")).to_be_hidden()  # granted: nothing to ask

    ann.say(slug, "no mention here")  # a public room tells mentions only by default
    sent = ann.say(slug, f"@{bob.username} can you look? {secrets.token_hex(2)}")
    for _ in range(100):  # (wait_for_function evaluates a string: the CSP forbids that)
        if page.evaluate("(window.parleyNotifications || []).length"):
            break
        page.wait_for_timeout(100)
    shown = page.evaluate("window.parleyNotifications")
    assert len(shown) == 1, shown
    assert shown[0]["body"] == sent["body"]
    assert shown[0]["title"].startswith(ann.username)
    assert shown[0]["url"] == f"/rooms/{slug}/#message-{sent['id']}-{sent['seq']}"

    page.goto(shown[0]["url"])
    expect(page.locator(f'#messages > [data-id="{sent["id"]}"]')).to_have_class(
        re.compile(r"\bmentions-me\b")
    )


def test_the_settings_panel_changes_what_is_counted(server, open_page):
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room()
    bob.api("POST", f"/api/rooms/{slug}/join/")
    other = bob.room()
    page = open_page(bob)
    page.goto(f"/rooms/{slug}/")
    connected(page)
    page.locator("#room-settings-toggle").click()
    panel = page.locator("#room-settings")
    expect(panel).to_be_visible()
    expect(panel.locator("input[value=mentions]")).to_be_checked()
    panel.locator("#room-mute").select_option("forever")
    expect(link(page, slug)).to_have_class(re.compile(r"\bmuted\b"))
    assert bob.api("GET", f"/api/rooms/{slug}/settings/")["muted_until"].startswith("2100-")

    page.goto(f"/rooms/{other}/")
    connected(page)
    ann.say(slug, "plain")
    ann.say(slug, f"@{bob.username} still see this")
    # Muted: no count badge, no title count; the mention still shows.
    expect(link(page, slug).locator(".mention-badge")).to_have_text("@1")
    expect(link(page, slug).locator(".badge")).to_be_hidden()
    assert page.locator("body").get_attribute("data-unread-total") == "0"

    # Unmuted (opening the room read what was there): counted again.
    page.goto(f"/rooms/{slug}/")
    page.locator("#room-settings-toggle").click()
    page.locator("#room-mute").select_option("")
    expect(link(page, slug)).not_to_have_class(re.compile(r"\bmuted\b"))
    page.goto(f"/rooms/{other}/")
    connected(page)
    ann.say(slug, "after unmuting")
    expect(link(page, slug).locator(".badge")).to_have_text("1")
    expect(page.locator("body")).to_have_attribute("data-unread-total", "1")


def test_push_subscription_from_the_profile_page_and_its_errors_shown(server, open_page):
    import base64
    import json

    from chat.tests.test_push import Browser

    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room()
    bob.api("POST", f"/api/rooms/{slug}/join/")
    bob.api("PUT", f"/api/rooms/{slug}/settings/", {"notify": "all"})
    service = PushService()
    try:
        service.status = 503  # a push service this device cannot reach well
        keys = Browser().keys()
        page = open_page(bob, permissions=["notifications"])
        page.add_init_script(FAKE_SUBSCRIBE)
        page.add_init_script(f"window.__fakeSubscription = {json.dumps({'endpoint': service.endpoint('bob'), 'keys': keys})};")
        page.goto("/accounts/profile/")
        expect(page.locator("#push-list .push-none")).to_be_visible()
        page.locator("#push-subscribe").click()
        expect(page.locator("#push-note")).to_have_text("This device now receives pushes.")
        expect(page.locator("#push-list .push-item")).to_have_count(1)
        expect(page.locator("#push-unsubscribe")).to_be_visible()
        key = bob.api("GET", "/api/push/key/")["key"]
        called = page.evaluate("window.__pushCalls")
        assert bytes(called[0]) == base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))

        ann.say(slug, "are you there?")  # bob has no socket open: pushed (and refused by the service)
        for _ in range(100):
            if bob.api("GET", "/api/push/subscriptions/")[0]["last_error"]:
                break
            page.wait_for_timeout(200)
        page.reload()
        item = page.locator("#push-list .push-item")
        expect(item).to_have_class(re.compile(r"\bfailing\b"))
        expect(item.locator(".push-error")).to_contain_text("HTTP 503")

        page.locator("#push-unsubscribe").click()
        expect(page.locator("#push-list .push-none")).to_be_visible()
        assert bob.api("GET", "/api/push/subscriptions/") == []
    finally:
        service.close()


def test_the_mentions_panel_lists_my_mentions_and_opens_the_room_at_one(server, open_page):
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room()
    bob.api("POST", f"/api/rooms/{slug}/join/")
    other = bob.room()
    page = open_page(bob)
    page.goto(f"/rooms/{other}/")
    connected(page)
    ann.say(slug, "no mention here")
    sent = ann.say(slug, f"@{bob.username} first look {secrets.token_hex(2)}")
    expect(page.locator("#mentions-total")).to_have_text("@1")

    page.locator("#mentions-panel summary").click()
    items = page.locator("#mentions-list .mention-link")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text(sent["body"])
    expect(items.first).to_contain_text(ann.username)
    # A new mention while the panel is open comes in on top.
    newer = ann.say(slug, f"@{bob.username} second look")
    expect(items).to_have_count(2)
    expect(items.first).to_contain_text(newer["body"])
    expect(page.locator("#mentions-total")).to_have_text("@2")

    items.nth(1).click()
    expect(page).to_have_url(re.compile(re.escape(f"/rooms/{slug}/#message-{sent['id']}-{sent['seq']}") + "$"))
    expect(page.locator(f'#messages > [data-id="{sent["id"]}"]')).to_have_class(re.compile(r"\bmentions-me\b"))


def test_an_edit_that_mentions_me_notifies_me(server, open_page):
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room()
    bob.api("POST", f"/api/rooms/{slug}/join/")
    page = open_page(bob, permissions=["notifications"])
    page.add_init_script(HIDDEN)
    page.goto("/")
    expect(page.locator("body")).to_have_attribute("data-stream", "connected")
    sent = ann.say(slug, "can someone look?")  # a public room tells mentions only: nothing yet
    expect(link(page, slug).locator(".badge")).to_have_text("1")
    assert page.evaluate("(window.parleyNotifications || []).length") == 0
    body = f"@{bob.username} can you look? {secrets.token_hex(2)}"
    ann.api("PATCH", f"/api/messages/{sent['id']}/", {"body": body})
    expect(link(page, slug).locator(".mention-badge")).to_have_text("@1")
    for _ in range(100):
        if page.evaluate("(window.parleyNotifications || []).length"):
            break
        page.wait_for_timeout(100)
    shown = page.evaluate("window.parleyNotifications")
    assert [(n["body"], n["url"]) for n in shown] == [(body, f"/rooms/{slug}/#message-{sent['id']}-{sent['seq']}")]
