"""Message bodies as HTML (SPEC §6.1): a small Markdown subset, then an allow-list sanitizer.

`body` stays what the sender typed; `render(body)` is stored beside it as `html` when the
message is sent or edited. Two walls, each enough on its own:

1. markdown-it with raw HTML off and only the subset's rules on (bold, italic,
   strikethrough, inline code, fenced code, block quotes, lists, links, bare URLs,
   `@mentions`, line breaks). Raw HTML comes out as escaped text. A link whose target
   is not http(s)/mailto is not a link at all: its whole source (`[x](javascript:…)`)
   stays visible as literal text, never half-rendered. No headings, rules, tables,
   images, indented code, reference definitions or entities: in chat those are text
   people typed, and showing it is better than silently turning it into something else.
2. nh3 (ammonia) with the few tags and attributes the subset can produce, http(s)/mailto
   URLs only, and `rel="noopener noreferrer nofollow"` on every link.

Bare URLs: `http(s)://` and what follows, up to whitespace, `<>"` and backtick, or CJK
punctuation (`，。！？、）」` …: a Chinese sentence goes on right after a URL without a
space); trailing `.,:;!?'"*_~` and unbalanced `)`/`]` are left out as in GFM. CJK
letters stay part of the URL (`https://zh.wikipedia.org/wiki/中文`).

`@word` is marked as `<span class="mention" data-username="word">`; whether `word` is
someone who may read the room is decided where mentions notify (issue 14), not here.
"""

import re

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_inline.link import link as markdown_link
from markdown_it.rules_inline.state_inline import StateInline

_ALLOWED_HREF = re.compile(r"(?:https?://[^\s/?#]|mailto:[^\s@:/?]+@[^\s@:/?])", re.IGNORECASE)
# What a bare URL may hold after its "://" (the trailing punctuation is trimmed after).
_URL_TAIL = re.compile(
    r"://[^\s<>\"`\u2010-\u2027\u3000-\u303f\ufe10-\ufe1f\ufe30-\ufe4f\uff00-\uffef]+"
)
_SCHEME_BEFORE = re.compile(r"(?:^|[^A-Za-z0-9+.-])(https?)$", re.IGNORECASE)
_TRAILING = ".,:;!?'\"*_~"
_MENTION = re.compile(r"@([\w.+-]*\w)")
_NOT_BEFORE_MENTION = re.compile(r"[\w.+\-@/]")
_CODE_CLASS = re.compile(r"language-[\w+#.-]{1,40}")
# One line that starts with a letter and holds only letters, digits, spaces and
# punctuation that no rule of the subset reacts to (nor the HTML escaping: no `&<>`),
# not ending in a space. Most chat messages are such a line, and each renders as itself
# in a paragraph: render() skips markdown-it and nh3 for it (two thirds of a plain
# send's rendering). `~` alone and `:` are text; `~~` and `://` are not (checked apart).
# test_formatting checks the shortcut against the full path.
_PLAIN_LINE = re.compile(
    r"[^\W\d_](?:[^\W_]|[ ,.?!'\"():;%$#=+/|^{}~\-]|[\u2014\u2026\u3001\u3002\u300c-\u300f\uff01\uff08\uff09\uff0c\uff1a\uff1b\uff1f])*"
    r"(?<! )"
)

LINK_REL = "noopener noreferrer nofollow"
TAGS = {"p", "br", "strong", "em", "s", "code", "pre", "blockquote", "ul", "ol", "li", "a", "span"}
ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "code": {"class"}, "span": {"class", "data-username"}}
URL_SCHEMES = {"http", "https", "mailto"}


def _valid_link(url: str) -> bool:
    """Only absolute http(s) targets with a host, and mailto with an address (after
    markdown-it decoded entities and escapes and percent-encoded the rest, so
    `java&#09;script:` is `java%09script:`)."""
    return bool(_ALLOWED_HREF.match(url))


