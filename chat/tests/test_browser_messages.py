"""Edits, replies, reactions and formatted messages in a real browser (SPEC §6.1, §6.7):
Debian's Chromium driven by Playwright against a real `uvicorn` server, with the server,
browser and page fixtures of test_browser.py.

What a person does: fix a typo in place and see it fixed on someone else's screen (with
the versions behind "(edited)"), answer a message from long ago and jump back to it,
react and watch the counts move on both screens, and read a wide code block on a phone.
"""

# ruff: noqa: F811 (the tests take the imported fixtures as arguments, as pytest wants)
import re
import secrets

from chat.tests.test_browser import (  # noqa: F401 (fixtures and the skip marks)
    REPO,
    browser,
    bubble,
    connected,
    expect,
    messages,
    new_user,
    open_page,
    pytestmark,
    send,
    server,
)
from testkit.servers import manage


def message_item(page, text: str):
    return page.locator("#messages > [data-seq]", has=page.locator(".message-text", has_text=text))


def pinned(page, item):
    """The same message element whatever its text becomes (an editor replaces the text)."""
    return page.locator(f'#messages > [data-id="{item.get_attribute("data-id")}"]')


def test_edit_in_place_shows_on_the_other_screen_with_its_versions(server, open_page):
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room()
    bob.api("POST", f"/api/rooms/{slug}/join/")
    mine, theirs = open_page(ann), open_page(bob)
    for page in (mine, theirs):
        page.goto(f"/rooms/{slug}/")
        connected(page)
    send(mine, "Meet at 5pm")
    expect(bubble(theirs, "Meet at 5pm")).to_be_visible()
    expect(message_item(theirs, "Meet at 5pm").locator('[data-action="edit"]')).to_have_count(0)  # not theirs to edit

    item = pinned(mine, message_item(mine, "Meet at 5pm"))
    item.hover()
    item.locator('[data-action="edit"]').click()
    box = item.locator("textarea.edit-box")
    expect(box).to_be_focused()
    expect(box).to_have_value("Meet at 5pm")
    box.fill("Meet at **6pm**")
    box.press("Enter")

    for page in (mine, theirs):
        expect(page.locator("#messages .message-text strong", has_text="6pm")).to_be_visible()
        edited = message_item(page, "Meet at 6pm")
        expect(edited).to_have_attribute("data-edited", re.compile(r"^\d{4}-"))
        expect(edited.locator(".edited-marker")).to_have_text("(edited)")
        expect(bubble(page, "5pm")).to_have_count(0)

    message_item(theirs, "Meet at 6pm").locator(".edited-marker").click()
    versions = theirs.locator("#versions")
    expect(versions).to_be_visible()
    expect(versions.locator(".version-body")).to_have_text(["Meet at 5pm", "Meet at **6pm**"])
    theirs.keyboard.press("Escape")
    expect(versions).to_be_hidden()

    # Up arrow in the empty send box edits the newest of mine; Esc leaves it as it was.
    send(mine, "see you there")
    expect(bubble(theirs, "see you there")).to_be_visible()
    composer = mine.locator("#composer textarea[name=body]")
    last = pinned(mine, message_item(mine, "see you there"))
    composer.press("ArrowUp")
    box = last.locator("textarea.edit-box")
    expect(box).to_be_focused()
    expect(box).to_have_value("see you there")
    box.fill("this is not kept")
    box.press("Escape")
    expect(mine.locator("textarea.edit-box")).to_have_count(0)
    expect(composer).to_be_focused()
    expect(bubble(mine, "see you there")).to_be_visible()
    assert message_item(mine, "see you there").get_attribute("data-edited") is None
    mine.reload()  # the server kept no edit either
    expect(bubble(mine, "see you there")).to_be_visible()
    expect(bubble(mine, "this is not kept")).to_have_count(0)


