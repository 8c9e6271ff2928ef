"""REST door for accounts: register, token exchange and revocation, own profile."""

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_in
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.authentication import TokenAuthentication
from chat.serializers import user_to_dict
from core.errors import InvalidImage, InvalidInput, TooLarge

Credentials = inline_serializer("Credentials", {"username": serializers.CharField(), "password": serializers.CharField()})
UserOut = inline_serializer(
    "User",
    {"username": serializers.CharField(), "display_name": serializers.CharField(), "avatar": serializers.CharField(allow_null=True)},
)


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(request=Credentials, responses={201: UserOut})
    def post(self, request):
        user = services.user_register(username=request.data.get("username"), password=request.data.get("password"))
        return Response(user_to_dict(user), status=201)


class TokenView(APIView):
    """POST exchanges a password for the user's token (no prior login needed); DELETE
    revokes the token the request came with."""

    def _revoking(self) -> bool:
        # No request while the OpenAPI schema is generated: document the token it takes.
        return self.request is None or self.request.method == "DELETE"

    def get_authenticators(self):
        return [TokenAuthentication()] if self._revoking() else []

    def get_permissions(self):
        return [IsAuthenticated()] if self._revoking() else [AllowAny()]

    @extend_schema(request=Credentials, responses={200: inline_serializer("Token", {"token": serializers.CharField()})})
    def post(self, request):
        username, password = request.data.get("username"), request.data.get("password")
        user = None
        if isinstance(username, str) and isinstance(password, str):
            # The HttpRequest, not DRF's wrapper: django-axes marks a locked-out attempt on
            # it, and its middleware turns that into the 429 of accounts/lockout.py.
            user = authenticate(request._request, username=username, password=password)
        if user is None:
            # The same answer for an unknown user and a wrong password.
            raise InvalidInput("Unable to log in with those credentials.")
        # A token exchange is a login: the failure count resets (AXES_RESET_ON_SUCCESS), last_login moves.
        user_logged_in.send(sender=user.__class__, request=request._request, user=user)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        services.token_revoke(token=request.auth)
        return Response(status=204)


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: UserOut})
    def get(self, request):
        return Response(user_to_dict(request.user))

    @extend_schema(
        request={
            "application/json": inline_serializer("ProfileUpdate", {"display_name": serializers.CharField(required=False)}),
            "multipart/form-data": inline_serializer(
                "ProfileUpdateAvatar",
                {"display_name": serializers.CharField(required=False), "avatar": serializers.ImageField(required=False)},
            ),
        },
        responses={200: UserOut},
    )
    def patch(self, request):
        avatar = None
        if (request.content_type or "").startswith("multipart/form-data"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > settings.PARLEY_UPLOAD_MAX_BYTES + 65_536:
                raise TooLarge(f"Images are limited to {settings.PARLEY_UPLOAD_MAX_BYTES // 1_048_576} MB.")
            if "avatar" in request.data:
                avatar = request.FILES.get("avatar")
                if avatar is None:
                    raise InvalidImage("avatar must be a file.")
        profile = services.profile_update(
            user=request.user, display_name=request.data.get("display_name"), avatar=avatar
        )
        return Response(user_to_dict(profile.user))
