"""Django's model backend, refusing suspended users: their logins fail and their
sessions stop logging them in (get_user goes through user_can_authenticate too)."""

from django.contrib.auth.backends import ModelBackend as DjangoModelBackend

from accounts.suspensions import is_suspended


class ModelBackend(DjangoModelBackend):
    def user_can_authenticate(self, user) -> bool:
        return super().user_can_authenticate(user) and not is_suspended(user)
