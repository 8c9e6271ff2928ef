"""REST door for Web Push (SPEC §6.2): the VAPID key and the user's subscriptions."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import webpush
from chat.services import push

SubscriptionIn = inline_serializer(
    "PushSubscriptionIn",
    {
        "endpoint": serializers.URLField(),
        "keys": inline_serializer("PushKeys", {"p256dh": serializers.CharField(), "auth": serializers.CharField()}),
    },
)
_SUBSCRIPTION_FIELDS = (
    {
        "endpoint": serializers.URLField(),
        "created_at": serializers.DateTimeField(),
        "last_success_at": serializers.DateTimeField(allow_null=True),
        "last_error": serializers.CharField(allow_null=True),
        "last_error_at": serializers.DateTimeField(allow_null=True),
    }
)
SubscriptionOut = inline_serializer("PushSubscription", _SUBSCRIPTION_FIELDS)


def subscription_to_dict(subscription) -> dict:
    def iso(value):
        return value.isoformat() if value else None

    return {
        "endpoint": subscription.endpoint,
        "created_at": iso(subscription.created_at),
        "last_success_at": iso(subscription.last_success_at),
        "last_error": subscription.last_error or None,
        "last_error_at": iso(subscription.last_error_at),
    }


class PushKeyView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: inline_serializer("PushKey", {"key": serializers.CharField()})})
    def get(self, request):
        return Response({"key": webpush.vapid_public_key()})


class PushSubscriptionsView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: inline_serializer("PushSubscriptionList", _SUBSCRIPTION_FIELDS, many=True)})
    def get(self, request):
        return Response([subscription_to_dict(s) for s in push.push_subscriptions(user=request.user)])

    @extend_schema(request=SubscriptionIn, responses={201: SubscriptionOut})
    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        subscription = push.push_subscribe(user=request.user, endpoint=data.get("endpoint"), keys=data.get("keys"))
        return Response(subscription_to_dict(subscription), status=201)

    @extend_schema(request=inline_serializer("PushUnsubscribe", {"endpoint": serializers.URLField()}), responses={204: None})
    def delete(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        push.push_unsubscribe(user=request.user, endpoint=data.get("endpoint"))
        return Response(status=204)
