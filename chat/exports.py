"""Exports (SPEC §6.5): a room's whole history as JSON lines or one self-contained HTML
page, and a zip of a user's own data. Reads only.

A room export is an async generator that reads CHUNK messages at a time in `seq` order
(keyset: `seq > last`), so memory stays flat whatever the room's size, under ASGI too
(a synchronous iterator would be read whole by Django before the first byte goes out).
Each line is the message object of the history API, plus `versions` (every earlier body,
the original first) for edited messages. Deleted messages are left out as in history;
recalled ones are placeholders.
"""

import json
import tempfile
import zipfile
from collections.abc import AsyncIterator, Callable

from asgiref.sync import sync_to_async
from django.db.models import Prefetch
from django.utils import timezone
from django.utils.html import escape
from django.utils.translation import get_language, gettext

from chat import selectors
from chat.models import Membership, Message, MessageVersion, Room
from chat.serializers import message_to_dict, user_to_dict

CHUNK = 500


def _chunk(queryset, after_id_or_seq: int, key: str) -> list[Message]:
    versions = MessageVersion.objects.only("message_id", "body", "edited_at").order_by("id")
    return list(
        selectors.with_details(queryset.filter(**{f"{key}__gt": after_id_or_seq}))
        .prefetch_related(Prefetch("versions", queryset=versions, to_attr="version_list"))
        .order_by(key)[:CHUNK]
    )


def export_object(message: Message, *, room_slug: str | None = None) -> dict:
    data = message_to_dict(message, room_slug=room_slug)
    versions = getattr(message, "version_list", None)
    if versions and not (message.recalled or message.deleted):
        data["versions"] = [{"body": v.body, "edited_at": v.edited_at.isoformat()} for v in versions]
    return data


