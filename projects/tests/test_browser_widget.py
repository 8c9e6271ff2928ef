"""The website widget in a real browser (SPEC §6.6), across two origins: a shop's page,
served from another port by a plain static server, embeds the snippet; Parley runs under
uvicorn (the server, browser and page fixtures of chat/tests/test_browser.py).

What people do: a visitor of the shop opens the chat button, starts a conversation, sends
a message and a picture; the owner, logged in to Parley in another browser, finds it in
the inbox (marked as a guest), sees it arrive live and answers; the visitor sees the answer
live and, after reloading the shop's page, still has the conversation. A page from a site
the owner did not list gets no widget: the browser refuses the iframe (frame-ancestors).
"""

# ruff: noqa: F811 (the tests take the imported fixtures as arguments, as pytest wants)
import functools
import http.server
import io
import re
import threading

import pytest
from PIL import Image

from chat.tests.test_browser import (  # noqa: F401 (fixtures and the skip marks)
    browser,
    bubble,
    connected,
    expect,
    new_user,
    open_page,
    pytestmark,
    screenshot,
    send,
    server,
)


@pytest.fixture(scope="module")
def shop(tmp_path_factory, server):
    """The owner's own site: a static page with the snippet, on a port of its own. It is
    reached as http://127.0.0.1:<port> (listed by the owner) and http://localhost:<port>
    (another origin, not listed)."""
    folder = tmp_path_factory.mktemp("shop")
    (folder / "index.html").write_text(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Shop</title><style>button{background:red!important;font-size:40px}</style></head>"
        "<body><h1>The shop</h1>"
        f'<script src="{server.base}/widget.js" data-project="shop-widget" async></script></body></html>'
    )
    handler = functools.partial(QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def widget_frame(page):
    return page.frame_locator('[data-parley-widget] iframe[name="parley-widget"]')


def png(tmp_path):
    path = tmp_path / "cake.png"
    buffer = io.BytesIO()
    Image.new("RGB", (120, 80), (200, 120, 40)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path


def test_a_visitor_of_the_owners_site_chats_with_the_owner_live(server, shop, open_page, tmp_path):
    owner = new_user(server, "owner")
    owner.api("POST", "/api/projects/", {"title": "Shop", "slug": "shop-widget"})
    owner.api("PUT", "/api/projects/shop-widget/widget/", {"enabled": True, "origins": [f"http://127.0.0.1:{shop}"]})

    # The owner's inbox is open before the visitor comes: the conversation appears live.
    inbox = open_page(owner)
    inbox.goto("/projects/shop-widget/chats/")
    expect(inbox.locator("#inbox")).to_contain_text("No conversations yet.")
    expect(inbox.locator("body")).to_have_attribute("data-stream", "connected")

    visitor = open_page(viewport={"width": 360, "height": 740})
    visitor.goto(f"http://127.0.0.1:{shop}/")
    button = visitor.get_by_role("button", name="Chat with us")
    expect(button).to_have_attribute("aria-expanded", "false")
    # The shop's CSS (`button{background:red}`) does not reach the widget's button.
    assert button.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(79, 70, 229)"
    button.click()
    expect(visitor.get_by_role("button", name="Close the chat")).to_have_attribute("aria-expanded", "true")
    frame = widget_frame(visitor)
    frame.get_by_label("Your name (optional)").fill("Ann")
    frame.get_by_role("button", name="Start the conversation").click()
    expect(frame.locator("#widget-body")).to_be_visible()
    # At 360 px the panel fits the screen.
    assert visitor.evaluate("document.documentElement.scrollWidth") <= 360

    guest_entry = inbox.locator("#inbox li", has=inbox.locator("[data-guest]"))
    expect(guest_entry).to_contain_text("Ann")  # without a reload, marked as a guest
    expect(guest_entry.get_by_role("button", name="Block")).to_be_visible()
    expect(inbox.locator('#sidebar .room-link[data-kind="project"] .room-name')).to_have_text("Shop · Ann")
    guest_entry.get_by_role("link").click()
    connected(inbox)

    frame.locator("#widget-body").fill("Do you ship to Lyon?")
    frame.locator("#widget-body").press("Enter")
    expect(bubble(inbox, "Do you ship to Lyon?")).to_be_visible()
    frame.locator("#widget-image").set_input_files(str(png(tmp_path)))
    image = inbox.locator("#messages > [data-seq] img.message-image")
    expect(image).to_have_count(1)
    expect(frame.locator("#messages li.mine img")).to_have_count(1)

    send(inbox, "Yes, in two days.")
    expect(frame.locator("#messages li.theirs", has_text="Yes, in two days.")).to_be_visible()
    screenshot(visitor, "widget-phone.png", tmp_path)

    visitor.reload()
    visitor.get_by_role("button", name="Chat with us").click()
    frame = widget_frame(visitor)
    expect(frame.locator("#messages li.mine", has_text="Do you ship to Lyon?")).to_be_visible()
    expect(frame.locator("#messages li.theirs", has_text="Yes, in two days.")).to_be_visible()
    expect(frame.locator("#messages li.mine img")).to_have_attribute("src", re.compile("^blob:"))
    expect(frame.locator("#widget-start")).to_be_hidden()


def test_a_site_not_on_the_list_gets_no_widget(server, shop, open_page):
    # The project of the test above lists http://127.0.0.1:<port> only.
    page = open_page()
    page.goto(f"http://localhost:{shop}/")
    with page.expect_console_message(lambda m: "frame-ancestors" in m.text) as refused:
        page.get_by_role("button", name="Chat with us").click()
    assert f'"frame-ancestors http://127.0.0.1:{shop}"' in refused.value.text
    assert "blocked" in refused.value.text
    expect(widget_frame(page).locator("#widget")).to_have_count(0)
