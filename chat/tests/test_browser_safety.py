"""Files, pins, reports, mutes and blocks in a real browser (SPEC §6.4, §6.7): Debian's
Chromium driven by Playwright against a real `uvicorn` server, with the server, browser
and page fixtures of test_browser.py.

What a person does: drop a file into the room and see it as a file bubble on another
screen; an owner pins a message from its menu and everyone finds it in the room's
pinned list; a reader reports one; a muted member sees why they cannot write and until
when; someone blocks a pest from their conversation and stops seeing them in a room.
"""

# ruff: noqa: F811 (the tests take the imported fixtures as arguments, as pytest wants)
import secrets

from chat.tests.test_browser import (  # noqa: F401 (fixtures and the skip marks)
    browser,
    bubble,
    connected,
    expect,
    new_user,
    open_page,
    pytestmark,
    request,
    send,
    server,
)


def item(page, text: str):
    return page.locator("#messages > [data-seq]", has=page.locator(".message-text", has_text=text))


def test_a_dropped_file_is_a_file_bubble_and_pins_and_reports_come_from_the_message_menu(server, open_page):
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room()
    bob.api("POST", f"/api/rooms/{slug}/join/")
    owner, member = open_page(ann), open_page(bob)
    for page in (owner, member):
        page.goto(f"/rooms/{slug}/")
        connected(page)

    # bob drops a file on the room and sends it with a caption.
    transfer = member.evaluate_handle(
        "() => { const t = new DataTransfer(); t.items.add(new File(['a,b\\n1,2\\n'], 'prices.csv', {type: 'text/csv'})); return t; }"
    )
    member.dispatch_event("#room", "drop", {"dataTransfer": transfer})
    expect(member.locator("#attachment-name")).to_contain_text("prices.csv")
    send(member, "this week's prices")
    for page in (owner, member):
        card = item(page, "this week's prices").locator("a.file-card")
        expect(card.locator(".file-name")).to_have_text("prices.csv")
        expect(card.locator(".file-info")).to_have_text("8 B · text/csv")

    # Only the owner gets a pin button; pinning fills everyone's pinned list.
    bob.say(slug, "Rules: be kind")
    expect(item(member, "Rules: be kind").locator('[data-action="pin"]')).to_have_count(0)
    rules = item(owner, "Rules: be kind")
    rules.hover()
    rules.locator('[data-action="pin"]').click()
    for page in (owner, member):
        expect(page.locator("#pins-button")).to_be_visible()
        expect(page.locator("#pins-button .pins-count")).to_have_text("1")
        expect(item(page, "Rules: be kind")).to_have_attribute("data-pinned", "true")
    member.locator("#pins-button").click()
    expect(member.locator("#pins .pin-jump")).to_contain_text("Rules: be kind")

    # ann reports bob's message through the report action.
    rules.hover()
    rules.locator('[data-action="report"]').click()
    member_report = owner.locator("#report-dialog")
    expect(member_report).to_be_visible()
    member_report.locator("textarea").fill("not kind at all")
    owner.locator("#report-send").click()
    expect(owner.locator("#composer-note")).to_contain_text("report was sent")


def test_a_muted_member_sees_why_and_until_when(server, open_page):
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room()
    bob.api("POST", f"/api/rooms/{slug}/join/")
    page = open_page(bob)
    page.goto(f"/rooms/{slug}/")
    connected(page)
    ann.api("POST", f"/api/rooms/{slug}/mutes/", {"username": bob.username, "minutes": 10})

    # The page hears it on the user stream (a refused send would tell it too) ...
    expect(page.locator("#muted-notice")).to_contain_text("You are muted in this room until")
    expect(page.locator("#composer textarea[name=body]")).to_be_disabled()
    page.reload()  # ... and the page from the server
    expect(page.locator("#muted-notice")).to_be_visible()
    expect(page.locator("#composer textarea[name=body]")).to_be_disabled()


def test_blocking_from_a_conversation_collapses_them_in_rooms(server, open_page):
    ann, pest = new_user(server, "ann"), new_user(server, "pest")
    slug = ann.room()
    pest.api("POST", f"/api/rooms/{slug}/join/")
    pest.say(slug, "buy my stuff " + secrets.token_hex(2))
    dm = ann.api("POST", f"/api/dm/{pest.username}/")["slug"]
    page = open_page(ann)
    page.goto(f"/rooms/{dm}/")
    connected(page)
    page.locator("#block-button").click()
    expect(page.locator("#block-button")).to_have_attribute("aria-pressed", "true")
    status = request(
        server, "POST", f"/api/rooms/{dm}/messages/", {"body": "hello?"}, token=pest.token
    )[0]
    assert status == 403

    page.goto(f"/rooms/{slug}/")
    connected(page)
    collapsed = page.locator("#messages > li.blocked")
    expect(collapsed).to_have_count(1)
    expect(collapsed.locator(".blocked-text")).to_contain_text("Message from a user you blocked")
    collapsed.locator(".blocked-reveal").click()
    expect(bubble(page, "buy my stuff")).to_be_visible()


