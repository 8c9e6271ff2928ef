"""REST door for search (SPEC §6.3): `GET /api/search/`."""

from datetime import UTC, datetime, time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import search, selectors
from chat.api import _MESSAGE_FIELDS, _int_param, _text_param
from chat.serializers import message_to_dict
from core.errors import InvalidInput, NotFound
from core.ratelimit import check_rate

SearchOut = inline_serializer(
    "SearchResults",
    {
        "results": inline_serializer(
            "SearchResult",
            {
                **_MESSAGE_FIELDS,
                "highlights": serializers.ListField(
                    child=serializers.ListField(child=serializers.IntegerField()),
                    help_text="[[start, end], …]: code-point offsets into `body`, end-exclusive, merged, in order.",
                ),
            },
            many=True,
        ),
        "next_cursor": serializers.CharField(allow_null=True, help_text="Pass as `cursor` for the next page."),
    },
)


def _when(request, name: str):
    raw = _text_param(request, name, max_length=40)
    if raw is None:
        return None
    try:
        moment = parse_datetime(raw)
        if moment is None and (day := parse_date(raw)) is not None:
            moment = datetime.combine(day, time.min)
    except ValueError:
        moment = None
    try:
        moment = (moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (AttributeError, OverflowError):  # None, or out of range once in UTC
        raise InvalidInput(f"{name} must be an ISO date or date-time.") from None
    return moment


def check_search_rate(request) -> None:
    per_minute = settings.PARLEY_SEARCH_PER_MINUTE
    who = f"user:{request.user.pk}" if request.user.is_authenticated else f"ip:{request.META.get('REMOTE_ADDR')}"
    check_rate(
        f"search:{who}", per_hour=per_minute * 60, burst=per_minute,
        detail="You are searching too often; try again in {seconds} s.",
    )


def search_page(request) -> dict:
    """Parse the query string, search, and render a page (the API and the /search/ page)."""
    q = _text_param(request, "q", max_length=search.MAX_QUERY)
    if q is None:
        raise InvalidInput("q is required.")
    slug = _text_param(request, "room", max_length=50)
    room = selectors.room_get_for_user(user=request.user, slug=slug) if slug else None
    username = _text_param(request, "from", max_length=150)
    sender = None
    if username:
        sender = get_user_model().objects.filter(username=username).first()
        if sender is None:
            raise NotFound("No such user.")
    cursor = _text_param(request, "cursor", max_length=20)
    if cursor is not None and not (cursor.isascii() and cursor.isdigit() and 0 < int(cursor) < 2**63):
        raise InvalidInput("cursor is not valid.")
    check_search_rate(request)
    found, next_cursor = selectors.message_search(
        user=request.user, q=q, room=room, sender=sender, before=_when(request, "before"), after=_when(request, "after"),
        limit=_int_param(request, "limit", default=selectors.SEARCH_PAGE, low=1, high=selectors.SEARCH_MAX_PAGE),
        cursor=int(cursor) if cursor else None,
    )
    blocked = selectors.blocked_ids(user=request.user)
    return {
        "results": [
            {**message_to_dict(m), "blocked": m.sender_id in blocked, "highlights": marks} for m, marks in found
        ],
        "next_cursor": str(next_cursor) if next_cursor is not None else None,
    }


class SearchView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, required=True, description='Words and "quoted phrases"; every one must match. Up to 200 characters.'),
            OpenApiParameter("room", str, description="Only this room (slug)."),
            OpenApiParameter("from", str, description="Only messages from this username."),
            OpenApiParameter("after", str, description="ISO date or date-time: sent at or after it (UTC unless given)."),
            OpenApiParameter("before", str, description="ISO date or date-time: sent before it."),
            OpenApiParameter("limit", int, description="Page size, 1-100 (default 20)."),
            OpenApiParameter("cursor", str, description="`next_cursor` of the previous page."),
        ],
        responses={200: SearchOut},
    )
    def get(self, request):
        return Response(search_page(request))
