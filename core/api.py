"""DRF glue: every API error is JSON {"detail", "code"} with the status SPEC §4 names."""

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import AppError

# DRF's own codes mapped onto the ones SPEC §4 promises clients.
_DRF_CODES = {
    exceptions.NotAuthenticated: "auth_required",
    exceptions.AuthenticationFailed: "auth_required",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "invalid",
    exceptions.NotAcceptable: "invalid",
    exceptions.UnsupportedMediaType: "invalid",
    exceptions.ParseError: "invalid",
    exceptions.ValidationError: "invalid",
    exceptions.Throttled: "rate_limited",
}


def _flatten(detail) -> str:
    """One readable sentence out of DRF's nested error structures."""
    if isinstance(detail, dict):
        parts = []
        for field, value in detail.items():
            text = _flatten(value)
            parts.append(text if field == "non_field_errors" else f"{field}: {text}")
        return " ".join(parts)
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    return str(detail)


def exception_handler(exc, context):
    if isinstance(exc, AppError):
        response = Response(exc.as_dict(), status=exc.http_status)
        if exc.http_status == status.HTTP_429_TOO_MANY_REQUESTS:
            response["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, RequestDataTooBig):
        # A body over DATA_UPLOAD_MAX_MEMORY_SIZE: Django would answer with an HTML 400.
        return Response({"detail": "The request body is too large.", "code": "too_large"}, status=413)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "invalid")
    body = {"detail": _flatten(getattr(exc, "detail", str(exc))), "code": code}
    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        body["fields"] = exc.detail
    response.data = body
    return response


class ObjectJSONParser(JSONParser):
    """JSON bodies must be objects: views read fields with .get(), and `[null]` must be a
    400 `invalid`, not a server error."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            # "[[[[…" nested deeper than the parser recurses: DRF only catches ValueError.
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
        if not isinstance(data, dict):
            raise exceptions.ParseError("The JSON body must be an object.")
        return data


@csrf_exempt  # answers every method with a JSON 404, CSRF cookie or not
def api_not_found(request, *args, **kwargs):
    return JsonResponse({"detail": "No such API endpoint.", "code": "not_found"}, status=404)
