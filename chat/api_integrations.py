"""REST doors for integrations and data (SPEC §6.5): a room's incoming webhooks, the URL
they post to, and the exports."""

from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import exports, selectors, services
from chat.services.webhooks import PayloadError, parse_payload
from core.errors import AppError, InvalidInput, NotFound, RateLimited, TooLarge


def _webhook_fields() -> dict:
    return {
        "id": serializers.IntegerField(),
        "name": serializers.CharField(),
        "url": serializers.CharField(help_text="POST here; the URL holds the webhook's secret token."),
        "created_at": serializers.DateTimeField(),
    }


WebhookOut = inline_serializer("Webhook", _webhook_fields())
WebhookListOut = inline_serializer("WebhookList", _webhook_fields(), many=True)


def _webhook_row(request, webhook) -> dict:
    return {
        "id": webhook.id,
        "name": webhook.name,
        "url": request.build_absolute_uri(f"/hooks/{webhook.token}"),
        "created_at": webhook.created_at.isoformat(),
    }


class WebhookListView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: WebhookListOut})
    def get(self, request, slug):
        room = selectors.room_get_for_user(user=request.user, slug=slug)
        return Response([_webhook_row(request, w) for w in services.webhook_list(user=request.user, room=room)])

    @extend_schema(request=inline_serializer("WebhookCreate", {"name": serializers.CharField()}), responses={201: WebhookOut})
    def post(self, request, slug):
        room = selectors.room_get_for_user(user=request.user, slug=slug)
        webhook = services.webhook_create(user=request.user, room=room, name=request.data.get("name"))
        return Response(_webhook_row(request, webhook), status=201)


class WebhookView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={204: None})
    def delete(self, request, slug, webhook_id):
        room = selectors.room_get_for_user(user=request.user, slug=slug)
        services.webhook_revoke(user=request.user, room=room, webhook_id=webhook_id)
        return Response(status=204)


def _plain(text: str, status: int) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")


@csrf_exempt  # tools post here with the token in the URL; there is no session
def webhook_receive(request, token):
    """The incoming-webhook URL: answers as Slack does (`ok`, or a short plain reason)."""
    if request.method != "POST":
        return _plain("invalid_method", 405)
    # A dead or guessed URL costs one indexed look-up, never the reading or parsing of its body.
    if not _token_live(token):
        return _plain("no_service", 404)
    try:
        body = request.body
        form = request.POST if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data") else None
    except Exception:  # RequestDataTooBig and friends: Django's own answer would be HTML
        return _plain("request_too_large", 413)
    try:
        post = parse_payload(content_type=request.content_type or "", body=body, form=form)
        services.webhook_post(token=token, payload=post)
    except PayloadError as error:
        return _plain(error.reason, error.status)
    except NotFound:
        return _plain("no_service", 404)
    except RateLimited as error:
        response = _plain("rate_limited", 429)
        response["Retry-After"] = str(error.retry_after)
        return response
    except TooLarge:
        return _plain("msg_too_long", 400)
    except AppError as error:
        return _plain(f"invalid_payload: {error.detail}", 400)
    return _plain("ok", 200)


def _token_live(token: str) -> bool:
    from chat.models import Webhook

    return Webhook.objects.filter(token=token, revoked_at__isnull=True).exists()


# Exports ------------------------------------------------------------------------------------


class RoomExportView(APIView):
    """The room's whole history, streamed in seq order (chat/exports.py)."""

    permission_classes = [AllowAny]

    def perform_content_negotiation(self, request, force=False):
        # `format` is this view's own parameter, not DRF's renderer override.
        renderer = self.get_renderers()[0]
        return renderer, renderer.media_type

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["jsonl", "html"], description="Default jsonl.")],
        responses={(200, "application/x-ndjson"): OpenApiTypes.STR, (200, "text/html"): OpenApiTypes.STR},
    )
    def get(self, request, slug):
        room = selectors.room_get_for_user(user=request.user, slug=slug)
        kind = request.query_params.get("format", "jsonl")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        if kind == "jsonl":
            response = StreamingHttpResponse(exports.room_jsonl(room), content_type="application/x-ndjson; charset=utf-8")
        elif kind == "html":
            response = StreamingHttpResponse(
                exports.room_html(room, absolute=request.build_absolute_uri, labels=exports.html_labels()), content_type="text/html; charset=utf-8"
            )
        else:
            raise InvalidInput("format must be jsonl or html.")
        response["Content-Disposition"] = f'attachment; filename="{room.slug}-{stamp}.{kind}"'
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "no-store"
        return response


class MeExportView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY})
    def get(self, request):
        handle = exports.user_zip(request.user)
        response = StreamingHttpResponse(exports.file_chunks(handle), content_type="application/zip")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="parley-{request.user.username}-{stamp}.zip"'
        response["Cache-Control"] = "no-store"
        return response
