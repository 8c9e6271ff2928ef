"""Web Push (SPEC §6.2): subscriptions, the outbox a new message fills, and the worker
step that empties it. Pushing never happens on the request or socket path: message_send
writes PushDelivery rows in its own transaction (so a push is never lost nor made for a
message that rolled back), and the push worker (chat.pushworker) sends them, retrying
with backoff, at least once (the service worker drops repeats by message id).
"""

import ipaddress
import logging
import socket
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat import selectors, webpush
from chat.models import Block, Membership, Message, PushDelivery, PushSubscription, Room, UserPresence
from core.errors import InvalidInput
from core.validation import require_user

log = logging.getLogger(__name__)

EXCERPT_CHARS = 120
MAX_ATTEMPTS = 12
BATCH = 50
# A claimed row is left alone this long: a worker killed while sending leaves it to be
# sent again (at least once) after this.
CLAIM_SECONDS = 15


def _clean_endpoint(endpoint) -> str:
    if not isinstance(endpoint, str) or not 10 <= len(endpoint) <= 1000:
        raise InvalidInput("endpoint must be a URL of at most 1000 characters.")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInput("endpoint must be an https URL.")
    if settings.PARLEY_PUSH_ALLOW_INSECURE:
        return endpoint
    if parts.scheme != "https":
        raise InvalidInput("endpoint must be an https URL.")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)}
    except OSError:
        addresses = set()
    for address in addresses | ({parts.hostname} if _is_ip(parts.hostname) else set()):
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified:
            raise InvalidInput("endpoint must be a public push service.")
    return endpoint


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _clean_key(value, *, field: str, size: int, prefix: bytes = b"") -> str:
    try:
        raw = webpush.b64url_decode(value) if isinstance(value, str) and len(value) <= 200 else None
    except ValueError:
        raw = None
    if raw is None or len(raw) != size or not raw.startswith(prefix):
        raise InvalidInput(f"keys.{field} must be the base64url of {size} bytes.")
    return value


def push_subscribe(*, user, endpoint, keys) -> PushSubscription:
    """Keep the browser's subscription for `user` (the same endpoint again replaces it,
    whoever had it: a browser belongs to whoever subscribed last)."""
    require_user(user)
    endpoint = _clean_endpoint(endpoint)
    if not isinstance(keys, dict):
        raise InvalidInput("keys must be {p256dh, auth}.")
    p256dh = _clean_key(keys.get("p256dh"), field="p256dh", size=65, prefix=b"\x04")
    auth = _clean_key(keys.get("auth"), field="auth", size=16)
    subscription, _ = PushSubscription.objects.update_or_create(
        endpoint=endpoint,
        defaults={"user": user, "p256dh": p256dh, "auth": auth, "last_error": "", "last_error_at": None},
    )
    return subscription


def push_unsubscribe(*, user, endpoint) -> None:
    require_user(user)
    if not isinstance(endpoint, str):
        raise InvalidInput("endpoint is required.")
    PushSubscription.objects.filter(user=user, endpoint=endpoint).delete()


def push_subscriptions(*, user):
    return PushSubscription.objects.filter(user=user).order_by("created_at")


# The outbox ---------------------------------------------------------------------------


def _wants(membership: Membership, room: Room, message: Message, username: str, now) -> bool:
    if membership.muted_until is not None and membership.muted_until > now:
        return False
    notify = membership.notify or selectors.notify_default(room.kind)
    if notify == Membership.Notify.ALL:
        return True
    return notify == Membership.Notify.MENTIONS and (message.mentions_all or username in message.mentions)


def payload_for(message: Message, room: Room) -> dict:
    sender = message.sender
    profile = getattr(sender, "profile", None) if sender else None
    data = {
        "id": message.id,
        "room": room.slug,
        "room_name": room.name,
        "seq": message.seq,
        "sender": ((profile.display_name if profile else "") or sender.username) if sender else "",
        "url": f"/rooms/{room.slug}/#message-{message.id}-{message.seq}",
    }
    if settings.PARLEY_PUSH_PREVIEW:
        body = message.body or ("[image]" if message.image else "")
        data["excerpt"] = body[:EXCERPT_CHARS]
    return data


def enqueue_for_message(room: Room, message: Message, *, others_subscribed: bool) -> int:
    """Outbox rows for every subscription of every other member whose settings ask for
    this message; called inside the transaction that stores it. Returns how many.
    `others_subscribed`: whether any member but the sender has a subscription, read with
    the sender's standing before the transaction (selectors.standing): most rooms have
    none, and then nothing more is asked."""
    if message.kind == Message.Kind.SYSTEM or not others_subscribed:
        return 0
    return _enqueue(room, message, Membership.objects.filter(room=room))


