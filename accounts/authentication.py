"""`Authorization: Token <key>` for REST. Two refusals on top of DRF's:
- a suspended user's token is refused (401, SPEC §6.4);
- guests of the website widget stay behind a fence (SPEC §6.6): a guest's token opens only
  the views that say `guest_access = True`, and of those that name a room (`slug`), only
  the guest's own conversation. Anything else is 403 (an endpoint guests never use) or 404
  (another room: its existence is not revealed)."""

from rest_framework import authentication, exceptions

from accounts.selectors import is_guest
from accounts.suspensions import is_suspended
from core.errors import NotAllowed, NotFound


class ActiveTokenAuthentication(authentication.TokenAuthentication):
    """A token of a user who is not suspended, without the guests' fence: for doors that
    check the room themselves (chat/media.py serves a guest the pictures and files of its
    own conversation by room_may_read)."""

    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if is_suspended(user):
            raise exceptions.AuthenticationFailed("User suspended.")
        return user, token


class TokenAuthentication(ActiveTokenAuthentication):
    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None and is_guest(result[0]):
            context = getattr(request, "parser_context", None) or {}
            view, kwargs = context.get("view"), context.get("kwargs") or {}
            if not getattr(view, "guest_access", False):
                raise NotAllowed("Guests of the website widget can only use their own conversation.")
            slug = kwargs.get("slug")
            if slug is not None and slug != guest_room_slug(result[0]):
                raise NotFound("No such room.")
        return result


def guest_room_slug(user) -> str | None:
    from projects.models import ProjectConversation

    return ProjectConversation.objects.filter(visitor=user).values_list("room__slug", flat=True).first()
