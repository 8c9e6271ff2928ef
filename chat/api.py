"""REST door for rooms and messages (SPEC §4). Each view parses, calls one service or
selector, and renders; errors become {"detail", "code"} in core.api."""

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import is_guest
from chat import selectors, services
from chat.serializers import message_to_dict, room_to_dict, user_to_dict
from core.errors import InvalidImage, InvalidInput, TooLarge, Truncated
from core.ratelimit import check_guest_address_rate

ReplyToOut = inline_serializer(
    "ReplyTo",
    {
        "id": serializers.IntegerField(),
        "seq": serializers.IntegerField(),
        "sender": serializers.DictField(allow_null=True),
        "excerpt": serializers.CharField(allow_null=True, help_text="First 100 characters; null once recalled or deleted."),
        "recalled": serializers.BooleanField(),
        "deleted": serializers.BooleanField(),
    },
    allow_null=True,
)
ReactionsOut = inline_serializer(
    "Reaction",
    {
        "emoji": serializers.CharField(),
        "count": serializers.IntegerField(),
        "users": serializers.ListField(child=serializers.CharField(), help_text="Up to 50 usernames."),
    },
    many=True,
)
_MESSAGE_FIELDS = (
    {
        "id": serializers.IntegerField(),
        "room": serializers.CharField(),
        "seq": serializers.IntegerField(),
        "rev": serializers.IntegerField(),
        "sender": serializers.DictField(allow_null=True),
        "kind": serializers.ChoiceField(choices=["text", "image", "system", "preset", "file"]),
        "body": serializers.CharField(),
        "image": serializers.CharField(allow_null=True),
        "created_at": serializers.DateTimeField(),
        "recalled": serializers.BooleanField(),
        "deleted": serializers.BooleanField(),
        "client_id": serializers.CharField(allow_null=True),
        "html": serializers.CharField(help_text="The body rendered from its Markdown subset, sanitized."),
        "edited_at": serializers.DateTimeField(allow_null=True),
        "reply_to": ReplyToOut,
        "reactions": ReactionsOut,
        "mentions": serializers.ListField(child=serializers.CharField(), help_text="Usernames the message mentions."),
        "mentions_all": serializers.BooleanField(help_text="It mentions every member (@all / @room)."),
        "pinned": serializers.BooleanField(),
        "blocked": serializers.BooleanField(
            required=False, help_text="In lists read over REST: the sender is someone you blocked (collapse it)."
        ),
        "file": serializers.DictField(allow_null=True, help_text="Kind `file`: {name, size, type, url}."),
        "message": serializers.CharField(),
        "user": serializers.CharField(allow_null=True),
        "timestamp": serializers.DateTimeField(),
    }
)
MessageOut = inline_serializer("Message", _MESSAGE_FIELDS)
MessageListOut = inline_serializer("MessageList", _MESSAGE_FIELDS, many=True)
_ROOM_FIELDS = (
    {
        "slug": serializers.CharField(),
        "name": serializers.CharField(),
        "topic": serializers.CharField(allow_blank=True, help_text="What the room is about (owners and admins set it)."),
        "kind": serializers.CharField(),
        "rev": serializers.IntegerField(),
        "last_seq": serializers.IntegerField(),
        "unread_count": serializers.IntegerField(),
        "mention_count": serializers.IntegerField(help_text="Unread messages that mention the user."),
        "member": serializers.BooleanField(),
        "role": serializers.CharField(allow_null=True),
        "peer": serializers.DictField(allow_null=True),
    }
)
RoomOut = inline_serializer("Room", _ROOM_FIELDS)
RoomListOut = inline_serializer("RoomList", _ROOM_FIELDS, many=True)
RoomIn = inline_serializer(
    "RoomCreate",
    {"slug": serializers.CharField(), "name": serializers.CharField(), "kind": serializers.CharField(required=False)},
)
_REPLY_TO_IN = "Optional: the id of the message this one answers (same room)."
SendImageIn = inline_serializer(
    "MessageSendImage",
    {
        "image": serializers.ImageField(help_text="JPEG, PNG, GIF or WebP, up to PARLEY_UPLOAD_MAX_BYTES."),
        "body": serializers.CharField(required=False, help_text="Optional caption."),
        "client_id": serializers.CharField(required=False),
        "reply_to": serializers.IntegerField(required=False, help_text=_REPLY_TO_IN),
    },
)
SendIn = inline_serializer(
    "MessageSend",
    {
        "body": serializers.CharField(),
        "client_id": serializers.CharField(required=False),
        "reply_to": serializers.IntegerField(required=False, allow_null=True, help_text=_REPLY_TO_IN),
    },
)
EditIn = inline_serializer("MessageEdit", {"body": serializers.CharField()})


MAX_INTEGER = 2**63 - 1


