"""Search in a real browser (SPEC §6.3, §6.7): Ctrl-K to the box, results with the match
marked, a click that opens the room at the message, and the page at phone width. The
server, browser and page fixtures of test_browser.py."""
# ruff: noqa: F811 (the tests take the imported fixtures as arguments, as pytest wants)

import re

from chat.tests.test_browser import (  # noqa: F401 (fixtures and the skip marks)
    browser,
    connected,
    expect,
    new_user,
    open_page,
    pytestmark,
    server,
)


def test_ctrl_k_search_marks_the_match_and_opens_the_room_at_the_message(server, open_page):
    ann = new_user(server, "ann")
    slug = ann.room(name="Ops")
    wanted = ann.say(slug, "我們的數據庫昨晚重啟了")
    for i in range(3):
        ann.say(slug, f"later note {i}")
    page = open_page(ann)
    page.goto("/")
    page.keyboard.press("Control+k")
    box = page.locator("form#search input[name=q]")
    expect(box).to_be_focused()
    box.fill("数据库")
    box.press("Enter")
    result = page.locator(".search-result")
    expect(result).to_have_count(1)
    expect(result.locator("mark")).to_have_text("數據庫")
    expect(result.locator(".search-room")).to_have_text(f"#{slug}")
    result.locator("a").click()
    page.wait_for_url(f"**/rooms/{slug}/?around_seq={wanted['seq']}**")
    connected(page)
    item = page.locator(f'#messages > [data-id="{wanted["id"]}"]')
    expect(item).to_be_in_viewport()
    expect(item).to_have_class(re.compile(r"\bhighlight\b"))


def test_search_page_fits_a_phone(server, open_page):
    ann = new_user(server, "ann")
    slug = ann.room()
    ann.say(slug, "a long line " * 40 + "needle")
    page = open_page(ann, viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    page.goto("/search/?q=needle")
    expect(page.locator(".search-result mark")).to_have_text("needle")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 360
    expect(page.locator(".search-filters select[name=room]")).to_be_visible()
