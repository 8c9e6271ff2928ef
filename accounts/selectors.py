"""Who is logged in, as the realtime wing asks it: does the credential a socket was opened
with still log its user in? (The sweep in chat/hub.py closes the sockets whose one ended.)"""

from dataclasses import dataclass
from importlib import import_module

from django.conf import settings


@dataclass(frozen=True, slots=True)
class Credential:
    """How a socket logged in: a session or an API token (`key`), for `user_id`."""

    kind: str  # "session" or "token"
    key: str
    user_id: int


def credentials_valid(credentials) -> set[Credential]:
    """Those of `credentials` that still log their user in.

    A session: its row exists and has not expired, it names the same user, the user is
    active, and the password hash the session was made with still matches the user's
    (HASH_SESSION_KEY, checked as django.contrib.auth.get_user does, SECRET_KEY_FALLBACKS
    included): changing the password ends every other session. A token: its row exists,
    for the same user, who is active. Neither holds while the user is suspended
    (accounts.suspensions). At most three queries, however many sockets ask.
    """
    from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.models import Session
    from django.utils import timezone
    from django.utils.crypto import constant_time_compare
    from rest_framework.authtoken.models import Token

    from accounts.suspensions import active_q

    credentials = set(credentials)
    valid: set[Credential] = set()
    tokens = {c.key for c in credentials if c.kind == "token"}
    if tokens:
        rows = set(
            Token.objects.filter(key__in=tokens, user__is_active=True)
            .exclude(active_q("user__"))
            .values_list("key", "user_id")
        )
        valid.update(c for c in credentials if c.kind == "token" and (c.key, c.user_id) in rows)
    sessions = {c for c in credentials if c.kind == "session"}
    if sessions:
        store = import_module(settings.SESSION_ENGINE).SessionStore()
        hashes: dict[str, tuple[str, str]] = {}
        rows = Session.objects.filter(session_key__in={c.key for c in sessions}, expire_date__gt=timezone.now())
        for key, data in rows.values_list("session_key", "session_data"):
            decoded = store.decode(data)
            hashes[key] = (str(decoded.get(SESSION_KEY, "")), decoded.get(HASH_SESSION_KEY) or "")
        users = get_user_model().objects.filter(pk__in={c.user_id for c in sessions}, is_active=True).exclude(active_q())
        by_id = {str(user.pk): user for user in users}
        for credential in sessions:
            user_id, session_hash = hashes.get(credential.key, ("", ""))
            user = by_id.get(user_id)
            if user is None or str(credential.user_id) != user_id or not session_hash:
                continue
            if any(
                constant_time_compare(session_hash, expected)
                for expected in (user.get_session_auth_hash(), *user.get_session_auth_fallback_hash())
            ):
                valid.add(credential)
    return valid


GUEST_PREFIX = "guest-"


def is_guest(user) -> bool:
    """A guest of the website widget (SPEC §6.6): a user whose name starts `guest-`, a
    prefix registration refuses, made only by projects.services.guest_create. No query."""
    return bool(user is not None and user.is_authenticated and user.username.startswith(GUEST_PREFIX))
