"""The one shape of users, rooms and messages that REST responses and socket frames share."""

from chat.models import Message, Room


def user_to_dict(user) -> dict | None:
    if user is None:
        return None
    profile = getattr(user, "profile", None)
    avatar = profile.avatar.url if profile is not None and profile.avatar else None
    return {
        "username": user.username,
        "display_name": (profile.display_name if profile is not None else "") or user.username,
        "avatar": avatar,
    }


def room_to_dict(room: Room, *, online: list[str] | None = None) -> dict:
    data = {
        "slug": room.slug,
        "name": room.name,
        "kind": room.kind,
        "rev": room.rev,
        "last_seq": room.last_seq,
    }
    if online is not None:
        data["online"] = online
    return data


def message_to_dict(message: Message, *, room_slug: str | None = None) -> dict:
    """A message as clients see it: recalled ones without content, deleted ones as tombstones.

    `message`, `user` and `timestamp` repeat body, sender and created_at for the simplest
    existing clients (SPEC §3).
    """
    slug = room_slug or message.room.slug
    sender = user_to_dict(message.sender)
    created_at = message.created_at.isoformat()
    hidden = message.recalled or message.deleted
    body = "" if hidden else message.body
    return {
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
        "message": body,
        "user": sender["username"] if sender else None,
        "timestamp": created_at,
    }
