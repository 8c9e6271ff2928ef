"""The only door to MEDIA_ROOT (MEDIA_URL, /media/...). Nothing else serves uploads.

    messages/<file>      a message's picture: only to those who may read its room
                         (chat.selectors), while the message is live; 404 otherwise
    avatars/<file>,      public: profile pictures and the announcement's background
    announcement/<file>
    presets/<file>       staff only (presets are staff tools)

Anything else is 404. Browsers authenticate with the session cookie (an <img> tag sends
it), API clients with `Authorization: Token`. With PARLEY_MEDIA_ACCEL_PREFIX set, Django
only decides and nginx sends the file (X-Accel-Redirect to an `internal` location).
"""

import mimetypes
import re

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import FileResponse, Http404, HttpResponse
from django.utils._os import safe_join
from django.views.decorators.http import require_safe
from rest_framework.exceptions import AuthenticationFailed

from accounts.authentication import TokenAuthentication
from chat import selectors

PUBLIC_FOLDERS = ("avatars", "announcement")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}\.(?:jpg|jpeg|png|gif|webp)$")


def _viewer(request):
    if request.user.is_authenticated:
        return request.user
    try:
        found = TokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        found = None
    return found[0] if found else AnonymousUser()


@require_safe
def serve(request, folder: str, filename: str):
    if not _NAME.fullmatch(filename):
        raise Http404()
    name = f"{folder}/{filename}"
    if folder == "messages":
        if not selectors.message_image_may_read(user=_viewer(request), name=name):
            raise Http404()
        cache = "private, max-age=3600"
    elif folder == "presets":
        if not selectors.preset_image_may_read(user=_viewer(request)):
            raise Http404()
        cache = "private, max-age=3600"
    elif folder in PUBLIC_FOLDERS:
        cache = "public, max-age=86400"  # every upload gets a new name
    else:
        raise Http404()
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    accel = settings.PARLEY_MEDIA_ACCEL_PREFIX
    if accel:
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = f"{accel.rstrip('/')}/{name}"
    else:
        try:
            path = safe_join(settings.MEDIA_ROOT, name)
            response = FileResponse(open(path, "rb"), content_type=content_type)  # noqa: SIM115 (FileResponse closes it)
        except (OSError, ValueError):
            raise Http404() from None
    response["Cache-Control"] = cache
    response["Content-Disposition"] = "inline"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
