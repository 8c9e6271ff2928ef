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
    PASTE_IMAGE,
    browser,
    bubble,
    connected,
    expect,
    new_user,
    open_page,
    pytestmark,
    request,
    screenshot,
    send,
)
from testkit.servers import browser_server, manage


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Parley on a database of its own, fresh for this module: no account, no room."""
    with browser_server(tmp_path_factory.mktemp("parley-browser-app"), "browser-app") as worker:
        yield worker


PHONE = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True}


def no_horizontal_scroll(page) -> None:
    assert page.evaluate("document.scrollingElement.scrollWidth") <= page.viewport_size["width"], page.url


def test_first_run_to_the_first_message(server, open_page, tmp_path):
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
    screenshot(page, "setup-desktop.png", tmp_path)
    phone = open_page(locale="zh-CN", **PHONE)
    phone.goto("/setup/")
    expect(phone.locator("#setup-form")).to_contain_text("设置码")
    screenshot(phone, "setup-phone-zh.png", tmp_path)
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


def test_a_project_and_its_visitor_conversation_appear_live_in_the_owner_inbox(server, open_page):
    owner, visitor = new_user(server, "olga"), new_user(server, "vic")
    visitor.api("PATCH", "/api/me/", {"display_name": "Victor"})
    mine = open_page(owner)
    mine.goto("/")
    mine.locator("#projects-link").click()
    mine.get_by_role("link", name="New project").click()
    form = mine.locator("#project-form")
    form.get_by_label("Title").fill("Corner Bakery")
    slug = f"bakery-{secrets.token_hex(3)}"
    form.get_by_label("Address").fill(slug)
    form.get_by_label("Description").fill("Bread every morning")
    form.get_by_role("button", name="Save").click()
    expect(mine).to_have_url(f"{server.base}/projects/{slug}/")
    mine.get_by_role("link", name="Conversations about this project").click()
    expect(mine.locator("#inbox")).to_contain_text("No conversations yet.")
    expect(mine.locator("body")).to_have_attribute("data-stream", "connected")

    theirs = open_page(visitor)
    theirs.goto("/projects/")
    theirs.get_by_role("link", name="Corner Bakery").click()
    theirs.get_by_role("button", name="Chat with the owner").click()
    expect(theirs.locator(".room-head h1")).to_have_text(re.compile(r"^Corner Bakery · "))
    connected(theirs)

    row = mine.locator("#inbox .inbox-row")
    expect(row).to_have_count(1)  # without a reload
    expect(row.locator(".room-name")).to_have_text("Victor")
    send(theirs, "Do you have rye bread?")
    expect(row.locator(".badge")).to_have_text("1")
    expect(row.locator("time")).not_to_have_text(re.compile(r"^\d{4}-"))  # a date people read
    expect(mine.locator('#sidebar .room-link[data-kind="project"] .room-name')).to_have_text("Corner Bakery · Victor")
    row.locator("a").click()
    expect(mine.locator(".room-head h1")).to_have_text("Corner Bakery · Victor")
    expect(bubble(mine, "rye bread")).to_be_visible()


def test_the_owner_mutes_appoints_and_bans_from_the_members_panel(server, open_page):
    """The members panel's moderation (issue 16's REST endpoints): a timed mute the member
    feels, an admin made and unmade, a ban after saying yes; and the buttons in 简体中文."""
    owner, ben, cal = new_user(server, "mod"), new_user(server, "ben"), new_user(server, "cal")
    ben.api("PATCH", "/api/me/", {"display_name": "Ben Wu"})
    slug = owner.room(name="Town square")
    for person in (ben, cal):
        person.api("POST", f"/api/rooms/{slug}/join/")
    mine = open_page(owner)
    mine.goto(f"/rooms/{slug}/")
    connected(mine)
    mine.locator("#room-panel-open").click()
    panel = mine.locator("#room-panel")
    status = panel.locator("#members-status")
    bens = panel.locator(f'.member[data-username="{ben.username}"]')

    bens.get_by_label("Mute Ben Wu").select_option("10")
    expect(status).to_contain_text("Ben Wu is muted until")
    expect(bens.locator(".member-muted")).to_be_visible()
    refused, answer = request(server, "POST", f"/api/rooms/{slug}/messages/", {"body": "hello?"}, token=ben.token)
    assert refused == 403 and answer["code"] == "muted", answer
    bens.get_by_role("button", name="Unmute").click()
    expect(status).to_contain_text("Ben Wu may write again.")
    expect(bens.locator(".member-muted")).to_be_hidden()
    ben.say(slug, "back again")

    bens.get_by_role("button", name="Make admin").click()
    expect(bens.locator(".role")).to_have_text("admin")
    expect(status).to_contain_text("Ben Wu is now an admin.")
    assert ben.api("GET", f"/api/rooms/{slug}/audit/")  # an admin reads the moderation log
    bens.get_by_role("button", name="Remove admin").click()
    expect(bens.locator(".role")).to_have_text("member")

    cals = panel.locator(f'.member[data-username="{cal.username}"]')
    cals.get_by_role("button", name="Ban").click()  # asks first; the page fixture answers "no"
    assert mine.dialogs[-1].startswith("Ban ")
    expect(cals).to_have_count(1)
    mine.evaluate("window.confirm = () => true")
    cals.get_by_role("button", name="Ban").click()
    expect(cals).to_have_count(0)
    expect(status).to_contain_text("was banned.")
    assert request(server, "GET", f"/api/rooms/{slug}/messages/", token=cal.token)[0] == 404
    no_horizontal_scroll(mine)

    chinese = open_page(owner, locale="zh-CN", **PHONE)
    chinese.goto(f"/rooms/{slug}/")
    chinese.locator("#room-panel-open").click()
    row = chinese.locator(f'#room-panel .member[data-username="{ben.username}"]')
    expect(row.get_by_role("button", name="封禁")).to_be_visible()
    expect(row.get_by_role("button", name="设为管理员")).to_be_visible()
    expect(chinese.locator("#messages")).to_contain_text("封禁")  # "… 已被封禁", the ban's system message
    no_horizontal_scroll(chinese)


def test_inviting_listing_removing_and_leaving_members_of_a_private_room(server, open_page):
    owner, ben, cal = new_user(server, "own"), new_user(server, "ben"), new_user(server, "cal")
    ben.api("PATCH", "/api/me/", {"display_name": "Ben Wu"})
    slug = owner.room(kind="private", name="Kitchen")
    mine = open_page(owner)
    mine.goto(f"/rooms/{slug}/")
    connected(mine)
    mine.locator("#room-panel-open").click()
    panel = mine.locator("#room-panel")
    expect(panel.locator(".member")).to_have_count(1)
    panel.get_by_placeholder("Invite by name…").fill(ben.username)
    panel.get_by_role("button", name="Invite").click()
    expect(panel.locator(f'.member[data-username="{ben.username}"] .member-name')).to_contain_text("Ben Wu")
    expect(panel.locator(f'.member[data-username="{ben.username}"] .role')).to_have_text("member")
    panel.get_by_placeholder("Invite by name…").fill(cal.username)
    panel.get_by_role("button", name="Invite").click()
    expect(panel.locator(".member")).to_have_count(3)

    # ben sees the room and who is online, by display name.
    bens = open_page(ben)
    bens.goto(f"/rooms/{slug}/")
    connected(bens)
    expect(mine.locator("#online")).to_contain_text("Ben Wu")
    expect(bens.locator(f'#sidebar .room-link[data-room="{slug}"]')).to_have_count(1)

    # Removed: the room leaves ben's sidebar, the composer is disabled, nobody shows online.
    remove = mine.locator(f'.member[data-username="{ben.username}"]').get_by_role("button", name="Remove")
    remove.click()  # asks first; the page fixture answers "no"
    assert mine.dialogs == ["Remove Ben Wu from this room?"]
    expect(panel.locator(f'.member[data-username="{ben.username}"]')).to_have_count(1)
    mine.evaluate("window.confirm = () => true")
    remove.click()
    expect(mine.locator(f'#members .member[data-username="{ben.username}"]')).to_have_count(0)
    expect(bens.locator(f'#sidebar .room-link[data-room="{slug}"]')).to_have_count(0)
    expect(bens.locator("#composer textarea[name=body]")).to_be_disabled()
    expect(bens.locator("#online")).to_have_text("")
    expect(mine.locator("#online")).not_to_contain_text("Ben Wu")

    # cal leaves by the panel's button, after saying yes.
    cals = open_page(cal)
    cals.goto(f"/rooms/{slug}/")
    connected(cals)
    cals.locator("#room-panel-open").click()
    cals.evaluate("window.confirm = (text) => { window.asked = text; return true; }")
    cals.get_by_role("button", name="Leave room").click()
    expect(cals).to_have_url(f"{server.base}/")
    expect(cals.locator(f'#sidebar .room-link[data-room="{slug}"]')).to_have_count(0)
    assert cals.goto(f"/rooms/{slug}/").status == 404


def test_people_directory_starts_a_dm_at_the_persons_address(server, open_page):
    ann, zoe = new_user(server, "ann"), new_user(server, "zoe")
    zoe.api("PATCH", "/api/me/", {"display_name": "Zoe Lin"})
    page = open_page(ann)
    page.goto("/")
    page.locator("#people-link").click()
    page.get_by_placeholder("Name or username…").fill("zoe lin")
    page.get_by_role("button", name="Find").click()
    person = page.locator(f'#people-list .person[data-username="{zoe.username}"]')
    expect(page.locator("#people-list .person")).to_have_count(1)
    person.get_by_text("Message").click()
    page.locator("#dm-start").get_by_role("button", name="Start conversation").click()
    expect(page).to_have_url(f"{server.base}/dm/{zoe.username}/")  # the person, not dm-1-2
    expect(page.locator(".room-head h1")).to_have_text("Zoe Lin")
    connected(page)
    send(page, "hi Zoe")
    expect(bubble(page, "hi Zoe")).to_be_visible()
    expect(page.locator('#sidebar .room-link[data-kind="dm"]')).to_have_attribute("href", f"/dm/{zoe.username}/")

    page.goto("/dm/no-such-person/")
    expect(page.locator("#notice h1")).to_have_text("No such user.")
    expect(page.locator("#sidebar")).to_be_attached()


def test_polling_shows_a_recall_and_a_delete(server, open_page):
    """Without WebSockets the page polls ?since_rev=: a recall and a deletion show too."""
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room()
    bob.api("POST", f"/api/rooms/{slug}/join/")
    oops, spam = bob.say(slug, "wrong room, sorry"), bob.say(slug, "buy cheap watches")
    page = open_page(ann)
    page.add_init_script("delete window.WebSocket")
    page.goto(f"/rooms/{slug}/")
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "polling")
    expect(bubble(page, "buy cheap watches")).to_be_visible()
    bob.api("POST", f"/api/messages/{oops['id']}/recall/")
    ann.api("DELETE", f"/api/messages/{spam['id']}/")
    recalled = page.locator(f'#messages > [data-id="{oops["id"]}"]')
    expect(recalled).to_have_class(re.compile(r"\brecalled\b"), timeout=12_000)
    expect(recalled).to_contain_text("recalled a message")
    expect(page.locator(f'#messages > [data-id="{spam["id"]}"]')).to_have_count(0, timeout=12_000)
    expect(bubble(page, "wrong room")).to_have_count(0)


def test_404_page_is_in_the_apps_frame(server, open_page):
    page = open_page(new_user(server, "ann"))
    response = page.goto("/no/such/page/")
    assert response.status == 404
    expect(page.locator("#notice h1")).to_contain_text("nothing here")
    expect(page.locator("#sidebar .room-nav")).to_be_visible()
    page.locator("#notice").get_by_role("link", name="Back to the chat").click()
    expect(page).to_have_url(f"{server.base}/")


def test_every_page_fits_360_px_without_horizontal_scroll(server, open_page):
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room(kind="private", name="A fairly long private room name for a phone")
    ann.api("POST", f"/api/rooms/{slug}/members/", {"username": bob.username})
    project = f"p-{secrets.token_hex(3)}"
    ann.api("POST", "/api/projects/", {"title": "Bakery " + "very " * 10 + "long", "slug": project})
    bob.api("POST", f"/api/projects/{project}/chat/")
    bob.api("POST", f"/api/dm/{ann.username}/")
    anonymous, page = open_page(**PHONE), open_page(ann, **PHONE)
    for path in ("/", "/accounts/login/", "/accounts/register/", "/projects/", f"/projects/{project}/"):
        anonymous.goto(path)
        no_horizontal_scroll(anonymous)
    for path in ("/", f"/rooms/{slug}/", f"/rooms/{slug}/#room-panel", "/people/", "/projects/", "/projects/new/",
                 f"/projects/{project}/", f"/projects/{project}/edit/", f"/projects/{project}/chats/",
                 f"/dm/{bob.username}/", "/accounts/profile/", "/no/such/page/"):
        page.goto(path)
        no_horizontal_scroll(page)
    page.goto(f"/rooms/{slug}/")
    page.locator("#room-panel-open").click()
    expect(page.locator("#room-panel")).to_be_visible()
    assert page.evaluate("document.getElementById('room-panel').scrollWidth <= 360")


def test_screenshots_of_the_main_screens(server, open_page, tmp_path):
    """For the README: room, members panel, people, mentions and the project inbox, at
    desktop and phone width, in English and 简体中文."""
    ann, bob, carol = new_user(server, "ann"), new_user(server, "bob"), new_user(server, "carol")
    for user, name in ((ann, "Ann Lee"), (bob, "Bob Chen"), (carol, "王芳")):
        user.api("PATCH", "/api/me/", {"display_name": name})
    slug = ann.room(kind="private", name="Design team")
    for user in (bob, carol):
        ann.api("POST", f"/api/rooms/{slug}/members/", {"username": user.username})
    bob.say(slug, "Morning! The new **onboarding** mockups are up.")
    carol.say(slug, "看起来很棒！手机上的按钮可以再大一点吗？")
    # A mention where ann is not reading (reading a room reads its mentions).
    front = ann.room(name="Front desk")
    bob.say(front, f"@{ann.username} could you look at the sign-up screen today?")
    project = f"bakery-{secrets.token_hex(2)}"
    ann.api("POST", "/api/projects/", {"title": "Corner Bakery", "slug": project, "description": "Bread every morning"})
    for user, text in ((bob, "Do you deliver on Sundays?"), (carol, "请问有无麸质面包吗？")):
        room = user.api("POST", f"/api/projects/{project}/chat/")["slug"]
        user.say(room, text)

    desktop = open_page(ann)
    bobs = open_page(bob)
    bobs.goto(f"/rooms/{slug}/")
    connected(bobs)
    desktop.goto(f"/rooms/{slug}/")
    connected(desktop)
    desktop.locator("#room-panel-open").click()
    desktop.locator("#room-topic-input").fill("Onboarding redesign · launch on Friday")
    desktop.locator("#room-edit button[type=submit]").click()
    expect(desktop.locator("#room-topic")).to_have_text("Onboarding redesign · launch on Friday")
    desktop.goto(f"/rooms/{slug}/#room-panel")  # again, without the "saved" note
    connected(desktop)
    expect(desktop.locator("#room-panel .presence-dot:visible")).to_have_count(2)
    screenshot(desktop, "members-desktop.png", tmp_path)
    desktop.goto("/people/")
    screenshot(desktop, "people-desktop.png", tmp_path)
    desktop.locator("#mentions-panel summary").click()
    expect(desktop.locator("#mentions-list .mention-link")).to_have_count(1)
    screenshot(desktop, "mentions-desktop.png", tmp_path)

    chinese = open_page(ann, locale="zh-CN")
    chinese.goto(f"/projects/{project}/chats/")
    expect(chinese.locator("#inbox .inbox-row")).to_have_count(2)
    screenshot(chinese, "inbox-desktop-zh.png", tmp_path)
    chinese.goto(f"/rooms/{slug}/")
    connected(chinese)
    expect(bubble(chinese, "看起来很棒")).to_be_visible()
    screenshot(chinese, "room-desktop-zh.png", tmp_path)
    chinese.goto("/people/")
    screenshot(chinese, "people-desktop-zh.png", tmp_path)
    phone = open_page(ann, locale="zh-CN", **PHONE)
    phone.goto(f"/rooms/{slug}/")
    connected(phone)
    expect(bubble(phone, "看起来很棒")).to_be_visible()
    expect(phone.locator("#messages .system-text").first).to_have_text("Ann Lee 添加了 Bob Chen")  # the reader's language
    screenshot(phone, "room-phone-zh.png", tmp_path)
    phone.goto(f"/projects/{project}/chats/")
    screenshot(phone, "inbox-phone-zh.png", tmp_path)
    phone.goto(f"/rooms/{slug}/#room-panel")
    expect(phone.locator("#room-panel")).to_be_visible()
    screenshot(phone, "members-phone-zh.png", tmp_path)
    phone.goto("/people/")
    screenshot(phone, "people-phone-zh.png", tmp_path)
    phone.locator("#drawer-toggle").click()
    phone.locator("#mentions-panel summary").click()
    expect(phone.locator("#mentions-list .mention-link")).to_have_count(1)
    screenshot(phone, "mentions-phone-zh.png", tmp_path)
    english_phone = open_page(ann, **PHONE)
    english_phone.goto(f"/rooms/{slug}/#room-panel")
    expect(english_phone.locator("#room-panel")).to_be_visible()
    screenshot(english_phone, "members-phone.png", tmp_path)
    english_phone.goto("/people/")
    screenshot(english_phone, "people-phone.png", tmp_path)


def test_composer_warns_before_cutting_refuses_big_images_and_asks_before_deleting(server, open_page):
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    bob.api("PATCH", "/api/me/", {"display_name": "Bob Chen"})
    slug = ann.room()
    bob.api("POST", f"/api/rooms/{slug}/join/")
    mine, theirs = open_page(ann), open_page(bob)
    for page in (mine, theirs):
        page.goto(f"/rooms/{slug}/")
        connected(page)

    # "X is typing…" ends when X's message arrives, not seconds later.
    theirs.locator("#composer textarea[name=body]").type("on my way")
    expect(mine.locator("#typing")).to_have_text("Bob Chen is typing…")
    theirs.locator("#composer textarea[name=body]").press("Enter")
    expect(bubble(mine, "on my way")).to_be_visible()
    expect(mine.locator("#typing")).to_have_text("", timeout=2_000)

    # Overlong text: said, and not sent, before anything is cut.
    limit = int(mine.locator("#room").get_attribute("data-max-body"))
    box = mine.locator("#composer textarea[name=body]")
    box.fill("x" * (limit + 5))
    expect(mine.locator("#composer-note")).to_have_text(f"5 characters too long (at most {limit}).")
    expect(mine.locator("#send-button")).to_be_disabled()
    assert len(box.input_value()) == limit + 5  # nothing cut
    box.fill("fine")
    expect(mine.locator("#send-button")).to_be_enabled()
    box.fill("")

    # An image over the limit is refused in the browser: nothing is uploaded.
    uploads = []
    mine.on("request", lambda request: uploads.append(request.url) if request.method == "POST" else None)
    mine.locator("#image-input").set_input_files(
        {"name": "huge.png", "mimeType": "image/png", "buffer": b"\0" * (10 * 1024 * 1024 + 1)}
    )
    expect(mine.locator("#composer-note")).to_have_text("Images are limited to 10 MB.")
    expect(mine.locator("#attachment")).to_be_hidden()
    assert not [url for url in uploads if "/messages/" in url]

    # Deleting someone's message asks first (the page fixture answers "no").
    item = mine.locator("#messages > [data-seq]", has=mine.locator(".message-text", has_text="on my way"))
    item.hover()
    item.locator('[data-action="delete"]').click()
    assert mine.dialogs == ["Delete this message for everyone?"]
    expect(bubble(theirs, "on my way")).to_be_visible()


def test_a_topic_and_a_new_display_name_show_on_open_pages_without_a_reload(server, open_page):
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room(name="Bakery")
    joined = open_page(bob, locale="zh-CN")
    joined.goto(f"/rooms/{slug}/")
    joined.locator("#join-room").click()
    connected(joined)
    bob.say(slug, "fresh bread at seven")
    owner = open_page(ann)
    owner.goto(f"/rooms/{slug}/")
    connected(owner)
    # Joining with the button said so, in each reader's language.
    expect(owner.locator("#messages .system-text")).to_have_text(f"{bob.username} joined")
    expect(joined.locator("#messages .system-text")).to_have_text(f"{bob.username} 加入了聊天室")

    owner.locator("#room-panel-open").click()
    owner.locator("#room-topic-input").fill("Opening hours and orders")
    owner.locator("#room-edit button[type=submit]").click()
    expect(owner.locator("#room-topic")).to_have_text("Opening hours and orders")
    connected(owner)  # the form's answer was a new page: its socket must be there for what follows
    expect(joined.locator("#room-topic")).to_have_text("Opening hours and orders")  # live
    expect(joined.locator("#messages .system-text").last).to_have_text(f"{ann.username} 将话题设为“Opening hours and orders”")

    bob.api("POST", f"/api/dm/{ann.username}/")
    direct = open_page(ann)
    direct.goto(f"/dm/{bob.username}/")
    expect(direct.locator("#room-name")).to_have_text(bob.username)
    connected(direct)

    bob.api("PATCH", "/api/me/", {"display_name": "Bob Chen"})
    expect(direct.locator("#room-name")).to_have_text("Bob Chen")  # a DM is named after the person
    expect(direct.locator(".room-head > .avatar")).to_have_text("B")
    item = owner.locator("#messages > [data-seq]", has=owner.locator(".message-text", has_text="fresh bread"))
    expect(item.locator(".message-name")).to_have_text("Bob Chen")
    expect(item.locator(".avatar-initial")).to_have_text("B")
    expect(owner.locator("#online")).to_contain_text("Bob Chen")
    expect(owner.locator(f'#members .member[data-username="{bob.username}"] .member-name')).to_contain_text("Bob Chen")
    expect(owner.locator("#messages .system-text").first).to_have_text("Bob Chen joined")


def test_new_since_your_last_visit_and_image_bubbles_as_wide_as_the_image(server, open_page):
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room()
    bob.api("POST", f"/api/rooms/{slug}/join/")
    ann.say(slug, "see you all tomorrow")
    page = open_page(ann)
    page.goto(f"/rooms/{slug}/")
    connected(page)
    page.goto("/")  # read up to here, then away
    bob.say(slug, "first while you were away")
    bob.say(slug, "second while you were away")
    page.goto(f"/rooms/{slug}/")
    connected(page)
    divider = page.locator("#messages > .first-unread")
    expect(divider).to_have_count(1)
    expect(divider.locator(".message-text")).to_have_text("first while you were away")
    expect(divider).to_have_attribute("data-new-label", "New since your last visit")
    send(page, "back now")
    expect(bubble(page, "back now")).to_be_visible()
    expect(divider).to_have_count(1)  # what arrives live gets none

    page.locator("#composer textarea[name=body]").evaluate(PASTE_IMAGE)
    page.locator("#composer textarea[name=body]").press("Enter")
    image = page.locator("#messages img.message-image")
    expect(image).to_have_js_property("complete", True)
    widths = image.evaluate("img => [img.getBoundingClientRect().width, img.closest('.bubble').getBoundingClientRect().width]")
    assert widths[1] - widths[0] <= 10, widths  # the bubble hugs the picture


def test_the_action_chip_never_covers_the_text_at_phone_width(server, open_page):
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room()
    bob.api("POST", f"/api/rooms/{slug}/join/")
    bob.say(slug, "first")
    # A follow-up: no name line above its bubble for the chip to sit on.
    bob.say(slug, "A long message that fills the whole width of the bubble on a phone screen, line after line.")
    page = open_page(ann, **PHONE)
    page.goto(f"/rooms/{slug}/")
    connected(page)
    text = page.locator("#messages .message-text", has_text="A long message")
    text.tap()
    chip = page.locator("#messages > .show-actions .message-actions")
    expect(chip).to_be_visible()
    expect(chip.locator('[data-action="delete"]')).to_be_visible()
    a, b = text.bounding_box(), chip.bounding_box()
    overlap = not (b["y"] >= a["y"] + a["height"] or b["y"] + b["height"] <= a["y"]
                   or b["x"] >= a["x"] + a["width"] or b["x"] + b["width"] <= a["x"])
    assert not overlap, (a, b)
    no_horizontal_scroll(page)