def _link(state: StateInline, silent: bool) -> bool:
    """markdown-it's link rule, except that a link it accepts without a usable target
    (`[x]()`, `[x](<>)`) is put back as the literal text the sender typed."""
    start, tokens, metas = state.pos, len(state.tokens), len(state.tokens_meta)
    if not markdown_link(state, silent):
        return False
    if silent:
        return True
    opened = next(i for i in range(tokens, len(state.tokens)) if state.tokens[i].type == "link_open")
    if _valid_link(str(state.tokens[opened].attrs.get("href", ""))):
        return True
    # The label's tokens and their delimiter list go; the text before the link stays.
    del state.tokens[opened:]
    del state.tokens_meta[metas:]
    state.append_pending(state.src[start : state.pos])
    return True


def _trim_url(url: str) -> str:
    while url:
        last = url[-1]
        if last in _TRAILING:
            url = url[:-1]
        elif last == ")" and url.count("(") < url.count(")"):
            url = url[:-1]
        elif last == "]" and url.count("[") < url.count("]"):
            url = url[:-1]
        else:
            break
    return url


def _bare_url(state: StateInline, silent: bool) -> bool:
    """`http(s)://…` in running text. Triggered at the ':' (the scheme is already in the
    pending text, as markdown-it's own linkify rule does), so emphasis cannot split it."""
    if state.linkLevel > 0 or state.src[state.pos] != ":":
        return False
    scheme = _SCHEME_BEFORE.search(state.pending)
    if scheme is None:
        return False
    tail = _URL_TAIL.match(state.src, state.pos, state.posMax)
    if tail is None:
        return False
    rest = _trim_url(tail.group())
    url = scheme.group(1) + rest
    href = state.md.normalizeLink(url)
    if len(rest) <= 3 or not _valid_link(href):
        return False
    if not silent:
        state.pending = state.pending[: -len(scheme.group(1))]
        token = state.push("link_open", "a", 1)
        token.attrs = {"href": href}
        token.markup, token.info = "linkify", "auto"
        token = state.push("text", "", 0)
        token.content = state.md.normalizeLinkText(url)
        token = state.push("link_close", "a", -1)
        token.markup, token.info = "linkify", "auto"
    state.pos += len(rest)
    return True


def _mention(state: StateInline, silent: bool) -> bool:
    """`@name` not inside a word (so `ann@example.com` is no mention) or a link label."""
    pos = state.pos
    if state.linkLevel > 0 or state.src[pos] != "@":
        return False
    if pos > 0 and _NOT_BEFORE_MENTION.match(state.src[pos - 1]):
        return False
    match = _MENTION.match(state.src, pos, state.posMax)
    if match is None:
        return False
    if not silent:
        token = state.push("mention_open", "span", 1)
        token.attrs = {"class": "mention", "data-username": match.group(1)}
        token = state.push("text", "", 0)
        token.content = match.group()
        state.push("mention_close", "span", -1)
    state.pos = match.end()
    return True


def _keep_attribute(element: str, attribute: str, value: str) -> str | None:
    if attribute == "class":
        if element == "span":
            return value if value == "mention" else None
        return value if _CODE_CLASS.fullmatch(value) else None
    return value


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False, "breaks": True})
    md.disable(["code", "heading", "hr", "html_block", "lheading", "reference"])
    md.disable(["entity", "html_inline", "image"])
    md.enable("strikethrough")
    md.validateLink = _valid_link
    md.inline.ruler.at("link", _link)
    md.inline.ruler.before("autolink", "bare_url", _bare_url)
    md.inline.ruler.before("autolink", "mention", _mention)
    return md


_md = _parser()


def render(body: str) -> str:
    """The sanitized HTML for a message body ("" for an empty one)."""
    if not body:
        return ""
    if _PLAIN_LINE.fullmatch(body) and "~~" not in body and "://" not in body:
        return f"<p>{body}</p>"
    return _render_markdown(body)


def _render_markdown(body: str) -> str:
    html = _md.render(body)
    return nh3.clean(
        html,
        tags=TAGS,
        attributes=ATTRIBUTES,
        attribute_filter=_keep_attribute,
        url_schemes=URL_SCHEMES,
        link_rel=LINK_REL,
        strip_comments=True,
    ).strip()
