"""The one shape of users, rooms and messages that REST responses and socket frames share."""

import re

from accounts.selectors import GUEST_PREFIX
from chat.models import Message, Room

EXCERPT_CHARS = 100
REACTION_USERS_SHOWN = 50


def user_to_dict(user) -> dict | None:
    if user is None:
        return None
    profile = getattr(user, "profile", None)
    avatar = profile.avatar.url if profile is not None and profile.avatar else None
    data = {
        "username": user.username,
        "display_name": (profile.display_name if profile is not None else "") or user.username,
        "avatar": avatar,
    }
    if user.username.startswith(GUEST_PREFIX):
        data["guest"] = True  # a visitor of the website widget (SPEC §6.6)
    return data


def room_to_dict(room: Room, *, online: list[str] | None = None) -> dict:
    data = {
        "slug": room.slug,
        "name": room.name,
        "topic": room.topic,
        "kind": room.kind,
        "rev": room.rev,
        "last_seq": room.last_seq,
    }
    if online is not None:
        data["online"] = online
    return data


_SYSTEM_PATTERNS = (
    (re.compile(r"^(?P<user>\S+) joined$"), "joined"),
    (re.compile(r"^(?P<user>\S+) left$"), "left"),
    (re.compile(r"^(?P<by>\S+) added (?P<user>\S+)$"), "added"),
    (re.compile(r"^(?P<user>\S+) was removed$"), "removed"),
    (re.compile(r"^(?P<by>\S+) closed the conversation$"), "closed"),  # a project conversation
    # Moderation (chat/services/moderation.py): roles and bans.
    (re.compile(r"^(?P<by>\S+) made (?P<user>\S+) an admin$"), "admin"),
    (re.compile(r"^(?P<by>\S+) made (?P<user>\S+) a member$"), "member"),
    (re.compile(r"^(?P<user>\S+) was banned$"), "banned"),
    (re.compile(r"^(?P<by>\S+) set the topic to “(?P<topic>.*)”$", re.DOTALL), "topic"),
    (re.compile(r"^(?P<by>\S+) cleared the topic$"), "topic"),
    (
        re.compile(r"^(?P<by>\S+) (?:renamed the room to “(?P<name>.*)”)?(?: and )?(?:made the room (?P<kind>public|private))?$"),
        "changed",
    ),
)


def system_event(body: str) -> dict | None:
    """What a system message says, as data the client words in the reader's language:
    {"event": joined|left|added|removed|changed|topic|closed|admin|member|banned, "user"/"by"/"name"/"kind"/"topic": …}. The
    services write these bodies in English (chat/services/rooms.py, messages.py); the body
    stays the English fallback for clients that do not know the event."""
    for pattern, event in _SYSTEM_PATTERNS:
        match = pattern.match(body)
        if match and any(match.groupdict().values()):
            if event == "changed" and not (match["name"] is not None or match["kind"]):
                continue
            return {"event": event, **{k: v for k, v in match.groupdict().items() if v is not None}}
    return None


def message_to_dict(message: Message, *, room_slug: str | None = None) -> dict:
    """A message as clients see it: recalled ones without content, deleted ones as tombstones.

    `message`, `user` and `timestamp` repeat body, sender and created_at for the simplest
    existing clients (SPEC §3). Lists of messages come from chat.selectors with the
    original of each reply and the reactions already loaded (no query per message).
    """
    slug = room_slug or message.room.slug
    sender = sender_to_dict(message)
    created_at = message.created_at.isoformat()
    hidden = message.recalled or message.deleted
    body = "" if hidden else message.body
    data = {
        "id": message.id,
        "room": slug,
        "seq": message.seq,
        "rev": message.rev,
        "sender": sender,
        "kind": message.kind,
        "body": body,
        "image": message.image.url if message.image and not hidden else None,
        "created_at": created_at,
        "recalled": message.recalled,
        "deleted": message.deleted,
        "client_id": message.client_id or None,
        "html": "" if hidden else message.html,
        "edited_at": message.edited_at.isoformat() if message.edited_at and not hidden else None,
        "reply_to": None if hidden else reply_to_dict(message),
        "reactions": [] if hidden else message_reactions(message),
        "mentions": [] if hidden else list(message.mentions),
        "mentions_all": False if hidden else message.mentions_all,
        "pinned": message.pinned_at is not None,
        "file": file_to_dict(message) if not hidden else None,
        "message": body,
        "user": sender["username"] if sender else None,
        "timestamp": created_at,
    }
    if message.kind == Message.Kind.SYSTEM:
        data["system"] = system_event(message.body)
    return data


DELETED_USER = "deleted user"


def sender_to_dict(message: Message) -> dict | None:
    """Who a message is from: the sender's profile; a bot's name and icon (`bot: true`,
    `icon_url` never fetched by the server) for webhook messages; "deleted user" once the
    sender deleted their account; None for system messages."""
    sender = user_to_dict(message.sender)
    if message.sender_name:
        return {
            "username": sender["username"] if sender else None,
            "display_name": message.sender_name,
            "avatar": None,
            "bot": True,
            "icon_url": message.sender_icon or None,
        }
    if sender is None and message.kind != Message.Kind.SYSTEM:
        return {"username": None, "display_name": DELETED_USER, "avatar": None, "deleted": True}
    return sender


def file_to_dict(message: Message) -> dict | None:
    """A `file` message's attachment: the name, size and type it was sent with, and where
    to download it (chat/media.py serves it to readers of the room only)."""
    if not message.file:
        return None
    return {"name": message.file_name, "size": message.file_size, "type": message.file_type, "url": message.file.url}


def reply_to_dict(message: Message) -> dict | None:
    """The message `message` answers, as it is now: its excerpt goes once it is recalled
    or deleted (and the whole quote once retention drops the original's row)."""
    if message.reply_to_id is None:
        return None
    original = message.reply_to
    gone = original.recalled or original.deleted
    return {
        "id": original.id,
        "seq": original.seq,
        "sender": sender_to_dict(original),
        "excerpt": None if gone else original.body[:EXCERPT_CHARS],
        "recalled": original.recalled,
        "deleted": original.deleted,
    }


def message_reactions(message: Message) -> list[dict]:
    """`[{emoji, count, users}]`, each emoji in the order it was first used and `users`
    (the first REACTION_USERS_SHOWN usernames) in the order they reacted.

    Reads `message.reaction_list` when the caller loaded it (chat.selectors does for
    every list; the services do for the message they change), else one query.
    """
    rows = getattr(message, "reaction_list", None)
    if rows is None:
        rows = list(message.reactions.select_related("user").order_by("id"))
    summary: dict[str, dict] = {}
    for reaction in rows:
        entry = summary.setdefault(reaction.emoji, {"emoji": reaction.emoji, "count": 0, "users": []})
        entry["count"] += 1
        if len(entry["users"]) < REACTION_USERS_SHOWN:
            entry["users"].append(reaction.user.username)
    return list(summary.values())
