"""Blocking (SPEC §6.4): a blocked user cannot open or write to a direct or project
conversation with the person who blocked them, and their messages in shared rooms are
collapsed for that person (`blocked: true` on the message objects they read)."""

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

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
    """Block `username` (idempotent)."""
    other = _other(user, username)
    try:
        with transaction.atomic():
            block, _ = Block.objects.get_or_create(blocker=user, blocked=other)
    except IntegrityError:  # a concurrent identical block
        block = Block.objects.get(blocker=user, blocked=other)
    return block


def block_remove(*, user, username) -> None:
    other = _other(user, username)
    Block.objects.filter(blocker=user, blocked=other).delete()
