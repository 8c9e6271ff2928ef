"""Editing a message: a new body (or caption) under the room's next rev, every earlier
version kept (chat.models.MessageVersion)."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat import events, selectors
from chat.formatting import render
from chat.models import Message, MessageVersion
from chat.services.changes import announce, change, lock_room
from core.errors import InvalidInput, NotAllowed, NotFound, TooLarge
from core.validation import clean_text, require_user


@transaction.atomic
def message_edit(*, user, message_id, body) -> Message:
    """The sender replaces the body of their own message (an image's caption included).

    The body is checked like a new one (an image's caption may be empty), rendered again,
    and the one it replaces is kept as a version (the original with its created_at).
    Everyone in the room gets `message.edited` after commit; an edit never counts as
    unread. An edit to the same body changes nothing: no version, no rev, no event.
    Raises AuthRequired for anonymous users, NotFound when the message is not in a room
    the user may read, NotAllowed (`forbidden`) for someone else's message or past
    PARLEY_EDIT_SECONDS (0: no limit), InvalidInput for a recalled or deleted message or
    a bad body, TooLarge past PARLEY_MAX_BODY.
    """
    require_user(user)
    if not isinstance(message_id, int) or isinstance(message_id, bool) or not 0 < message_id < 2**63:
        raise InvalidInput("id must be a message id.")
    body = clean_text(body, field="body", max_length=settings.PARLEY_MAX_BODY, required=False, too_long=TooLarge)
    found = Message.objects.select_related("room").filter(pk=message_id).first()
    if found is None or not selectors.room_may_read(user=user, room=found.room):
        raise NotFound("No such message.")
    room = lock_room(found.room_id)
    # Read again under the room's lock: a recall or deletion cannot slip in between.
    message = selectors.with_details(Message.objects.filter(pk=found.pk)).first()
    if message is None:  # purged by retention meanwhile
        raise NotFound("No such message.")
    message.room = room
    if message.sender_id != user.id:
        raise NotAllowed("Only the sender may edit a message.")
    if message.recalled or message.deleted:
        raise InvalidInput("A recalled or deleted message cannot be edited.")
    limit = settings.PARLEY_EDIT_SECONDS
    now = timezone.now()
    if limit and now - message.created_at > timedelta(seconds=limit):
        raise NotAllowed("The time to edit this message has passed.")
    if not body and not message.image:
        raise InvalidInput("body must not be empty.")
    if body == message.body:
        return message
    MessageVersion.objects.create(message=message, body=message.body, edited_at=message.edited_at or message.created_at)
    change(room, message, body=body, html=render(body), edited_at=now)
    announce(room, message, update=events.message_edited(message, room_slug=room.slug))
    return message
