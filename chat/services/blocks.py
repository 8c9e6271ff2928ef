"""Blocking (SPEC §6.4): a blocked user cannot open or write to a direct or project
conversation with the person who blocked them, and their messages in shared rooms are
collapsed for that person (`blocked: true` on the message objects they read)."""

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from chat import events
from chat.models import Block
from core.errors import InvalidInput, NotFound
from core.validation import require_user

User = get_user_model()


def _other(user, username):
    require_user(user)
    if not isinstance(username, str) or not username:
        raise InvalidInput("username is required.")
    other = User.objects.filter(username=username).first()
    if other is None:
        raise NotFound("No such user.")
    if other.pk == user.pk:
        raise InvalidInput("You cannot block yourself.")
    return other


def block_add(*, user, username) -> Block:
    """Block `username` (idempotent). A widget guest of one of `user`'s projects also loses
    its credential: blocking is all an owner can do against an account-less visitor."""
    # Imported here: projects builds on chat.services, not the other way round.
    from projects.services import guest_access_set

    other = _other(user, username)
    try:
        with transaction.atomic():
            block, _ = Block.objects.get_or_create(blocker=user, blocked=other)
            guest_access_set(owner=user, guest_user=other, allowed=False)
    except IntegrityError:  # a concurrent identical block
        block = Block.objects.get(blocker=user, blocked=other)
    _recount(user)
    return block


def _recount(user) -> None:
    """Mentions by someone blocked do not count (selectors._mentioning): the user's open
    streams read their counts again."""
    blocked = list(Block.objects.filter(blocker=user).values_list("blocked_id", flat=True))
    events.publish_on_commit(events.user_group(user.pk), events.control("recount", blocked=blocked))


def block_remove(*, user, username) -> None:
    """Unblock `username` (idempotent); a guest of `user`'s project gets its credential back."""
    from projects.services import guest_access_set

    other = _other(user, username)
    with transaction.atomic():
        Block.objects.filter(blocker=user, blocked=other).delete()
        guest_access_set(owner=user, guest_user=other, allowed=True)
        _recount(user)
