"""REST for what a message gathers after it is sent: its earlier versions and its
reactions (SPEC §6.1). Sending, editing, recalling and deleting are in chat/api.py."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import selectors, services
from chat.api import ReactionsOut
from chat.serializers import message_reactions

VersionsOut = inline_serializer(
    "MessageVersion", {"body": serializers.CharField(), "edited_at": serializers.DateTimeField()}, many=True
)
ReactionsResult = inline_serializer(
    "MessageReactions",
    {
        "id": serializers.IntegerField(),
        "room": serializers.CharField(),
        "rev": serializers.IntegerField(),
        "reactions": ReactionsOut,
    },
)


class MessageHistoryView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses={200: VersionsOut})
    def get(self, request, message_id):
        versions = selectors.message_versions(user=request.user, message_id=message_id)
        return Response([{"body": body, "edited_at": at.isoformat()} for body, at in versions])


class ReactionView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={200: ReactionsResult})
    def put(self, request, message_id, emoji):
        message = services.reaction_add(user=request.user, message_id=message_id, emoji=emoji)
        return Response(
            {"id": message.id, "room": message.room.slug, "rev": message.rev, "reactions": message_reactions(message)}
        )

    @extend_schema(responses={204: None})
    def delete(self, request, message_id, emoji):
        services.reaction_remove(user=request.user, message_id=message_id, emoji=emoji)
        return Response(status=204)
