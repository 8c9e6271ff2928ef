"""The answer to a login refused by django-axes (too many wrong passwords, SPEC §4).

The API gets the documented JSON error, 429 `rate_limited` with a Retry-After header (the
same code as any other "slow down"); the HTML login page gets a page saying when to try
again. Nothing says whether the username exists.
"""

from axes.helpers import get_cool_off
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _


def lockout_response(request, original_response=None, credentials=None):
    cool_off = get_cool_off(request)
    seconds = int(cool_off.total_seconds()) if cool_off else 900
    detail = _("Too many failed login attempts. Try again in %(minutes)d minutes.") % {
        "minutes": max(1, round(seconds / 60))
    }
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": detail, "code": "rate_limited", "retry_after": seconds}, status=429)
    else:
        response = render(request, "accounts/locked_out.html", {"detail": detail}, status=429)
    response["Retry-After"] = str(seconds)
    return response
