"""Retention: messages past a room's policy become tombstones, old tombstones go."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from chat.models import Message, Room
from chat.services.changes import announce, erase, lock_room

PURGE_BATCH = 200
TOMBSTONE_DROP_BATCH = 1000


def _expired(room: Room, now) -> Q | None:
    """Which live messages of the room its retention policy drops, or None for none."""
    condition = None
    if room.retention_max_age is not None:
        condition = Q(created_at__lt=now - room.retention_max_age)
    if room.retention_max_count is not None:
        keep = room.retention_max_count
        if keep == 0:
            by_count = Q(seq__gt=0)
        else:
            newest = (
                Message.objects.filter(room=room, deleted=False)
                .order_by("-seq")
                .values_list("seq", flat=True)[keep - 1 : keep]
            )
            oldest_kept = next(iter(newest), None)
            by_count = Q(seq__lt=oldest_kept) if oldest_kept is not None else None
        if by_count is not None:
            condition = by_count if condition is None else condition | by_count
    return condition


def room_purge(*, room: Room, now=None, progress=None) -> tuple[int, int]:
    """Enforce the room's retention (Room.retention_max_age / retention_max_count).

    Messages past it become deletion tombstones exactly as message_delete makes them —
    each takes a new rev and is announced as `message.deleted`, their images are removed —
    so no connected or resuming client keeps showing them. Tombstones older than
    PARLEY_TOMBSTONE_SECONDS are then dropped for good, and Room.horizon_rev rises to the
    highest dropped rev, so a `resume` from below it answers `truncated`. Works in
    batches, each in its own transaction with the room row locked; safe to run again or
    concurrently. `progress(tombstoned, dropped)` is called after each batch.
    Returns (messages tombstoned, tombstones dropped).
    """
    now = now or timezone.now()
    tombstoned = dropped = 0
    while True:
        with transaction.atomic():
            locked = lock_room(room.id)
            condition = _expired(locked, now)
            if condition is None:
                break
            batch = list(
                Message.objects.filter(room=locked, deleted=False).filter(condition).order_by("seq")[:PURGE_BATCH]
            )
            if not batch:
                break
            for message in batch:
                was_live = not message.recalled
                erase(locked, message, deleted=True, deleted_at=now)
                announce(locked, message, was_live=was_live)
        tombstoned += len(batch)
        if progress:
            progress(tombstoned, dropped)
    cutoff = now - timedelta(seconds=settings.PARLEY_TOMBSTONE_SECONDS)
    while True:
        with transaction.atomic():
            locked = lock_room(room.id)
            old = list(
                Message.objects.filter(room=locked, deleted=True)
                .filter(Q(deleted_at__lt=cutoff) | Q(deleted_at__isnull=True))
                .order_by("rev")
                .values_list("pk", "rev")[:TOMBSTONE_DROP_BATCH]
            )
            if not old:
                break
            # Raise the horizon in the same transaction: nobody can resume across the gap
            # without hearing that their replay is incomplete.
            horizon = max(rev for _, rev in old)
            Room.objects.filter(pk=locked.pk, horizon_rev__lt=horizon).update(horizon_rev=horizon)
            Message.objects.filter(pk__in=[pk for pk, _ in old]).delete()
        dropped += len(old)
        if progress:
            progress(tombstoned, dropped)
    room.horizon_rev = Room.objects.filter(pk=room.pk).values_list("horizon_rev", flat=True).first() or 0
    return tombstoned, dropped


def rooms_with_retention():
    return Room.objects.filter(Q(retention_max_age__isnull=False) | Q(retention_max_count__isnull=False))