def _int_param(request, name: str, *, default=None, low=0, high=None):
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer.") from None
    if value < low or (high is not None and value > high):
        raise InvalidInput(f"{name} must be between {low} and {high}." if high else f"{name} must be ≥ {low}.")
    return value


def _reply_to(request):
    """`reply_to` from JSON (a number) or a form (digits); the service checks the rest."""
    value = request.data.get("reply_to")
    if value in (None, ""):
        return None
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit():
            raise InvalidInput("reply_to must be a message id.")
        return int(value)
    return value


def _room_row(room, membership, unread_count: int, *, mention_count: int | None = None, peer=None) -> dict:
    if mention_count is None:  # memberships_with_unread annotates it
        mention_count = getattr(membership, "mention_count", 0)
    return {
        **room_to_dict(room),
        "unread_count": unread_count,
        "mention_count": mention_count,
        "member": membership is not None,
        "role": membership.role if membership else None,
        # dm and project rooms: the other person, so a client can show who it is with.
        "peer": user_to_dict(peer),
    }


def _text_param(request, name: str, *, max_length: int) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or not raw.strip():
        return None
    if len(raw) > max_length or "\x00" in raw:
        raise InvalidInput(f"{name} must be at most {max_length} characters.")
    return raw.strip()


class RoomListView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[
            OpenApiParameter("limit", int, description="Page size, 1-500 (default 200)."),
            OpenApiParameter("after", str, description="The page after this slug (the last one of the previous page)."),
            OpenApiParameter("q", str, description="Only rooms whose slug or name contains this (any case), 1-80 characters."),
        ],
        responses={200: RoomListOut},
    )
    def get(self, request):
        rows = selectors.room_list_for_user(
            user=request.user,
            after=_text_param(request, "after", max_length=50),
            limit=_int_param(request, "limit", default=selectors.ROOM_PAGE, low=1, high=selectors.ROOM_MAX_PAGE),
            q=_text_param(request, "q", max_length=80),
        )
        peers = selectors.room_peers(user=request.user, rooms=[room for room, _, _ in rows])
        return Response([_room_row(*row, peer=peers.get(row[0].id)) for row in rows])

    @extend_schema(request=RoomIn, responses={201: RoomOut})
    def post(self, request):
        room = services.room_create(
            creator=request.user,
            slug=request.data.get("slug"),
            name=request.data.get("name"),
            kind=request.data.get("kind", "public"),
        )
        membership = selectors.membership_get(user=request.user, room=room)
        return Response(_room_row(room, membership, 0), status=201)


class RoomDetailView(APIView):
    guest_access = True  # a widget guest, in its own conversation only (accounts/authentication.py)
    permission_classes = [AllowAny]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, slug):
        room = selectors.room_get_for_user(user=request.user, slug=slug)
        members = [
            {**user_to_dict(m.user), "role": m.role} for m in selectors.room_members(room=room)
        ]
        membership = selectors.membership_get(user=request.user, room=room)
        unread, mentions = selectors.membership_counted(user=request.user, room=room)
        peer = selectors.room_peers(user=request.user, rooms=[room]).get(room.id)
        return Response({**_room_row(room, membership, unread, mention_count=mentions, peer=peer), "members": members})

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: RoomOut})
    def patch(self, request, slug):
        """Rename the room, set its topic or make it public/private (owner/admins, staff)."""
        room = selectors.room_get_for_user(user=request.user, slug=slug)
        data = request.data if isinstance(request.data, dict) else {}
        changes = {field: data[field] for field in ("name", "topic", "kind") if field in data}
        room = services.room_update(by=request.user, room=room, **changes)
        membership = selectors.membership_get(user=request.user, room=room)
        unread, mentions = selectors.membership_counted(user=request.user, room=room)
        return Response(_room_row(room, membership, unread, mention_count=mentions))


class RoomJoinView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={200: RoomOut})
    def post(self, request, slug):
        room = selectors.room_get_for_user(user=request.user, slug=slug)
        membership = services.room_join(user=request.user, room=room)
        unread, mentions = selectors.membership_counted(user=request.user, room=room)
        return Response(_room_row(room, membership, unread, mention_count=mentions))


class RoomLeaveView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request, slug):
        room = selectors.room_get_for_user(user=request.user, slug=slug)
        services.room_leave(user=request.user, room=room)
        return Response(status=204)


class RoomMembersView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=inline_serializer("Invite", {"username": serializers.CharField()}), responses={201: OpenApiTypes.OBJECT}
    )
    def post(self, request, slug):
        room = selectors.room_get_for_user(user=request.user, slug=slug)
        membership = services.room_invite(by=request.user, room=room, username=request.data.get("username"))
        return Response({**user_to_dict(membership.user), "role": membership.role}, status=201)