def test_reply_jumps_to_an_original_that_is_not_loaded(server, open_page):
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room()
    bob.api("POST", f"/api/rooms/{slug}/join/")
    original = ann.say(slug, "Who has the key to the shed?")
    for n in range(125):  # the first page holds the latest 50
        (bob if n % 2 else ann).say(slug, f"filler {n}")
    bob.api(
        "POST",
        f"/api/rooms/{slug}/messages/",
        {"body": "I have it", "client_id": secrets.token_hex(8), "reply_to": original["id"]},
    )

    page = open_page(ann)
    page.goto(f"/rooms/{slug}/")
    connected(page)
    reply = message_item(page, "I have it")
    quote = reply.locator(".reply-quote")
    expect(quote).to_contain_text("Who has the key to the shed?")
    first = page.locator(f'#messages > [data-id="{original["id"]}"]')
    expect(first).to_have_count(0)

    quote.click()
    expect(first).to_be_in_viewport()
    expect(first).to_have_class(re.compile(r"\bhighlight\b"))
    seqs = [seq for seq, _ in messages(page)]
    assert original["seq"] in seqs and seqs == list(range(seqs[0], seqs[-1] + 1))
    assert max(seqs) < 127  # a window around the original, not the whole room

    # Back to the newest: the list is the latest page again, live as before.
    page.locator("#jump-latest").click()
    expect(reply).to_be_in_viewport()
    expect(page.locator("#jump-latest")).to_be_hidden()
    latest = [(m["seq"], m["id"]) for m in ann.api("GET", f"/api/rooms/{slug}/messages/")]
    assert messages(page)[-len(latest) :] == latest

    # A reply from the page: the quote above the send box, then in both bubbles; quotes
    # follow the original's edit and recall live.
    other = open_page(bob)
    other.goto(f"/rooms/{slug}/")
    connected(other)
    cups = bob.say(slug, "Can someone bring cups?")
    target = message_item(page, "Can someone bring cups?")
    target.hover()
    target.locator('[data-action="reply"]').click()
    preview = page.locator("#reply-preview")
    expect(preview).to_contain_text("Can someone bring cups?")
    page.locator("#reply-cancel").click()
    expect(preview).to_be_hidden()
    target.hover()
    target.locator('[data-action="reply"]').click()
    send(page, "I will")
    expect(preview).to_be_hidden()
    for screen in (page, other):
        expect(message_item(screen, "I will").locator(".reply-quote")).to_contain_text("Can someone bring cups?")
    bob.api("PATCH", f"/api/messages/{cups['id']}/", {"body": "Can someone bring cups and plates?"})
    for screen in (page, other):
        expect(message_item(screen, "I will").locator(".reply-quote")).to_contain_text("cups and plates?")
    bob.api("POST", f"/api/messages/{cups['id']}/recall/")
    for screen in (page, other):
        expect(message_item(screen, "I will").locator(".reply-quote")).to_contain_text("Message recalled")


def test_reactions_change_live_on_both_screens(server, open_page):
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room()
    bob.api("POST", f"/api/rooms/{slug}/join/")
    ann.say(slug, "Lunch at noon?")
    mine, theirs = open_page(ann), open_page(bob, locale="zh-TW")
    for page in (mine, theirs):
        page.goto(f"/rooms/{slug}/")
        connected(page)

    item = message_item(mine, "Lunch at noon?")
    item.hover()
    item.locator('[data-action="react"]').click()
    picker = mine.locator("#emoji-picker")
    expect(picker).to_be_visible()
    mine.locator("#emoji-search").fill("thumbs up")
    mine.locator('#emoji-results .emoji-option[data-emoji="👍"]').click()
    expect(picker).to_be_hidden()

    chip = {page: message_item(page, "Lunch at noon?").locator('.reaction[data-emoji="👍"]') for page in (mine, theirs)}
    for page in (mine, theirs):
        expect(chip[page].locator(".reaction-count")).to_have_text("1")
    expect(chip[mine]).to_have_attribute("aria-pressed", "true")
    expect(chip[theirs]).to_have_attribute("aria-pressed", "false")

    # Bob's page is in 繁體中文: the picker's names and search are too.
    other = message_item(theirs, "Lunch at noon?")
    other.hover()
    other.locator('[data-action="react"]').click()
    theirs.locator("#emoji-search").fill("愛心")
    heart = theirs.locator('#emoji-results .emoji-option[data-emoji="❤️"]')
    expect(heart).to_have_attribute("title", "愛心")
    heart.click()
    chip[theirs].click()  # and 👍 too
    for page in (mine, theirs):
        expect(chip[page].locator(".reaction-count")).to_have_text("2")
        hearts = message_item(page, "Lunch at noon?").locator('.reaction[data-emoji="❤️"] .reaction-count')
        expect(hearts).to_have_text("1")
    expect(chip[theirs]).to_have_attribute("aria-pressed", "true")
    expect(chip[mine]).to_have_attribute("title", re.compile(f"{ann.username}.*{bob.username}"))

    chip[theirs].click()  # toggled off
    for page in (mine, theirs):
        expect(chip[page].locator(".reaction-count")).to_have_text("1")
    chip[mine].click()
    for page in (mine, theirs):
        expect(chip[page]).to_have_count(0)
    reactions = ann.api("GET", f"/api/rooms/{slug}/messages/")[-1]["reactions"]
    assert reactions == [{"emoji": "❤️", "count": 1, "users": [bob.username]}]


