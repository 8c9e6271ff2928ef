"""Logging out closes that session's open sockets everywhere (close code 4401)."""

from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver

from chat import events


@receiver(user_logged_out)
def close_sockets_on_logout(sender, request, user, **kwargs):
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if user is not None and session_key:
        events.publish_on_commit(events.user_group(user.id), events.control("logout", session_key=session_key))
