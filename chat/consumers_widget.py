"""The guest socket `/ws/widget/<room>/` of the website widget (SPEC §6.6).

A page inside the widget's iframe has no cookie worth sending and cannot set headers on
a WebSocket, so the guest logs in with its first frame: `{"type": "auth", "token": …}`.
Anything else first, a token that is not a live guest's, or no frame within
AUTH_SECONDS closes the socket with 4401; a room that is not the guest's own conversation
closes it with 4404. After `hello` it is the room socket of chat/consumers_room.py,
unchanged: same frames, limits, resume and presence. The token is the socket's
credential, so the hub's sweep closes it when the owner blocks the guest.
"""

import asyncio
import json

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from accounts import selectors as account_selectors
from chat import consumers, limits
from chat.consumers_room import RoomConsumer
from chat.serializers import user_to_dict
from core.errors import AppError, AuthRequired, NotFound
from core.ratelimit import check_guest_address_rate

AUTH_SECONDS = 10.0


class WidgetConsumer(RoomConsumer):
    async def websocket_connect(self, message):
        # Whatever the handshake carried (a Parley session cookie, a header) is ignored:
        # on this socket only the `auth` frame logs in, and only a guest.
        self.scope = {**self.scope, "user": AnonymousUser(), "auth_method": None}
        self.authenticated = False
        await super().websocket_connect(message)

    async def open(self) -> None:
        self.auth_timer = asyncio.get_running_loop().call_later(AUTH_SECONDS, self._auth_timed_out)

    def _auth_timed_out(self) -> None:
        if not self.authenticated:
            self.close_with(consumers.CLOSE_UNAUTHENTICATED)

    guest_lease: limits.Lease | None = None

    async def websocket_disconnect(self, message):
        timer = getattr(self, "auth_timer", None)
        if timer is not None:
            timer.cancel()
        lease, self.guest_lease = self.guest_lease, None
        if lease is not None:
            limits.release(lease)
        await super().websocket_disconnect(message)

    def hub_unsubscribe(self) -> None:
        if self.authenticated:
            super().hub_unsubscribe()

    async def receive(self, text_data=None, bytes_data=None):
        if self.authenticated or self.closing:
            return await super().receive(text_data=text_data, bytes_data=bytes_data)
        self.auth_timer.cancel()
        raw = text_data if text_data is not None else bytes_data
        if raw is None or len(raw if isinstance(raw, bytes) else raw.encode()) > settings.PARLEY_MAX_FRAME_BYTES:
            return self.close_with(consumers.CLOSE_UNAUTHENTICATED)
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            data = None
        token = data.get("token") if isinstance(data, dict) and data.get("type") == "auth" else None
        if not isinstance(token, str) or not token:
            return self.close_with(consumers.CLOSE_UNAUTHENTICATED)
        try:
            user, room_slug = await _guest_for_token(token)
            if room_slug != self.scope["url_route"]["kwargs"]["slug"]:
                raise NotFound("No such room.")
            # The guest's sockets count against PARLEY_MAX_SOCKETS_PER_USER too (the
            # address was counted at connect, before anyone was logged in).
            self.guest_lease = await limits.admit(user.id, None)
            if self.guest_lease is None:
                return self.close_with(consumers.CLOSE_TOO_MANY)
            self.authenticated = True
            self.user, self.user_id, self.username = user, user.id, user.username
            self.credential = account_selectors.Credential("token", token, user.id)
            self.frame_guard = limits.FrameGuard(limits.guard_key(user.id, limits.client_address(self.scope)))
            self.user_dict = user_to_dict(user)
            await RoomConsumer.open(self)
        except AppError as error:
            self.close_with(consumers._close_code_for(error))
        except Exception:
            consumers.log.exception("opening a widget socket failed")
            self.close_with(1011)


    async def on_send(self, frame) -> None:
        await _check_address(limits.client_address(self.scope))
        await super().on_send(frame)


_check_address = database_sync_to_async(check_guest_address_rate)


@database_sync_to_async
def _guest_for_token(key: str):
    """The live guest the token logs in, and its conversation's slug; AuthRequired otherwise."""
    from rest_framework.authtoken.models import Token

    from accounts.authentication import guest_room_slug

    token = Token.objects.select_related("user__profile").filter(key=key).first()
    if token is None or not token.user.is_active or not account_selectors.is_guest(token.user):
        raise AuthRequired("Unknown or revoked guest token.")
    return token.user, guest_room_slug(token.user)