def test_a_mute_arrives_live_is_lifted_live_and_ends_by_itself(server, open_page):
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room()
    bob.api("POST", f"/api/rooms/{slug}/join/")
    page = open_page(bob)
    page.clock.install()  # the page's own clock, moved on below: the mute's end comes without a reload
    page.goto(f"/rooms/{slug}/")
    connected(page)
    body = page.locator("#composer textarea[name=body]")
    notice = page.locator("#muted-notice")

    ann.api("POST", f"/api/rooms/{slug}/mutes/", {"username": bob.username, "minutes": 10})
    expect(notice).to_contain_text("You are muted in this room until")  # told at once, before trying to write
    expect(body).to_be_disabled()
    ann.api("DELETE", f"/api/rooms/{slug}/mutes/{bob.username}/")
    expect(notice).to_be_hidden()
    expect(body).to_be_enabled()

    ann.api("POST", f"/api/rooms/{slug}/mutes/", {"username": bob.username, "minutes": 1})
    expect(body).to_be_disabled()
    page.clock.run_for(61_000)
    expect(notice).to_be_hidden()
    expect(body).to_be_enabled()


def test_the_owner_sees_and_lifts_bans_and_refusals_are_in_plain_words(server, open_page):
    ann, bob, cy, dan = (new_user(server, name) for name in ("ann", "bob", "cy", "dan"))
    slug = ann.room()
    for person in (bob, cy, dan):
        person.api("POST", f"/api/rooms/{slug}/join/")
    ann.api("POST", f"/api/rooms/{slug}/bans/", {"username": cy.username, "minutes": 60})
    page = open_page(ann)
    page.goto(f"/rooms/{slug}/")
    connected(page)
    page.locator("#room-panel-open").click()
    bans = page.locator("#banned-list")
    expect(bans.locator(f'.ban[data-username="{cy.username}"]')).to_contain_text("banned until")

    page.evaluate("window.confirm = () => true")
    page.locator(f'#members .member[data-username="{bob.username}"]').get_by_role("button", name="Ban").click()
    bobs = bans.locator(f'.ban[data-username="{bob.username}"]')
    expect(bobs).to_contain_text("banned until lifted")
    bobs.get_by_role("button", name="Unban").click()
    expect(bobs).to_have_count(0)
    expect(page.locator("#members-status")).to_contain_text("may come back")
    assert request(server, "POST", f"/api/rooms/{slug}/join/", token=bob.token)[0] == 200

    # Someone else lifted cy's ban meanwhile: lifting it again is fine (idempotent); making a
    # person admin who has left the room is refused in words, not the server's text.
    ann.api("DELETE", f"/api/rooms/{slug}/bans/{cy.username}/")
    bans.locator(f'.ban[data-username="{cy.username}"]').get_by_role("button", name="Unban").click()
    expect(page.locator("#banned")).to_be_hidden()
    dan.api("POST", f"/api/rooms/{slug}/leave/")
    page.locator(f'#members .member[data-username="{dan.username}"]').get_by_role("button", name="Make admin").click()
    expect(page.locator("#members-status")).to_have_text("That person or room no longer exists.")


def test_blocking_from_the_people_page_and_unblocking_from_the_profile(server, open_page):
    ann, pest = new_user(server, "ann"), new_user(server, "pest")
    page = open_page(ann)
    page.goto(f"/people/?q={pest.username}")
    row = page.locator(f'#people-list .person[data-username="{pest.username}"]')
    row.get_by_role("button", name="Block").click()
    expect(row.locator("button[data-block]")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#blocks-note")).to_contain_text("You blocked")
    assert [u["username"] for u in ann.api("GET", "/api/blocks/")] == [pest.username]
    page.reload()  # the page knows it too
    expect(row.get_by_role("button", name="Unblock")).to_be_visible()

    page.goto("/accounts/profile/")
    mine = page.locator("#blocks-list")
    expect(mine.locator(".block-row")).to_have_count(1)
    mine.get_by_role("button", name="Unblock").click()
    expect(mine).to_contain_text("You have not blocked anyone.")
    assert ann.api("GET", "/api/blocks/") == []

    chinese = open_page(ann, locale="zh-TW")
    chinese.goto("/accounts/profile/")
    expect(chinese.locator("#your-blocks h2")).to_have_text("你封鎖的人")