def _line(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"


async def _messages(queryset, key: str) -> AsyncIterator[list[Message]]:
    after = 0
    while True:
        rows = await sync_to_async(_chunk)(queryset, after, key)
        if not rows:
            return
        yield rows
        after = getattr(rows[-1], key)


def _room_messages(room: Room):
    return Message.objects.filter(room_id=room.id, deleted=False)


async def room_jsonl(room: Room) -> AsyncIterator[bytes]:
    async for rows in _messages(_room_messages(room), "seq"):
        yield "".join(_line(export_object(m, room_slug=room.slug)) for m in rows).encode()


_STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei",sans-serif;max-width:760px;
margin:0 auto;padding:1rem;color:#1b1f24;background:#fff}
header{border-bottom:1px solid #d0d7de;margin-bottom:1rem}h1{font-size:1.4rem;margin:.2rem 0}
.meta{color:#57606a;font-size:.85rem}article{padding:.5rem 0;border-bottom:1px solid #eef1f4}
.who{font-weight:600}.when,.edited{color:#57606a;font-size:.8rem;margin-left:.4rem}
.system{color:#57606a;font-style:italic}.recalled{color:#57606a;font-style:italic}
blockquote.reply{margin:.2rem 0;padding:.1rem .6rem;border-left:3px solid #d0d7de;color:#57606a;font-size:.9rem}
.body p{margin:.2rem 0}.body pre{background:#f6f8fa;padding:.5rem;overflow:auto}
.body code{background:#f6f8fa;padding:0 .2rem}.reactions span{display:inline-block;border:1px solid #d0d7de;
border-radius:1rem;padding:0 .5rem;margin:.2rem .2rem 0 0;font-size:.85rem}
details{color:#57606a;font-size:.85rem}a{color:#0969da}
@media (prefers-color-scheme:dark){body{background:#0d1117;color:#e6edf3}article{border-color:#21262d}
.body pre,.body code{background:#161b22}a{color:#58a6ff}}
"""


def html_labels() -> dict[str, str]:
    """The page's words in the language active now (the request's): read in the view,
    since the stream runs after the view returned."""
    return {
        "edited": gettext("edited"),
        "recalled": gettext("Message recalled"),
        "gone": gettext("Message deleted"),
        "versions": gettext("Versions of this message"),
        "exported": gettext("Exported"),
        "deleted_user": gettext("deleted user"),
        "lang": get_language() or "en",
    }


def _name(sender: dict | None, labels: dict) -> str:
    if not sender:
        return ""
    return escape(labels["deleted_user"] if sender.get("deleted") else sender["display_name"])


def _html_message(data: dict, absolute: Callable[[str], str], labels: dict) -> str:
    who = _name(data["sender"], labels)
    parts = [f'<article id="m{data["seq"]}" data-seq="{data["seq"]}">']
    if data["kind"] == "system":
        parts.append(f'<div class="system">{escape(data["body"])} <span class="when">{escape(data["created_at"])}</span></div>')
        return "".join(parts) + "</article>\n"
    parts.append(f'<div><span class="who">{who}</span><time class="when">{escape(data["created_at"])}</time>')
    if data["edited_at"]:
        parts.append(f'<span class="edited">({escape(labels["edited"])} {escape(data["edited_at"])})</span>')
    parts.append("</div>")
    if data["recalled"]:
        parts.append(f'<div class="recalled">({escape(labels["recalled"])})</div>')
        return "".join(parts) + "</article>\n"
    reply = data["reply_to"]
    if reply:
        quoted = escape(reply["excerpt"]) if reply["excerpt"] is not None else f"({escape(labels['gone'])})"
        name = _name(reply["sender"], labels)
        parts.append(f'<blockquote class="reply"><a href="#m{reply["seq"]}">↩ {name}</a>: {quoted}</blockquote>')
    parts.append(f'<div class="body">{data["html"]}</div>')  # sanitized when it was stored
    if data["image"]:
        url = escape(absolute(data["image"]))
        parts.append(f'<div><a href="{url}" rel="noopener noreferrer nofollow">{url}</a></div>')
    if data["reactions"]:
        chips = "".join(
            f'<span title="{escape(", ".join(r["users"]))}">{escape(r["emoji"])} {r["count"]}</span>'
            for r in data["reactions"]
        )
        parts.append(f'<div class="reactions">{chips}</div>')
    if data.get("versions"):
        earlier = "".join(f"<li><time>{escape(v['edited_at'])}</time>: {escape(v['body'])}</li>" for v in data["versions"])
        parts.append(f"<details><summary>{escape(labels['versions'])}</summary><ol>{earlier}</ol></details>")
    return "".join(parts) + "</article>\n"


async def room_html(room: Room, *, absolute: Callable[[str], str], labels: dict) -> AsyncIterator[bytes]:
    """One page that reads offline: styles inline, no script, nothing loaded from anywhere;
    images and files are links."""
    now = timezone.now().isoformat(timespec="seconds")
    yield (
        f'<!DOCTYPE html>\n<html lang="{escape(labels["lang"])}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(room.name)} — Parley export</title><style>{_STYLE}</style></head><body>\n"
        f'<header><h1>{escape(room.name)}</h1><div class="meta">#{escape(room.slug)} · {escape(labels["exported"])} {now}</div></header>\n'
        "<main>\n"
    ).encode()
    async for rows in _messages(_room_messages(room), "seq"):
        yield "".join(_html_message(export_object(m, room_slug=room.slug), absolute, labels) for m in rows).encode()
    yield b"</main></body></html>\n"


# A user's own data --------------------------------------------------------------------------


def user_zip(user):
    """profile.json, memberships.json, messages.jsonl (every message of theirs that is not
    deleted, in every room) and the avatar, zipped into a temporary file (memory stays
    flat: messages go in CHUNK at a time). The caller streams and closes it."""
    out = tempfile.TemporaryFile()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        profile = getattr(user, "profile", None)
        archive.writestr(
            "profile.json",
            json.dumps(
                {**user_to_dict(user), "email": user.email, "date_joined": user.date_joined.isoformat()},
                ensure_ascii=False, indent=2,
            ),
        )
        memberships = [
            {"room": m.room.slug, "name": m.room.name, "kind": m.room.kind, "role": m.role,
             "joined_at": m.joined_at.isoformat(), "last_read_seq": m.last_read_seq}
            for m in Membership.objects.filter(user=user).select_related("room").order_by("room__slug")
        ]
        archive.writestr("memberships.json", json.dumps(memberships, ensure_ascii=False, indent=2))
        with archive.open("messages.jsonl", "w") as lines:
            after = 0
            queryset = Message.objects.filter(sender=user, deleted=False).select_related("room")
            while rows := _chunk(queryset, after, "id"):
                lines.write("".join(_line(export_object(m)) for m in rows).encode())
                after = rows[-1].id
        if profile is not None and profile.avatar:
            try:
                with profile.avatar.open("rb") as avatar:
                    archive.writestr("avatar." + profile.avatar.name.rsplit(".", 1)[-1], avatar.read())
            except OSError:
                pass  # the file is gone from storage: the rest of the export still stands
    out.seek(0)
    return out


async def file_chunks(handle, size: int = 65_536) -> AsyncIterator[bytes]:
    try:
        while chunk := await sync_to_async(handle.read)(size):
            yield chunk
    finally:
        handle.close()