def test_code_block_scrolls_inside_its_bubble_at_phone_width(server, open_page):
    ann = new_user(server, "ann")
    slug = ann.room()
    line = "SELECT " + ", ".join(f"column_{n:02}" for n in range(40))
    line = line[:300]
    assert len(line) == 300
    ann.say(slug, f"The query, with `inline code`:\n\n```sql\n{line}\n```\n\n> a quote\n\n- one\n- two")
    page = open_page(ann, viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    page.goto(f"/rooms/{slug}/")
    connected(page)
    code = page.locator("#messages .message-text pre")
    expect(code).to_be_visible()
    expect(page.locator("#messages .message-text blockquote")).to_have_text("a quote")
    expect(page.locator("#messages .message-text li")).to_have_text(["one", "two"])
    expect(page.locator("#messages .message-text p code")).to_have_text("inline code")
    assert page.evaluate("document.scrollingElement.scrollWidth <= document.scrollingElement.clientWidth")
    assert page.evaluate("(s => s.scrollWidth <= s.clientWidth)(document.getElementById('scroller'))")
    assert code.evaluate("pre => pre.scrollWidth > pre.clientWidth + 500")
    assert code.evaluate("pre => { pre.scrollLeft = 400; return pre.scrollLeft; }") == 400
    box = code.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 360


def test_polling_without_websockets_shows_edits_and_reactions(server, open_page):
    """Where WebSockets never connect the page polls `?since_rev=`, which brings edits and
    reactions too (`?after_seq=` only ever brought new messages)."""
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room()
    bob.api("POST", f"/api/rooms/{slug}/join/")
    note = bob.say(slug, "Standup at 9")
    page = open_page(ann)
    page.add_init_script("delete window.WebSocket")
    page.goto(f"/rooms/{slug}/")
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "polling")
    item = page.locator(f'#messages > [data-id="{note["id"]}"]')

    bob.api("PATCH", f"/api/messages/{note['id']}/", {"body": "Standup at **10**"})
    bob.api("PUT", f"/api/messages/{note['id']}/reactions/%F0%9F%91%80/")  # 👀
    expect(item.locator(".message-text strong")).to_have_text("10", timeout=12_000)
    expect(item.locator('.reaction[data-emoji="👀"] .reaction-count')).to_have_text("1", timeout=12_000)

    # Own actions go by REST: a reaction toggled on and off, an edit.
    item.locator('.reaction[data-emoji="👀"]').click()
    expect(item.locator('.reaction[data-emoji="👀"] .reaction-count')).to_have_text("2")
    item.locator('.reaction[data-emoji="👀"]').click()
    expect(item.locator('.reaction[data-emoji="👀"] .reaction-count')).to_have_text("1")
    send(page, "ok")
    expect(page.locator("#messages > .mine", has_text="ok")).to_have_count(1, timeout=12_000)
    mine = pinned(page, page.locator("#messages > .mine", has_text="ok"))
    mine.hover()
    mine.locator('[data-action="edit"]').click()
    mine.locator("textarea.edit-box").fill("ok, see you")
    mine.locator("textarea.edit-box").press("Enter")
    expect(mine.locator(".edited-marker")).to_be_visible()
    assert bob.api("GET", f"/api/rooms/{slug}/messages/")[-1]["body"] == "ok, see you"


CHANGE_WHILE_AWAY = """
from django.contrib.auth.models import User
from chat import services
from chat.models import Message
old = Message.objects.get(room__slug='{slug}', seq=3)
shown = Message.objects.get(room__slug='{slug}', seq=56)
services.reaction_add(user=User.objects.get(username='{bob}'), message_id=old.id, emoji='👍')
services.message_edit(user=User.objects.get(username='{ann}'), message_id=shown.id, body='note 54, edited')
"""


def test_resume_updates_what_is_shown_and_leaves_older_changes_to_their_page(server, open_page):
    ann, bob = new_user(server, "ann"), new_user(server, "bob")
    slug = ann.room()
    bob.api("POST", f"/api/rooms/{slug}/join/")  # "bob joined": seq 1; note n is seq n + 2
    for n in range(60):
        ann.say(slug, f"note {n}")
    page = open_page(ann)
    page.goto(f"/rooms/{slug}/")
    connected(page)
    expect(bubble(page, "note 59")).to_be_visible()
    shown = [seq for seq, _ in messages(page)]
    assert shown == list(range(12, 62))

    server.stop()
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "reconnecting")
    manage(server.env, "shell", "-c", CHANGE_WHILE_AWAY.format(slug=slug, ann=ann.username, bob=bob.username))
    server.start()
    page.evaluate("window.dispatchEvent(new Event('online'))")
    connected(page)

    # The resume replays both as `message` frames: the one on screen is replaced in place,
    # the old one is not wedged above the first page (it comes, as it is, with its page).
    expect(bubble(page, "note 54, edited")).to_be_visible()
    assert [seq for seq, _ in messages(page)] == shown
    page.locator("#scroller").evaluate("s => { s.scrollTop = 0; }")
    expect(page.locator("#messages > [data-seq='3'] .reaction[data-emoji='👍'] .reaction-count")).to_have_text("1")
    assert [seq for seq, _ in messages(page)] == list(range(1, 62))
