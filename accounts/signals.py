"""Every user has a profile, however the user was made (register, admin, createsuperuser).
And however a user's password or active flag changes, the credentials they gave out follow:
`credentials_changed` (sender: the user class; `user`, `password_changed`) is sent when
such a save returns. A new password rotates the user's API tokens (below, in the same
transaction); chat.signals has their open sockets check their credentials after commit.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models.signals import post_save, pre_save
from django.dispatch import Signal, receiver

from accounts import search
from accounts.models import Profile

credentials_changed = Signal()


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def create_profile(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        Profile.objects.get_or_create(user=instance)
    if not raw:
        search.refresh_keys(instance)


@receiver(post_save, sender=Profile)
def profile_search_keys(sender, instance, raw=False, **kwargs):
    """A new display name is found by at once (accounts.search)."""
    if not raw:
        search.refresh_keys(instance.user)


@receiver(pre_save, sender=settings.AUTH_USER_MODEL)
def note_credential_changes(sender, instance, raw=False, update_fields=None, **kwargs):
    """Compare with the stored row: every way a password changes (set_password, the admin,
    `changepassword`, a plain assignment) ends in a save, so this is the one place to see it."""
    instance._parley_credentials = None
    if raw or instance.pk is None or (update_fields is not None and not {"password", "is_active"} & set(update_fields)):
        return
    stored = get_user_model().objects.filter(pk=instance.pk).values("password", "is_active").first()
    if stored is not None:
        password_changed = stored["password"] != instance.password
        if password_changed or (stored["is_active"] and not instance.is_active):
            instance._parley_credentials = password_changed


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def announce_credential_changes(sender, instance, raw=False, **kwargs):
    password_changed = getattr(instance, "_parley_credentials", None)
    instance._parley_credentials = None
    if password_changed is not None and not raw:
        credentials_changed.send(sender=sender, user=instance, password_changed=password_changed)


@receiver(credentials_changed)
def rotate_tokens_on_password_change(sender, user, password_changed, **kwargs):
    if password_changed:
        from accounts import services

        services.user_tokens_rotate(user=user)
