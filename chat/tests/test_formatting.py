"""chat/formatting.py: the Markdown subset of SPEC §6.1, and that nothing a sender types
comes out executable.

Each XSS payload's output is parsed with html.parser and checked against the allow-list
(tags, attributes, link schemes, rel), and the part that must not be interpreted is
checked to be there as visible text: raw HTML and refused links are shown, never dropped.
"""

import time
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat import formatting
from chat.formatting import render

pytestmark = pytest.mark.dbless

ALLOWED = {
    "p": set(), "br": set(), "strong": set(), "em": set(), "s": set(), "code": {"class"}, "pre": set(),
    "blockquote": set(), "ul": set(), "ol": {"start"}, "li": set(), "a": {"href", "title", "rel"},
    "span": {"class", "data-username"},
}
REL = "noopener noreferrer nofollow"


class Page(HTMLParser):
    """The tags, attributes and visible text of rendered HTML."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text = ""
        self.comments: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.text += data

    def handle_comment(self, data):
        self.comments.append(data)

    def handle_decl(self, decl):
        self.comments.append(decl)

    def handle_pi(self, data):
        self.comments.append(data)

    def links(self) -> list[str]:
        return [attrs.get("href") for tag, attrs in self.tags if tag == "a"]


def assert_inert(html: str) -> Page:
    page = Page(html)
    assert not page.comments, html
    for tag, attrs in page.tags:
        assert tag in ALLOWED, f"<{tag}> in {html!r}"
        for name, value in attrs.items():
            assert name in ALLOWED[tag], f"{name}= on <{tag}> in {html!r}"
            assert not name.startswith("on") and name != "style"
            assert "javascript:" not in (value or "").lower().replace("\t", "").replace("\n", "")
        if tag == "a":
            href = attrs.get("href") or ""
            assert urlsplit(href).scheme.lower() in {"http", "https", "mailto"}, html
            assert href.split(":", 1)[0].lower() in {"http", "https", "mailto"}, html
            assert not any(c.isspace() or ord(c) < 32 for c in href), html
            assert attrs.get("rel") == REL, html
        if tag == "span":
            assert attrs.get("class") == "mention"
        if tag == "code" and "class" in attrs:
            assert attrs["class"].startswith("language-")
    return page


# (what the sender typed, what must be visible as text: the payload itself when None)
XSS = [
    ("<script>alert(1)</script>", None),
    ("<img src=x onerror=alert(1)>", None),
    ("<svg onload=alert(1)>", None),
    ("<svg/onload=alert(1)>", None),
    ("<svg><script>alert(1)</script></svg>", None),
    ('<iframe src="javascript:alert(1)"></iframe>', None),
    ('<a href="javascript:alert(1)">x</a>', None),
    ("<a href=https://ok.example>x</a>", None),
    ('<div style="background:url(javascript:alert(1))">x</div>', None),
    ("<style>body{display:none}</style>", None),
    ("<!-- <script>alert(1)</script> -->", None),
    ("<!--><script>alert(1)</script>-->", None),
    ('<math><mi xlink:href="javascript:alert(1)">x</mi></math>', None),
    ('<object data="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">', None),
    ("<body onload=alert(1)>", None),
    ("<input autofocus onfocus=alert(1)>", None),
    ("<details open ontoggle=alert(1)>", None),
    ("<scr<script>ipt>alert(1)</script>", None),
    ("[x](javascript:alert(1))", None),
    ("[x](JAVASCRIPT:alert(1))", None),
    ("[x](JaVaScRiPt:alert(1))", None),
    ("[x](javascript&#58;alert(1))", None),
    ("[x](javascript&#x3A;alert(1))", None),
    ("[x](&#106;avascript:alert(1))", None),
    ("[x](java\tscript:alert(1))", None),
    ("[x](<javascript:alert(1)>)", None),
    ("[x]( javascript:alert(1) )", None),
    ('[x](javascript:alert(1) "title")', None),
    ("[x](javascript:alert(1)", None),
    ("[x](vbscript:msgbox(1))", None),
    ("[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)", None),
    ("[x](file:///etc/passwd)", None),
    ("[x](//evil.example/x)", None),
    ("[x](/relative)", None),
    ("[x]()", None),
    ("[x](<>)", None),
    ("[**x**](javascript:alert(1))", "](javascript:alert(1))"),
    ("[a](https://ok.example)[b](javascript:alert(1))", "[b](javascript:alert(1))"),
    ("[@bob](javascript:alert(1))", "](javascript:alert(1))"),
    ("<javascript:alert(1)>", None),
    ("<JavaScript:alert(1)>", None),
    ("<vbscript:msgbox(1)>", None),
    ("<data:text/html,<script>alert(1)</script>>", None),
    ("![x](javascript:alert(1))", None),
    ("![x](https://evil.example/x.png)", "!x"),
    ("[x]: javascript:alert(1)\n\n[x]", "[x]: javascript:alert(1)"),
    ("`<script>alert(1)</script>`", "<script>alert(1)</script>"),
    ("```html\n<script>alert(1)</script>\n```", "<script>alert(1)</script>"),
    ('```"><img src=x onerror=alert(1)>\ncode\n```', "code"),
    ("> <script>alert(1)</script>", "<script>alert(1)</script>"),
    ("- <img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),
    ("~~<script>alert(1)</script>~~", "<script>alert(1)</script>"),
    ("**<img src=x onerror=alert(1)>**", "<img src=x onerror=alert(1)>"),
    ("@<script>alert(1)</script>", None),
    ("&lt;script&gt;alert(1)&lt;/script&gt;", None),
    ('http://example.com/"onmouseover="alert(1)', '"onmouseover="alert(1)'),
    ("https://example.com/<script>alert(1)</script>", "<script>alert(1)</script>"),
    ('<https://ok.example/"onclick=alert(1)>', 'https://ok.example/"onclick=alert(1)'),
    ('[x](https://ok.example "onmouseover=alert(1)")', "x"),
    ('[x](https://example.com/" onclick="alert(1))', None),
    ("[x](mailto:javascript:alert(1))", None),
    ("\x00<script>alert(1)</script>", "<script>alert(1)</script>"),
    ("[x](\x01javascript:alert(1))", "javascript:alert(1)"),
]


@pytest.mark.parametrize(("payload", "visible"), XSS, ids=[p for p, _ in XSS])
def test_xss_payload_comes_out_inert_and_visible(payload, visible):
    page = assert_inert(render(payload))
    shown = payload if visible is None else visible
    assert shown in page.text


def test_the_corpus_is_big_enough():
    assert len(XSS) >= 40


def test_refused_link_is_wholly_literal_not_half_rendered():
    html = render("see [the docs](javascript:alert(document.cookie)) now")
    page = assert_inert(html)
    assert page.links() == []
    assert page.text == "see [the docs](javascript:alert(document.cookie)) now"


def test_raw_html_shows_as_typed():
    assert render("<b>bold?</b> & <i>x</i>") == "<p>&lt;b&gt;bold?&lt;/b&gt; &amp; &lt;i&gt;x&lt;/i&gt;</p>"


# The subset ------------------------------------------------------------------------------


def test_inline_formatting():
    assert render("**b** *i* _i_ ~~s~~ `c`") == (
        "<p><strong>b</strong> <em>i</em> <em>i</em> <s>s</s> <code>c</code></p>"
    )


def test_fenced_code_keeps_its_language_and_escapes_its_content():
    assert render("```python\nif a < b:\n    pass\n```") == (
        '<pre><code class="language-python">if a &lt; b:\n    pass\n</code></pre>'
    )


def test_block_quote_and_lists():
    page = assert_inert(render("> said\n\n- one\n- two\n\n3. three\n4. four"))
    assert [tag for tag, _ in page.tags] == ["blockquote", "p", "ul", "li", "li", "ol", "li", "li"]
    assert ("ol", {"start": "3"}) in page.tags


def test_line_breaks_are_kept():
    assert render("one\ntwo") == "<p>one<br>\ntwo</p>"


def test_links_carry_rel_and_only_allowed_schemes():
    assert render("[docs](https://example.com/a?b=1)") == (
        f'<p><a href="https://example.com/a?b=1" rel="{REL}">docs</a></p>'
    )
    assert render("<mailto:ann@example.com>") == f'<p><a href="mailto:ann@example.com" rel="{REL}">mailto:ann@example.com</a></p>'
    assert render("[ftp](ftp://example.com)") == "<p>[ftp](ftp://example.com)</p>"


def test_what_is_not_in_the_subset_stays_text():
    """Headings, rules, setext headings, tables, images, indented code, entities."""
    for body in ("# title", "---", "title\n===", "| a | b |\n|---|---|\n| 1 | 2 |", "    indented", "&copy;"):
        page = assert_inert(render(body))
        assert {tag for tag, _ in page.tags} <= {"p", "br"}, body
        assert page.text.replace("\n", "") == body.replace("\n", "").strip()


def test_mentions_are_marked_but_not_emails():
    html = render("@mia and (@oscar.) but not ann@example.com")
    page = assert_inert(html)
    assert [attrs["data-username"] for tag, attrs in page.tags if tag == "span"] == ["mia", "oscar"]
    assert "ann@example.com" in page.text
    assert '<span class="mention" data-username="mia">@mia</span>' in html


def test_no_mention_inside_code():
    assert render("`@mia`") == "<p><code>@mia</code></p>"


def test_empty_body_renders_empty():
    assert render("") == ""


# Bare URLs -------------------------------------------------------------------------------


def _links(body: str) -> list[str]:
    return assert_inert(render(body)).links()


def test_cjk_punctuation_ends_a_bare_url():
    html = render("看https://example.com/a，下一句")
    assert html == f'<p>看<a href="https://example.com/a" rel="{REL}">https://example.com/a</a>，下一句</p>'


@pytest.mark.parametrize("stop", list("，。！？、）」；：“”…《》【】"))
def test_each_cjk_punctuation_mark_ends_a_url(stop):
    assert _links(f"链接https://example.com/path{stop}后面") == ["https://example.com/path"]


def test_bare_url_edges():
    assert _links("see https://example.com/a_b_c. next") == ["https://example.com/a_b_c"]
    assert _links("(https://en.wikipedia.org/wiki/Foo_(bar))") == ["https://en.wikipedia.org/wiki/Foo_(bar)"]
    assert _links("**https://example.com/x**") == ["https://example.com/x"]
    assert _links("HTTP://EXAMPLE.COM/") == ["HTTP://EXAMPLE.COM/"]
    assert _links("https://example.com/`code`") == ["https://example.com/"]
    assert _links("http://") == []
    assert _links("xhttps://example.com") == []
    assert _links("ftp://example.com") == []
    assert _links("[https://a.example](https://b.example)") == ["https://b.example"]


def test_cjk_letters_stay_in_a_url():
    links = _links("https://zh.wikipedia.org/wiki/中文 and more")
    assert links == ["https://zh.wikipedia.org/wiki/%E4%B8%AD%E6%96%87"]


# Cost ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ["[" * 4000, "*" * 4000, "> " * 2000, "a_" * 2000, "`" * 4000, "<" * 4000, "[a](" * 1000, "x\n" * 2000,
     "https://a.co/" * 300, "@" * 4000, "**_" * 1300, "[x](https://a.b/" + "(" * 3900],
    ids=lambda body: repr(body[:8]),
)
def test_pathological_bodies_render_quickly(body):
    started = time.process_time()
    assert_inert(render(body))
    assert time.process_time() - started < 2.0


# The shortcut for plain lines (formatting._PLAIN_LINE) must say exactly what the full path
# says. Half the bodies are lines the shortcut may take; the alphabet of the others mixes
# in what makes a line formatting (and what HTML escapes).
_PLAIN = "aZé中ß9 0,.?!'\"():;%$#=+/|^{}~-—…，。！？、：；「」（）"
_ANY = _PLAIN + "\n\t*_`[]<>&@\\\u00a0"
_BODIES = st.one_of(
    st.builds(str.__add__, st.sampled_from("aZé中"), st.text(alphabet=_PLAIN, max_size=30)),
    st.text(alphabet=_ANY, min_size=1, max_size=30),
)


@settings(max_examples=2000, deadline=None)
@given(_BODIES)
def test_the_plain_line_shortcut_renders_what_markdown_would(body):
    assert render(body) == formatting._render_markdown(body)


@pytest.mark.parametrize(
    "body",
    ["ok", "Ordering is open until 6pm, see you there!", "好的，明天见。", "PB~0~3~1712.5~xxxx", 'He said "hi" (twice)'],
)
def test_everyday_lines_take_the_shortcut_and_render_as_themselves(body):
    assert formatting._PLAIN_LINE.fullmatch(body)
    assert render(body) == formatting._render_markdown(body) == f"<p>{body}</p>".replace("&", "&amp;")
