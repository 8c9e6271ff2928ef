"""Email for a widget guest who is away (SPEC §6.6): when the owner answers in a guest's
conversation, the guest left an email address, email is configured (EMAIL_BACKEND set,
PARLEY_EMAIL_ENABLED) and the guest has no socket open in the conversation, one email
says there is an answer; at most one per conversation per PARLEY_WIDGET_EMAIL_MINUTES.

Runs after commit and off the request: the presence check and the sending happen in a
thread of their own, so a slow mail server never holds up a message.
"""

import logging
import threading

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.mail import send_mail
from django.dispatch import receiver

from accounts.selectors import is_guest
from chat import presence
from chat.services.messages import message_stored
from core.errors import RateLimited
from core.ratelimit import check_rate

log = logging.getLogger(__name__)


def in_background(work) -> None:
    threading.Thread(target=work, name="widget-email", daemon=True).start()


@receiver(message_stored)
def email_an_away_guest(sender, message, room, **kwargs):
    if not settings.PARLEY_EMAIL_ENABLED or message.sender is None or is_guest(message.sender):
        return
    from projects.models import Guest

    guest = (
        Guest.objects.select_related("user", "project")
        .filter(user__project_conversations__room=room, blocked_at=None)
        .exclude(email="")
        .first()
    )
    if guest is None:
        return
    excerpt = (message.body or "[image]")[:500]
    owner = message.sender.profile.shown_name
    in_background(lambda: _email(guest, room.id, owner, excerpt))


def _email(guest, room_id: int, owner: str, excerpt: str) -> None:
    try:
        online, _ = async_to_sync(presence.online)(room_id)
        if guest.user.username in online:
            return
        check_rate(f"widget-email:{room_id}", per_hour=60 / settings.PARLEY_WIDGET_EMAIL_MINUTES, burst=1)
        send_mail(
            subject=f"{owner} answered you about {guest.project.title}",
            message=f"{owner} wrote:\n\n{excerpt}\n\nOpen the chat on the site where you started it to answer.",
            from_email=None,
            recipient_list=[guest.email],
        )
    except RateLimited:
        pass
    except Exception:
        log.exception("emailing widget guest %s failed", guest.user.username)
