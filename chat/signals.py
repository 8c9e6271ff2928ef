"""The sockets follow what happens to the credentials they were opened with.

Logging out closes that session's open sockets everywhere (close code 4401). A password
change, a deactivation or a revoked API token has the user's sockets on every process check
their credentials at once (chat/hub.py; the sweep would within PARLEY_SWEEP_SECONDS).
"""

from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_delete
from django.dispatch import receiver
from rest_framework.authtoken.models import Token

from accounts.signals import credentials_changed
from chat import events


@receiver(user_logged_out)
def close_sockets_on_logout(sender, request, user, **kwargs):
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if user is not None and session_key:
        events.publish_on_commit(events.user_group(user.id), events.control("logout", session_key=session_key))


@receiver(credentials_changed)
def recheck_sockets_on_credential_change(sender, user, **kwargs):
    events.publish_on_commit(events.user_group(user.pk), events.control("recheck"))


@receiver(post_delete, sender=Token)
def recheck_sockets_on_token_revoked(sender, instance, **kwargs):
    events.publish_on_commit(events.user_group(instance.user_id), events.control("recheck"))