def enqueue_for_mentions(room: Room, message: Message, *, user_ids, everyone: bool = False) -> int:
    """An edit mentioned these users (every member, `everyone`: it newly says @all):
    outbox rows for those told of mentions only, as for a new mention. Members told of
    every message heard of this one when it was sent."""
    memberships = Membership.objects.filter(room=room)
    if not everyone:
        if not user_ids:
            return 0
        memberships = memberships.filter(user_id__in=user_ids)
    return _enqueue(room, message, memberships, mentions_only=True)


def _enqueue(room: Room, message: Message, memberships, *, mentions_only: bool = False) -> int:
    subscribed = set(
        PushSubscription.objects.filter(user_id__in=memberships.values("user_id"))
        .exclude(user_id=message.sender_id)
        .values_list("user_id", flat=True)
    )
    if not subscribed:
        return 0
    blockers = set(  # nothing from someone they blocked
        Block.objects.filter(blocker_id__in=subscribed, blocked_id=message.sender_id).values_list("blocker_id", flat=True)
    )
    memberships = list(memberships.filter(user_id__in=subscribed - blockers).select_related("user"))
    if not memberships:
        return 0
    now = timezone.now()
    wanted = {
        m.user_id
        for m in memberships
        if _wants(m, room, message, m.user.username, now)
        and not (mentions_only and (m.notify or selectors.notify_default(room.kind)) == Membership.Notify.ALL)
    }
    if not wanted:
        return 0
    payload = payload_for(message, room)
    rows = [
        PushDelivery(subscription=subscription, message_id=message.id, payload=payload, next_attempt_at=now)
        for subscription in PushSubscription.objects.filter(user_id__in=wanted)
    ]
    PushDelivery.objects.bulk_create(rows)
    return len(rows)


# Presence every process sees ----------------------------------------------------------


def presence_write(*, process: str, here, gone=()) -> None:
    """What one server process knows of its own sockets: the users in `here` have one
    open there now (their row is written or renewed), those in `gone` none any more
    (their row goes: they count as away at once, unless another process has a row)."""
    gone = sorted(set(gone) - set(here))
    if gone:
        UserPresence.objects.filter(process=process, user_id__in=gone).delete()
    here = sorted(set(here))
    if here:
        now = timezone.now()
        UserPresence.objects.filter(process=process, user_id__in=here).update(last_seen=now)
        UserPresence.objects.bulk_create(
            [UserPresence(user_id=i, process=process, last_seen=now) for i in here], ignore_conflicts=True
        )


def _present(user_ids) -> set[int]:
    # A row not renewed for PARLEY_PUSH_AWAY_SECONDS is a dead process's.
    since = timezone.now() - timedelta(seconds=settings.PARLEY_PUSH_AWAY_SECONDS)
    return set(UserPresence.objects.filter(user_id__in=user_ids, last_seen__gt=since).values_list("user_id", flat=True))


# The worker step ------------------------------------------------------------------------


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(600, 2 ** attempts))


def push_due(*, limit: int = BATCH, send=None) -> int:
    """Send up to `limit` due pushes; returns how many rows were handled. A user with a
    socket open on any process (UserPresence) is not pushed to: the open page tells them. 2xx: done, the subscription's last success noted; 404/410: the subscription is
    gone and removed; anything else: tried again later with backoff, the error noted."""
    send = send or webpush.send
    now = timezone.now()
    with transaction.atomic():
        due = list(
            PushDelivery.objects.select_for_update(skip_locked=True)
            .filter(next_attempt_at__lte=now)
            .select_related("subscription")
            .order_by("next_attempt_at", "id")[:limit]
        )
        if not due:
            return 0
        # Claimed: another worker will not take them for CLAIM_SECONDS.
        PushDelivery.objects.filter(pk__in=[d.pk for d in due]).update(next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS))
    present = _present({d.subscription.user_id for d in due})
    key = webpush.vapid()
    for delivery in due:
        subscription = delivery.subscription
        if subscription.user_id in present:
            delivery.delete()
            continue
        try:
            status = send(subscription.endpoint, delivery.payload, p256dh=subscription.p256dh, auth=subscription.auth, key=key)
            error = "" if 200 <= status < 300 else f"HTTP {status}" if status else "unreachable"
        except Exception as exc:  # an unreachable service, a TLS error, a timeout
            status, error = 0, f"{type(exc).__name__}: {exc}"[:300]
        stamp = timezone.now()
        if 200 <= status < 300:
            PushSubscription.objects.filter(pk=subscription.pk).update(last_success_at=stamp)
            delivery.delete()
        elif status in (404, 410):
            subscription.delete()  # its deliveries go with it
        else:
            PushSubscription.objects.filter(pk=subscription.pk).update(last_error=error, last_error_at=stamp)
            if delivery.attempts + 1 >= MAX_ATTEMPTS:
                log.warning("dropping push of message %s to subscription %s: %s", delivery.message_id, subscription.pk, error)
                delivery.delete()
            else:
                PushDelivery.objects.filter(pk=delivery.pk).update(
                    attempts=delivery.attempts + 1, next_attempt_at=stamp + _backoff(delivery.attempts + 1)
                )
    return len(due)
