"""REST door for projects (SPEC §4): the catalogue, publishing, opening a conversation
with an owner, and the owner's inbox. Parse, call one service or selector, render."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.serializers import user_to_dict
from projects import selectors, services
from projects.serializers import conversation_to_dict, project_to_dict, widget_to_dict

ProjectIn = inline_serializer(
    "ProjectCreate",
    {
        "title": serializers.CharField(),
        "slug": serializers.CharField(),
        "description": serializers.CharField(required=False),
    },
)

# Lists (the views return JSON arrays); each item's fields: projects/serializers.py.
ProjectListOut = inline_serializer(
    "Project",
    {"slug": serializers.CharField(), "title": serializers.CharField(), "description": serializers.CharField(),
     "owner": serializers.DictField(), "created_at": serializers.DateTimeField()},
    many=True,
)
ConversationListOut = inline_serializer("ProjectConversation", {"room": serializers.DictField()}, many=True)


class ProjectListView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses={200: ProjectListOut})
    def get(self, request):
        return Response([project_to_dict(p) for p in selectors.project_list()])

    @extend_schema(request=ProjectIn, responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        project = services.project_create(
            owner=request.user,
            title=request.data.get("title"),
            slug=request.data.get("slug"),
            description=request.data.get("description", ""),
        )
        return Response(project_to_dict(project), status=201)


class ProjectChatView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT, 201: OpenApiTypes.OBJECT})
    def post(self, request, slug):
        project = selectors.project_get(slug=slug)
        conversation, created = services.project_chat_open(visitor=request.user, project=project)
        conversation.project = project
        data = conversation_to_dict(conversation)
        # The room, with its peer, in the shape GET /api/rooms/ uses.
        body = {**data["room"], "peer": project_to_dict(project)["owner"], "conversation": data}
        return Response(body, status=201 if created else 200)


class ProjectInboxView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: ConversationListOut})
    def get(self, request, slug):
        project = selectors.project_get(slug=slug)
        rows = selectors.project_inbox(user=request.user, project=project)
        for conversation, _ in rows:
            conversation.project = project
        return Response([conversation_to_dict(c, unread_count=n) for c, n in rows])


# The website widget (SPEC §6.6) ------------------------------------------------------------

WidgetIO = inline_serializer(
    "Widget",
    {"enabled": serializers.BooleanField(), "origins": serializers.ListField(child=serializers.CharField())},
)
GuestIn = inline_serializer(
    "GuestCreate",
    {"display_name": serializers.CharField(required=False), "email": serializers.EmailField(required=False)},
)
GuestOut = inline_serializer(
    "Guest", {"token": serializers.CharField(), "room": serializers.CharField(), "user": serializers.DictField()}
)


class WidgetView(APIView):
    """The owner's widget settings: GET shows them, PUT changes them."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: WidgetIO})
    def get(self, request, slug):
        project = selectors.project_get(slug=slug)
        return Response(widget_to_dict(selectors.widget_get(user=request.user, project=project)))

    @extend_schema(request=WidgetIO, responses={200: WidgetIO})
    def put(self, request, slug):
        project = selectors.project_get(slug=slug)
        widget = services.widget_update(
            user=request.user, project=project, enabled=request.data.get("enabled"), origins=request.data.get("origins")
        )
        return Response(widget_to_dict(widget))


class GuestListView(APIView):
    """A visitor of the owner's site starts a conversation without an account. The answer's
    token is the guest's credential (REST: `Authorization: Token`, socket: the `auth` frame)."""

    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(request=GuestIn, responses={201: GuestOut})
    def post(self, request, project):
        found = selectors.project_get(slug=project)
        guest, token, room = services.guest_create(
            project=found,
            address=request.META.get("REMOTE_ADDR"),
            display_name=request.data.get("display_name"),
            email=request.data.get("email"),
        )
        return Response({"token": token, "room": room.slug, "user": user_to_dict(guest.user)}, status=201)


class GuestBlockView(APIView):
    """The owner blocks a guest of their project (its token and sockets stop working)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    def post(self, request, project, username):
        found = selectors.project_get(slug=project)
        guest = services.guest_block(user=request.user, project=found, username=username)
        return Response({"username": guest.user.username, "blocked": True})
