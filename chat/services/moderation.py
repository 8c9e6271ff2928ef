"""Keeping a room healthy (SPEC §6.4): roles, timed mutes, bans, site-wide suspensions,
pins, reports, and the audit log every one of them writes.

Who moderates a room: its owner and admins, and staff everywhere (selectors.
room_may_moderate). Direct and project conversations have no moderator: both people are
plain members and nobody mutes, bans or promotes the other (NotAllowed), though either
may pin. Mutes, bans and suspensions carry their end (`until`) in the database and every
check compares it with the clock, so they hold across restarts and processes and end by
themselves.
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts.models import Suspension
from chat import events, selectors
from chat.models import AuditEntry, Membership, Message, Report, Room, RoomBan, RoomMute
from chat.services.changes import announce, change, lock_room, system_message, tell_room_left
from chat.services.messages import _message_for_change
from core.errors import InvalidInput, NotAllowed, NotFound
from core.ratelimit import check_rate
from core.validation import clean_text, require_user

User = get_user_model()

MAX_MINUTES = 366 * 24 * 60  # a year: longer than that, ban until lifted
CONVERSATIONS = (Room.Kind.DM, Room.Kind.PROJECT)
REPORTS_PER_HOUR = 30
RANK = {Membership.Role.MEMBER: 1, Membership.Role.ADMIN: 2, Membership.Role.OWNER: 3}


def audit(*, actor, action: str, room: Room | None = None, target=None, message: Message | None = None, detail=""):
    """Write one line of the audit log (in the caller's transaction)."""
    return AuditEntry.objects.create(
        room=room, actor=actor, action=action, target=target, message=message, detail=str(detail)[:200]
    )


def clean_minutes(minutes, *, required: bool) -> int | None:
    if minutes is None and not required:
        return None
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= MAX_MINUTES:
        raise InvalidInput(f"minutes must be a whole number from 1 to {MAX_MINUTES}.")
    return minutes


def _target_user(username):
    if not isinstance(username, str) or not username:
        raise InvalidInput("username is required.")
    user = User.objects.filter(username=username).first()
    if user is None:
        raise NotFound("No such user.")
    return user


def _moderate(by, room: Room, username) -> tuple[Room, object, Membership | None]:
    """Lock the room and check that `by` may moderate `username` in it: (room, target,
    target's membership). NotFound for a private room `by` cannot see or an unknown user,
    NotAllowed for a conversation, a non-moderator, or a target who outranks or equals
    the actor (an admin cannot mute the owner or another admin; only staff act on staff)."""
    require_user(by)
    room = lock_room(room.id)
    actor = selectors.membership_get(user=by, room=room)
    if actor is None and not room.is_public and not by.is_staff:
        raise NotFound("No such room.")
    if room.kind in CONVERSATIONS:
        raise NotAllowed("Nobody moderates a direct or project conversation.")
    if not selectors.room_may_moderate(user=by, membership=actor):
        raise NotAllowed("Only the room's owner or admins may do that.")
    target = _target_user(username)
    if target.pk == by.pk:
        raise InvalidInput("You cannot do that to yourself.")
    membership = Membership.objects.filter(room=room, user=target).first()
    if not by.is_staff:
        if target.is_staff:
            raise NotAllowed("Only staff may act on staff.")
        mine = RANK.get(actor.role, 0) if actor else 0
        theirs = RANK.get(membership.role, 0) if membership else 0
        if theirs >= mine and theirs > 1:
            raise NotAllowed("You may not act on the room's owner or another admin.")
    elif membership is not None and membership.role == Membership.Role.OWNER:
        raise NotAllowed("The owner cannot be muted or banned.")
    return room, target, membership


@transaction.atomic
def member_role_set(*, by, room: Room, username, role) -> Membership:
    """The owner (or staff) makes a member an admin or an admin a plain member again. The
    room hears it as a system message; the audit log keeps it."""
    require_user(by)
    room = lock_room(room.id)
    actor = selectors.membership_get(user=by, room=room)
    if actor is None and not room.is_public and not by.is_staff:
        raise NotFound("No such room.")
    if room.kind in CONVERSATIONS:
        raise NotAllowed("Nobody moderates a direct or project conversation.")
    if not (by.is_staff or (actor is not None and actor.role == Membership.Role.OWNER)):
        raise NotAllowed("Only the room's owner appoints admins.")
    if role not in (Membership.Role.ADMIN, Membership.Role.MEMBER):
        raise InvalidInput("role must be 'admin' or 'member'.")
    membership = Membership.objects.filter(room=room, user__username=username).select_related("user").first() if isinstance(username, str) else None
    if membership is None:
        raise NotFound("No such member.")
    if membership.role == Membership.Role.OWNER:
        raise NotAllowed("The owner's role cannot be changed.")
    if membership.role == role:
        return membership
    membership.role = role
    membership.save(update_fields=["role"])
    audit(actor=by, action=AuditEntry.Action.ROLE, room=room, target=membership.user, detail=role)
    news = "made {} an admin" if role == Membership.Role.ADMIN else "made {} a member"
    system_message(room, f"{by.username} {news.format(membership.user.username)}")
    return membership


@transaction.atomic
def room_mute(*, by, room: Room, username, minutes) -> RoomMute:
    """Mute someone in a room for `minutes`: their sends are refused (403 `muted` with
    `until`) until then. Muting again replaces the end."""
    minutes = clean_minutes(minutes, required=True)
    room, target, _ = _moderate(by, room, username)
    until = timezone.now() + timedelta(minutes=minutes)
    mute, _ = RoomMute.objects.update_or_create(room=room, user=target, defaults={"until": until, "by": by})
    audit(actor=by, action=AuditEntry.Action.MUTE, room=room, target=target, detail=f"{minutes} min")
    _tell_user(target, room, "muted", until=until.isoformat())
    return mute


@transaction.atomic
def room_unmute(*, by, room: Room, username) -> None:
    room, target, _ = _moderate(by, room, username)
    if RoomMute.objects.filter(room=room, user=target).delete()[0]:
        audit(actor=by, action=AuditEntry.Action.UNMUTE, room=room, target=target)
        _tell_user(target, room, "unmuted")


@transaction.atomic
def room_ban(*, by, room: Room, username, minutes=None) -> RoomBan:
    """Ban someone from a room for `minutes` (None: until lifted): they are removed, their
    sockets on the room close with 4403 wherever they are (the removal's change revokes
    them; the hub's sweep re-checks bans too), and they can neither rejoin nor read it
    until the ban ends or is lifted."""
    minutes = clean_minutes(minutes, required=False)
    room, target, membership = _moderate(by, room, username)
    until = timezone.now() + timedelta(minutes=minutes) if minutes else None
    ban, _ = RoomBan.objects.update_or_create(room=room, user=target, defaults={"until": until, "by": by})
    if membership is not None:
        membership.delete()
        if room.is_public:
            tell_room_left(target.pk, room)
    audit(
        actor=by, action=AuditEntry.Action.BAN, room=room, target=target,
        detail=f"{minutes} min" if minutes else "until lifted",
    )
    system_message(room, f"{target.username} was banned", revoke=(target.pk,))
    return ban


@transaction.atomic
def room_unban(*, by, room: Room, username) -> None:
    room, target, _ = _moderate(by, room, username)
    if RoomBan.objects.filter(room=room, user=target).delete()[0]:
        audit(actor=by, action=AuditEntry.Action.UNBAN, room=room, target=target)


def _tell_user(user, room: Room, action: str, **fields) -> None:
    """Tell the user's own sockets (after commit) that their standing in a room changed."""
    events.publish_on_commit(
        events.user_group(user.pk),
        events.user_frame({"type": f"room.{action}", "room": room.slug, **fields}, room_id=room.id),
    )


# Site-wide ----------------------------------------------------------------------------------


@transaction.atomic
def user_suspend(*, by, username, minutes=None) -> Suspension:
    """Staff suspend a user everywhere for `minutes` (None: until lifted): logins and
    tokens are refused and every socket closes with 4401 (its process re-checks the
    user's credentials at once, and every sweep would)."""
    require_user(by)
    if not by.is_staff:
        raise NotAllowed("Only staff may suspend users.")
    minutes = clean_minutes(minutes, required=False)
    target = _target_user(username)
    if target.pk == by.pk:
        raise InvalidInput("You cannot suspend yourself.")
    if target.is_superuser and not by.is_superuser:
        raise NotAllowed("Only a superuser may suspend a superuser.")
    until = timezone.now() + timedelta(minutes=minutes) if minutes else None
    suspension, _ = Suspension.objects.update_or_create(user=target, defaults={"until": until, "by": by})
    audit(actor=by, action=AuditEntry.Action.SUSPEND, target=target, detail=f"{minutes} min" if minutes else "until lifted")
    events.publish_on_commit(events.user_group(target.pk), events.control("recheck"))
    return suspension


@transaction.atomic
def user_unsuspend(*, by, username) -> None:
    require_user(by)
    if not by.is_staff:
        raise NotAllowed("Only staff may lift suspensions.")
    target = _target_user(username)
    if Suspension.objects.filter(user=target).delete()[0]:
        audit(actor=by, action=AuditEntry.Action.UNSUSPEND, target=target)


# Pins -----------------------------------------------------------------------------------------


@transaction.atomic
def message_pin(*, user, message_id, pinned: bool) -> Message:
    """Pin or unpin a message: a room's owner/admins or staff; in a direct or project
    conversation either person. A change of the room (its own `rev`): everyone hears
    `message.pinned`. Pinning what is already pinned changes nothing."""
    room, message, membership = _message_for_change(user=user, message_id=message_id)
    if room.kind in CONVERSATIONS:
        allowed = membership is not None
    else:
        allowed = selectors.room_may_moderate(user=user, membership=membership)
    if not allowed:
        raise NotAllowed("Only the room's owner or admins may pin messages.")
    if message.recalled or message.kind == Message.Kind.SYSTEM:
        raise InvalidInput("This message cannot be pinned.")
    if bool(message.pinned_at) == bool(pinned):
        return message
    message.reaction_list = list(message.reactions.select_related("user").order_by("id"))
    change(room, message, pinned_at=timezone.now() if pinned else None)
    announce(room, message, update=events.message_pinned(message, room_slug=room.slug))
    audit(
        actor=user, action=AuditEntry.Action.PIN if pinned else AuditEntry.Action.UNPIN, room=room,
        target=message.sender, message=message,
    )
    return message


# Reports --------------------------------------------------------------------------------------


def report_create(*, user, message_id, reason="") -> Report:
    """A reader of the room flags a message for staff (PARLEY: REPORTS_PER_HOUR each)."""
    require_user(user)
    message = selectors.message_get_for_user(user=user, message_id=message_id)
    reason = clean_text(reason, field="reason", max_length=1000, required=False)
    check_rate(f"report:{user.pk}", per_hour=REPORTS_PER_HOUR, detail="Too many reports; try again in {seconds} s.")
    return Report.objects.create(message=message, room=message.room, reporter=user, reason=reason)


@transaction.atomic
def report_resolve(*, by, report_id) -> Report:
    require_user(by)
    if not by.is_staff:
        raise NotAllowed("Only staff resolve reports.")
    if not isinstance(report_id, int) or isinstance(report_id, bool):
        raise InvalidInput("id must be a report id.")
    report = Report.objects.select_for_update(of=("self",)).filter(pk=report_id).select_related("message").first()
    if report is None:
        raise NotFound("No such report.")
    if report.resolved:
        return report
    report.resolved, report.resolved_by, report.resolved_at = True, by, timezone.now()
    report.save(update_fields=["resolved", "resolved_by", "resolved_at"])
    audit(
        actor=by, action=AuditEntry.Action.RESOLVE, room=report.room, message=report.message,
        target=report.message.sender if report.message else None, detail=f"report {report.pk}",
    )
    return report
