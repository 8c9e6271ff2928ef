"""The one reading of "is this user suspended now" (accounts.models.Suspension), for every
place a credential is accepted: logins and sessions (accounts.backends), API tokens
(accounts.authentication, core.websocket) and the hub's credential sweep
(accounts.selectors.credentials_valid)."""

from django.db.models import Q
from django.utils import timezone


def active_q(prefix: str = "") -> Q:
    """Rows of a user model (through `prefix`, e.g. "user__") whose suspension holds now."""
    return Q(**{f"{prefix}suspension__isnull": False}) & (
        Q(**{f"{prefix}suspension__until__isnull": True}) | Q(**{f"{prefix}suspension__until__gt": timezone.now()})
    )


def is_suspended(user) -> bool:
    from accounts.models import Suspension

    if user is None or not getattr(user, "pk", None):
        return False
    return Suspension.objects.filter(user_id=user.pk).filter(Q(until__isnull=True) | Q(until__gt=timezone.now())).exists()
