"""REST for moderation and safety (SPEC §6.4): roles, mutes, bans, suspensions, pins,
reports, the audit log and blocks. Every check is the services' and selectors'
(chat.services.moderation, chat.services.blocks)."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import selectors, services
from chat.api import MessageListOut, MessageOut
from chat.models import Room
from chat.serializers import message_to_dict, user_to_dict
from core.errors import InvalidInput

UsernameIn = inline_serializer("Username", {"username": serializers.CharField()})
TimedIn = inline_serializer(
    "TimedRestriction",
    {
        "username": serializers.CharField(),
        "minutes": serializers.IntegerField(required=False, allow_null=True, help_text="1 to 527040; bans: null or absent = until lifted."),
    },
)
TimedOut = inline_serializer(
    "Restriction", {"username": serializers.CharField(), "until": serializers.DateTimeField(allow_null=True)}
)
_REPORT_FIELDS = (
    {
        "id": serializers.IntegerField(),
        "message": serializers.DictField(allow_null=True),
        "reporter": serializers.CharField(allow_null=True),
        "reason": serializers.CharField(),
        "created_at": serializers.DateTimeField(),
        "resolved": serializers.BooleanField(),
    }
)
ReportOut = inline_serializer("Report", _REPORT_FIELDS)
ReportListOut = inline_serializer("ReportList", _REPORT_FIELDS, many=True)
AuditOut = inline_serializer(
    "AuditEntry",
    {
        "actor": serializers.CharField(allow_null=True),
        "action": serializers.CharField(),
        "target": serializers.CharField(allow_null=True),
        "message": serializers.IntegerField(allow_null=True),
        "detail": serializers.CharField(),
        "at": serializers.DateTimeField(),
    },
    many=True,
)


def _room(request, slug: str) -> Room:
    return selectors.room_get_for_moderation(user=request.user, slug=slug)


def _until(row) -> dict:
    return {"username": row.user.username, "until": row.until.isoformat() if row.until else None}


def messages_for(user, messages, *, room_slug: str | None = None) -> list[dict]:
    """Message objects as `user` reads them: `blocked` marks those of people they blocked."""
    blocked = selectors.blocked_ids(user=user)
    return [
        {**message_to_dict(m, room_slug=room_slug), "blocked": m.sender_id in blocked} for m in messages
    ]


def report_to_dict(report) -> dict:
    message = report.message
    return {
        "id": report.id,
        "message": message_to_dict(message) if message is not None else None,
        "reporter": report.reporter.username if report.reporter else None,
        "reason": report.reason,
        "created_at": report.created_at.isoformat(),
        "resolved": report.resolved,
    }


class RoomMutesView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=TimedIn, responses={201: TimedOut})
    def post(self, request, slug):
        mute = services.room_mute(
            by=request.user, room=_room(request, slug), username=request.data.get("username"),
            minutes=request.data.get("minutes"),
        )
        return Response(_until(mute), status=201)


class RoomMuteView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={204: None})
    def delete(self, request, slug, username):
        services.room_unmute(by=request.user, room=_room(request, slug), username=username)
        return Response(status=204)


class RoomBansView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: inline_serializer(
        "BanList", {"user": serializers.DictField(), "until": serializers.DateTimeField(allow_null=True)}, many=True
    )})
    def get(self, request, slug):
        room, _ = selectors.room_moderation_get(user=request.user, slug=slug)
        return Response(
            [{"user": user_to_dict(b.user), "until": b.until.isoformat() if b.until else None} for b in selectors.room_bans(room=room)]
        )

    @extend_schema(request=TimedIn, responses={201: TimedOut})
    def post(self, request, slug):
        ban = services.room_ban(
            by=request.user, room=_room(request, slug), username=request.data.get("username"),
            minutes=request.data.get("minutes"),
        )
        return Response(_until(ban), status=201)


class RoomBanView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={204: None})
    def delete(self, request, slug, username):
        services.room_unban(by=request.user, room=_room(request, slug), username=username)
        return Response(status=204)


class UserSuspendView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=inline_serializer("Suspend", {"minutes": serializers.IntegerField(required=False, allow_null=True)}),
        responses={200: TimedOut},
    )
    def post(self, request, username):
        suspension = services.user_suspend(by=request.user, username=username, minutes=request.data.get("minutes"))
        return Response(_until(suspension))

    @extend_schema(responses={204: None})
    def delete(self, request, username):
        services.user_unsuspend(by=request.user, username=username)
        return Response(status=204)


class MessagePinView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={200: MessageOut})
    def post(self, request, message_id):
        return Response(message_to_dict(services.message_pin(user=request.user, message_id=message_id, pinned=True)))

    @extend_schema(responses={200: MessageOut})
    def delete(self, request, message_id):
        return Response(message_to_dict(services.message_pin(user=request.user, message_id=message_id, pinned=False)))


class RoomPinsView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses={200: MessageListOut})
    def get(self, request, slug):
        room = selectors.room_get_for_user(user=request.user, slug=slug)
        return Response(messages_for(request.user, selectors.pinned_messages(room=room), room_slug=room.slug))


class MessageReportView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=inline_serializer("ReportIn", {"reason": serializers.CharField(required=False)}),
        responses={201: ReportOut},
    )
    def post(self, request, message_id):
        report = services.report_create(user=request.user, message_id=message_id, reason=request.data.get("reason", ""))
        return Response(
            {"id": report.id, "reporter": request.user.username, "reason": report.reason,
             "created_at": report.created_at.isoformat(), "resolved": False, "message": None},
            status=201,
        )


class ReportListView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[OpenApiParameter("resolved", str, description="false (default): the open queue; true; all.")],
        responses={200: ReportListOut},
    )
    def get(self, request):
        raw = request.query_params.get("resolved")
        if raw not in (None, "true", "false", "all"):
            raise InvalidInput("resolved must be true, false or all.")
        resolved = {None: False, "false": False, "true": True, "all": None}[raw]
        return Response([report_to_dict(r) for r in selectors.report_list(user=request.user, resolved=resolved)])


class ReportResolveView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={200: ReportOut})
    def post(self, request, report_id):
        return Response(report_to_dict(services.report_resolve(by=request.user, report_id=report_id)))


class RoomAuditView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: AuditOut})
    def get(self, request, slug):
        entries = selectors.room_audit(user=request.user, slug=slug)
        return Response(
            [
                {
                    "actor": e.actor.username if e.actor else None,
                    "action": e.action,
                    "target": e.target.username if e.target else None,
                    "message": e.message_id,
                    "detail": e.detail,
                    "at": e.at.isoformat(),
                }
                for e in entries
            ]
        )


class BlocksView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: inline_serializer("BlockList", {"username": serializers.CharField()}, many=True)})
    def get(self, request):
        return Response([user_to_dict(b.blocked) for b in selectors.block_list(user=request.user)])

    @extend_schema(request=UsernameIn, responses={201: None})
    def post(self, request):
        block = services.block_add(user=request.user, username=request.data.get("username"))
        return Response(user_to_dict(block.blocked), status=201)

    @extend_schema(request=UsernameIn, responses={204: None})
    def delete(self, request):
        services.block_remove(user=request.user, username=request.data.get("username"))
        return Response(status=204)
