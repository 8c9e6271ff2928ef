"""Messages that carry a picture: uploaded images and staff presets."""

from django.conf import settings
from django.core.files.base import ContentFile

from chat import selectors
from chat.models import Message, Preset, Room, message_image_path
from chat.services import messages
from chat.services.changes import clean_client_id
from chat.services.messages import sent_before, take_send_allowance
from core import images
from core.errors import InvalidInput, NotAllowed, NotFound, TooLarge
from core.validation import clean_text, require_user


def store_file(content: bytes, name: str) -> str:
    """Save bytes under MEDIA_ROOT; returns the stored name."""
    return Message._meta.get_field("image").storage.save(name, ContentFile(content))


def unstore_file(name: str | None) -> None:
    if name:
        Message._meta.get_field("image").storage.delete(name)


def _send_with_stored_image(
    *, sender, room: Room, body, client_id: str | None, kind: str, image_name: str, allowance_taken=False, reply_to=None
):
    """message_send with an image file already saved; the file is removed again unless it
    became part of a new message (refused, rate-limited, or a retry of an earlier one)."""
    try:
        message, created = messages.message_send(
            sender=sender, room=room, body=body, client_id=client_id, kind=kind, image=image_name,
            allowance_taken=allowance_taken, reply_to=reply_to,
        )
    except BaseException:
        unstore_file(image_name)
        raise
    if not created:
        unstore_file(image_name)
    return message, created


def message_send_image(*, sender, room: Room, upload, body="", client_id=None, reply_to=None) -> tuple[Message, bool]:
    """Send an uploaded picture (kind `image`, optional caption `body`, optionally as a
    reply: `reply_to`) like message_send.

    The upload is verified, stripped of metadata and re-encoded by core.images before
    anything is stored. Raises InvalidImage (not a sound JPEG/PNG/GIF/WebP, a
    decompression bomb, truncated), TooLarge (over PARLEY_UPLOAD_MAX_BYTES), and whatever
    message_send raises; on any refusal neither a row nor a file is left behind. A
    `client_id` already used answers with the first message before any image work, and
    the send rate is taken before decoding, so a refused sender costs no decode (an upload
    that turns out not to be a picture has used its send).
    """
    require_user(sender)
    client_id = clean_client_id(client_id)
    body = clean_text(body, field="body", max_length=settings.PARLEY_MAX_BODY, required=False, too_long=TooLarge)
    if not selectors.room_may_read(user=sender, room=room):
        raise NotFound("No such room.")
    if client_id:
        existing = sent_before(sender, client_id)
        if existing is not None:
            return existing, False
    messages.may_send_here(sender=sender, room=room)  # refused before any image work
    messages.reply_target(room=room, reply_to=reply_to)
    existing = take_send_allowance(sender, client_id)
    if existing is not None:
        return existing, False
    processed = images.process_upload(upload)
    name = store_file(processed.content, message_image_path(None, f"image.{processed.extension}"))
    return _send_with_stored_image(
        sender=sender, room=room, body=body, client_id=client_id, kind=Message.Kind.IMAGE, image_name=name,
        allowance_taken=True, reply_to=reply_to,
    )


def preset_post(*, by, room: Room, preset_id, client_id=None) -> tuple[Message, bool]:
    """Staff post a preset into a room as a `preset` message (through message_send, so it
    is numbered, rate-limited and broadcast like any other). The message gets its own copy
    of the preset's picture: recalling or deleting it leaves the preset intact."""
    require_user(by)
    if not by.is_staff:
        raise NotAllowed("Only staff may post presets.")
    if not isinstance(preset_id, int) or isinstance(preset_id, bool):
        raise InvalidInput("id must be a preset id.")
    preset = Preset.objects.filter(pk=preset_id).first()
    if preset is None:
        raise NotFound("No such preset.")
    client_id = clean_client_id(client_id)
    if not preset.image:
        return messages.message_send(sender=by, room=room, body=preset.body, client_id=client_id, kind=Message.Kind.PRESET)
    if not selectors.room_may_read(user=by, room=room):
        raise NotFound("No such room.")
    if client_id:
        existing = sent_before(by, client_id)
        if existing is not None:
            return existing, False
    with preset.image.open("rb") as source:
        content = source.read()
    name = store_file(content, message_image_path(None, preset.image.name))
    return _send_with_stored_image(
        sender=by, room=room, body=preset.body, client_id=client_id, kind=Message.Kind.PRESET, image_name=name
    )
