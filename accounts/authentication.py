"""DRF's token authentication, refusing the tokens of suspended users (401)."""

from rest_framework import authentication, exceptions

from accounts.suspensions import is_suspended


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if is_suspended(user):
            raise exceptions.AuthenticationFailed("User suspended.")
        return user, token
