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
from chat.services.mentions import mentions_for, replace_mentions
from chat.services.push import enqueue_for_mentions
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
    a bad body, TooLarge past PARLEY_MAX_BODY, NotAllowed for a new @all / @room from
    someone who may not mention everyone.

    Mentions are decided again from the new body (chat.services.mentions): a user newly
    mentioned counts it and is pushed to like for a new mention; one no longer mentioned
    loses it from their counts and GET /api/mentions/. Their streams recount (the
    change's meta carries the mentions before).
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
    mentioned, mentions_all = mentions_for(sender=user, room=room, body=body, everyone_kept=message.mentions_all)
    before = {"mentions": list(message.mentions), "mentions_all": message.mentions_all}
    MessageVersion.objects.create(message=message, body=message.body, edited_at=message.edited_at or message.created_at)
    names = [m.username for m in mentioned]
    fields = {"mentions": names, "mentions_all": mentions_all} if (names, mentions_all) != tuple(before.values()) else {}
    change(room, message, body=body, html=render(body), edited_at=now, **fields)
    if fields:
        added = replace_mentions(message, mentioned)
        enqueue_for_mentions(room, message, user_ids=added, everyone=mentions_all and not before["mentions_all"])
    announce(
        room, message, update=events.message_edited(message, room_slug=room.slug), mentions_before=before if fields else None
    )
    return message
