"""Staff tools over REST: presets and the global announcement (SPEC §4). Staff checks are
the services' and selectors' (chat.services.preset_post, announcement_set)."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import events, selectors, services
from chat.api import MessageOut, is_multipart, refuse_oversized_upload, uploaded_file
from chat.serializers import message_to_dict
from core.errors import AuthRequired

PresetOut = inline_serializer(
    "Preset",
    {
        "id": serializers.IntegerField(),
        "title": serializers.CharField(),
        "body": serializers.CharField(),
        "image": serializers.CharField(allow_null=True),
    },
    many=True,
)
AnnouncementOut = inline_serializer(
    "Announcement",
    {"type": serializers.CharField(), "text": serializers.CharField(), "image": serializers.CharField(allow_null=True)},
)


def _preset_to_dict(preset) -> dict:
    return {"id": preset.id, "title": preset.title, "body": preset.body, "image": preset.image.url if preset.image else None}


class PresetListView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: PresetOut})
    def get(self, request):
        return Response([_preset_to_dict(p) for p in selectors.preset_list(user=request.user)])


class PresetPostView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=inline_serializer("PresetPost", {"client_id": serializers.CharField(required=False)}),
        responses={201: MessageOut, 200: MessageOut},
    )
    def post(self, request, slug, preset_id):
        room = selectors.room_get_for_user(user=request.user, slug=slug)
        message, created = services.preset_post(
            by=request.user, room=room, preset_id=preset_id, client_id=request.data.get("client_id")
        )
        return Response(message_to_dict(message), status=201 if created else 200)


class AnnouncementView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses={200: AnnouncementOut})
    def get(self, request):
        return Response(events.announcement(selectors.announcement_get()))

    @extend_schema(
        request={
            "application/json": inline_serializer(
                "AnnouncementSet",
                {
                    "text": serializers.CharField(required=False),
                    "image": serializers.CharField(required=False, allow_null=True, help_text="null removes the image"),
                },
            ),
            "multipart/form-data": inline_serializer(
                "AnnouncementSetImage",
                {"text": serializers.CharField(required=False), "image": serializers.ImageField(required=False)},
            ),
        },
        responses={200: AnnouncementOut},
    )
    def put(self, request):
        if not request.user.is_authenticated:
            raise AuthRequired()
        image, clear = None, False
        if is_multipart(request):
            refuse_oversized_upload(request)
            if "image" in request.data:
                image = uploaded_file(request, "image")
        else:
            clear = "image" in request.data and request.data["image"] in (None, "")
        announcement = services.announcement_set(
            by=request.user, text=request.data.get("text"), image=image, clear_image=clear
        )
        return Response(events.announcement(announcement))
