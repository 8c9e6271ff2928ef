"""Messages that carry a file (kind `file`, SPEC §6.4).

The bytes are stored as they came, under an unguessable name with no extension
(chat.models.message_file_path), and only ever served as a download to readers of the
room (chat/media.py): nothing the sender chose reaches a path, a Content-Type the browser
acts on, or an inline rendering. The name shown is the sender's, cleaned (clean_file_name).
"""

import re
import unicodedata

from django.conf import settings
from django.db.models import Sum

from chat import selectors
from chat.models import Message, Room, message_file_path
from chat.services import messages
from chat.services.changes import clean_client_id
from chat.services.messages import sent_before, take_send_allowance
from core.errors import InvalidInput, NotFound, QuotaExceeded, TooLarge
from core.validation import clean_text, require_user

NAME_MAX = 200
_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")


def clean_file_name(name) -> str:
    """The last path part of `name` (either slash), without control or format characters,
    quotes or leading dots, at most NAME_MAX characters (keeping the extension); "file"
    when nothing is left."""
    name = str(name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        " " if unicodedata.category(c)[0] in ("C", "Z") else c for c in unicodedata.normalize("NFC", name)
    )
    name = re.sub(r'["<>:|?*]', "_", name)
    name = re.sub(r"\s+", " ", name).strip().lstrip(".").strip()
    if len(name) > NAME_MAX:
        stem, dot, extension = name.rpartition(".")
        name = f"{stem[: NAME_MAX - len(extension) - 1]}.{extension}" if dot and len(extension) <= 16 else name[:NAME_MAX]
    return name or "file"


def clean_file_type(content_type) -> str:
    """The declared type as a plain `type/subtype` (shown, never used to serve), else
    application/octet-stream."""
    value = str(content_type or "").split(";", 1)[0].strip().lower()
    return value if _TYPE.fullmatch(value) else "application/octet-stream"


def user_file_bytes(user) -> int:
    """What the user's live files hold in all (deleted and recalled ones are gone)."""
    total = Message.objects.filter(sender=user, kind=Message.Kind.FILE).exclude(file="").exclude(file=None)
    return total.aggregate(total=Sum("file_size"))["total"] or 0


def message_send_file(*, sender, room: Room, upload, body="", client_id=None, reply_to=None) -> tuple[Message, bool]:
    """Send an uploaded file (kind `file`, optional caption `body`) like message_send.

    Raises TooLarge past PARLEY_FILE_MAX_BYTES, QuotaExceeded (413 `quota_exceeded`) when
    it would take the sender's live files past PARLEY_USER_QUOTA_BYTES, and whatever
    message_send raises; on any refusal neither a row nor a file is left behind.
    """
    require_user(sender)
    client_id = clean_client_id(client_id)
    body = clean_text(body, field="body", max_length=settings.PARLEY_MAX_BODY, required=False, too_long=TooLarge)
    if upload is None or not hasattr(upload, "chunks"):
        raise InvalidInput("file must be a file.")
    if not selectors.room_may_read(user=sender, room=room):
        raise NotFound("No such room.")
    if client_id:
        existing = sent_before(sender, client_id)
        if existing is not None:
            return existing, False
    messages.may_send_here(sender=sender, room=room)
    messages.reply_target(room=room, reply_to=reply_to)
    size = upload.size
    if size > settings.PARLEY_FILE_MAX_BYTES:
        raise TooLarge(f"Files are limited to {settings.PARLEY_FILE_MAX_BYTES} bytes.")
    if user_file_bytes(sender) + size > settings.PARLEY_USER_QUOTA_BYTES:
        raise QuotaExceeded(
            f"Your files would take more than your {settings.PARLEY_USER_QUOTA_BYTES} bytes: delete some first."
        )
    existing = take_send_allowance(sender, client_id)
    if existing is not None:
        return existing, False
    storage = Message._meta.get_field("file").storage
    name = storage.save(message_file_path(None, ""), upload)
    attachment = {
        "file": name,
        "file_name": clean_file_name(getattr(upload, "name", "")),
        "file_size": size,
        "file_type": clean_file_type(getattr(upload, "content_type", "")),
    }
    try:
        message, created = messages.message_send(
            sender=sender, room=room, body=body, client_id=client_id, kind=Message.Kind.FILE,
            allowance_taken=True, reply_to=reply_to, attachment=attachment,
        )
    except BaseException:
        storage.delete(name)
        raise
    if not created:
        storage.delete(name)
    return message, created