class RoomMemberView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=inline_serializer("RoleIn", {"role": serializers.ChoiceField(choices=["admin", "member"])}),
        responses={200: OpenApiTypes.OBJECT},
    )
    def put(self, request, slug, username):
        """The owner appoints or demotes an admin (SPEC §6.4)."""
        room = selectors.room_get_for_moderation(user=request.user, slug=slug)
        membership = services.member_role_set(
            by=request.user, room=room, username=username, role=request.data.get("role")
        )
        return Response({**user_to_dict(membership.user), "role": membership.role})

    @extend_schema(responses={204: None})
    def delete(self, request, slug, username):
        room = selectors.room_get_for_user(user=request.user, slug=slug)
        services.room_remove_member(by=request.user, room=room, username=username)
        return Response(status=204)


class MessageListView(APIView):
    guest_access = True  # a widget guest, in its own conversation only (accounts/authentication.py)
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[
            OpenApiParameter("before_seq", int, description="The page just older than this seq."),
            OpenApiParameter("after_seq", int, description="Messages after this seq (polling)."),
            OpenApiParameter(
                "since_rev",
                int,
                description="Every change after this room revision, tombstones included. Below the room's "
                "retention horizon (changes since purged): 410 `truncated`, reload the latest page instead.",
            ),
            OpenApiParameter("around_seq", int, description="`limit` messages centred on this seq (jump to a message)."),
            OpenApiParameter("limit", int, description="Page size, 1-200 (default 50)."),
        ],
        responses={
            200: MessageListOut,
            410: OpenApiResponse(
                response=inline_serializer(
                    "TruncatedError",
                    {"detail": serializers.CharField(), "code": serializers.ChoiceField(choices=["truncated"])},
                ),
                description="since_rev is below what retention still keeps: reload the latest page.",
            ),
        },
    )
    def get(self, request, slug):
        room = selectors.room_get_for_user(user=request.user, slug=slug)
        limit = _int_param(request, "limit", default=selectors.HISTORY_PAGE, low=1, high=selectors.HISTORY_MAX_PAGE)
        since_rev = _int_param(request, "since_rev")
        around_seq = _int_param(request, "around_seq", high=MAX_INTEGER)
        if since_rev is not None:
            if not selectors.changes_kept_since(room=room, rev=since_rev):
                raise Truncated(
                    f"Changes after revision {since_rev} are no longer kept (retention): reload the latest messages."
                )
            messages = selectors.message_changes_since(room_id=room.id, rev=since_rev, limit=limit)
        elif around_seq is not None:
            messages = selectors.message_around(room=room, seq=around_seq, limit=limit)
        else:
            messages = selectors.message_history(
                room=room,
                before_seq=_int_param(request, "before_seq"),
                after_seq=_int_param(request, "after_seq"),
                limit=limit,
            )
        blocked = selectors.blocked_ids(user=request.user)
        return Response(
            [{**message_to_dict(m, room_slug=room.slug), "blocked": m.sender_id in blocked} for m in messages]
        )

    @extend_schema(
        request={"application/json": SendIn, "multipart/form-data": SendImageIn},
        description="Multipart: `image` (a picture, kind `image`) or `file` (any file up to PARLEY_FILE_MAX_BYTES, "
        "kind `file`; 413 `too_large`, or `quota_exceeded` past PARLEY_USER_QUOTA_BYTES), optional `body`.",
        responses={201: MessageOut, 200: MessageOut},
    )
    def post(self, request, slug):
        room = selectors.room_get_for_user(user=request.user, slug=slug)
        if is_guest(request.user):
            check_guest_address_rate(request.META.get("REMOTE_ADDR"))
        if is_multipart(request):
            refuse_oversized_upload(request)  # before the body is read
        if is_multipart(request) and "file" in request.data:
            message, created = services.message_send_file(
                sender=request.user,
                room=room,
                upload=request.FILES.get("file"),
                body=request.data.get("body", ""),
                client_id=request.data.get("client_id"),
                reply_to=_reply_to(request),
            )
            return Response(message_to_dict(message), status=201 if created else 200)
        if is_multipart(request) and "image" in request.data:
            message, created = services.message_send_image(
                sender=request.user,
                room=room,
                upload=uploaded_file(request, "image"),
                body=request.data.get("body", ""),
                client_id=request.data.get("client_id"),
                reply_to=_reply_to(request),
            )
            return Response(message_to_dict(message), status=201 if created else 200)
        message, created = services.message_send(
            sender=request.user,
            room=room,
            body=request.data.get("body"),
            client_id=request.data.get("client_id"),
            reply_to=_reply_to(request),
        )
        return Response(message_to_dict(message), status=201 if created else 200)


class MessageRecallView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={200: MessageOut})
    def post(self, request, message_id):
        message = services.message_recall(user=request.user, message_id=message_id)
        return Response(message_to_dict(message))


class MessageView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=EditIn, responses={200: MessageOut})
    def patch(self, request, message_id):
        message = services.message_edit(user=request.user, message_id=message_id, body=request.data.get("body"))
        return Response(message_to_dict(message))

    @extend_schema(responses={204: None})
    def delete(self, request, message_id):
        services.message_delete(user=request.user, message_id=message_id)
        return Response(status=204)


class RoomReadView(APIView):
    guest_access = True  # a widget guest, in its own conversation only (accounts/authentication.py)
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=inline_serializer("Read", {"seq": serializers.IntegerField()}),
        responses={200: inline_serializer("ReadResult", {"room": serializers.CharField(), "unread_count": serializers.IntegerField()})},
    )
    def post(self, request, slug):
        room = selectors.room_get_for_user(user=request.user, slug=slug)
        count = services.room_mark_read(user=request.user, room=room, seq=request.data.get("seq"))
        return Response({"room": room.slug, "unread_count": count})


class UnreadView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return Response(selectors.unread_counts(user=request.user))


RoomSettingsOut = inline_serializer(
    "RoomSettings",
    {
        "room": serializers.CharField(),
        "notify": serializers.ChoiceField(choices=["all", "mentions", "none"]),
        "muted_until": serializers.DateTimeField(allow_null=True),
    },
)
RoomSettingsIn = inline_serializer(
    "RoomSettingsUpdate",
    {
        "notify": serializers.ChoiceField(choices=["all", "mentions", "none"], required=False),
        "muted_until": serializers.DateTimeField(allow_null=True, required=False, help_text="ISO 8601; null unmutes."),
    },
)


class RoomSettingsView(APIView):
    """The user's notification settings for one of their rooms (SPEC §6.2)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: RoomSettingsOut})
    def get(self, request, slug):
        room = selectors.room_get_for_user(user=request.user, slug=slug)
        return Response(selectors.room_settings(user=request.user, room=room))

    @extend_schema(request=RoomSettingsIn, responses={200: RoomSettingsOut})
    def put(self, request, slug):
        room = selectors.room_get_for_user(user=request.user, slug=slug)
        if not isinstance(request.data, dict):
            raise InvalidInput("Send a JSON object.")
        return Response(
            services.room_settings_update(
                user=request.user,
                room=room,
                notify=request.data.get("notify"),
                muted_until=request.data.get("muted_until", ...),
            )
        )


class MentionListView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[
            OpenApiParameter("limit", int, description="Page size, 1-200 (default 50)."),
            OpenApiParameter("before", int, description="Only messages with a lower id (the last one of the previous page)."),
        ],
        responses={200: MessageListOut},
    )
    def get(self, request):
        messages = selectors.unread_mentions(
            user=request.user,
            before=_int_param(request, "before", low=1, high=MAX_INTEGER),
            limit=_int_param(request, "limit", default=selectors.MENTIONS_PAGE, low=1, high=selectors.MENTIONS_MAX_PAGE),
        )
        # Mentions by people the user blocks are left out (selectors._mentioning): none is `blocked`.
        return Response([{**message_to_dict(m), "blocked": False} for m in messages])


class DirectMessageView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={200: RoomOut, 201: RoomOut})
    def post(self, request, username):
        room, created = services.dm_get_or_create(user=request.user, other_username=username)
        membership = selectors.membership_get(user=request.user, room=room)
        peer = selectors.room_peers(user=request.user, rooms=[room]).get(room.id)
        unread, mentions = selectors.membership_counted(user=request.user, room=room)
        return Response(
            _room_row(room, membership, unread, mention_count=mentions, peer=peer), status=201 if created else 200
        )


# Uploads, presets, the announcement -----------------------------------------------------


def is_multipart(request) -> bool:
    return (request.content_type or "").startswith("multipart/form-data")


def refuse_oversized_upload(request) -> None:
    """Refuse an upload that cannot fit before reading it all (the image pipeline checks
    the file itself again)."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > settings.PARLEY_UPLOAD_MAX_BYTES + 65_536:
        raise TooLarge(f"Images are limited to {settings.PARLEY_UPLOAD_MAX_BYTES // 1_048_576} MB.")


def uploaded_file(request, field: str):
    upload = request.FILES.get(field)
    if upload is None:
        raise InvalidImage(f"{field} must be a file.")
    return upload


class RoomCloseView(APIView):
    """The project's owner closes a visitor conversation (SPEC §6.6)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={200: RoomOut})
    def post(self, request, slug):
        room = selectors.room_get_for_user(user=request.user, slug=slug)
        room = services.conversation_close(user=request.user, room=room)
        return Response({**room_to_dict(room), "closed": True})
