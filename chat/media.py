"""The only door to MEDIA_ROOT (MEDIA_URL, /media/...). Nothing else serves uploads.

    messages/<file>      a message's picture: only to those who may read its room
                         (chat.selectors), while the message is live; 404 otherwise
    avatars/<file>,      public: profile pictures and the announcement's background
    announcement/<file>
    presets/<file>       staff only (presets are staff tools)
    files/<name>         a `file` message's file: only to readers of its room while the
                         message is live, always as a download (attachment, nosniff,
                         sandboxed), with the sender's cleaned name

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
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_safe
from rest_framework.exceptions import AuthenticationFailed

from accounts.authentication import ActiveTokenAuthentication
from chat import selectors

PUBLIC_FOLDERS = ("avatars", "announcement")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}\.(?:jpg|jpeg|png|gif|webp)$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def _viewer(request):
    if request.user.is_authenticated:
        return request.user
    try:
        found = ActiveTokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        found = None
    return found[0] if found else AnonymousUser()


@require_safe
def serve(request, folder: str, filename: str):
    if folder == "files":
        return _serve_file(request, filename)
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
    response = _send(name, content_type)
    response["Cache-Control"] = cache
    response["Content-Disposition"] = "inline"
    return response


def _serve_file(request, filename: str):
    """A file message's file, as a download only: whatever it holds (HTML, SVG, a
    script), the browser neither renders nor sniffs it, and it runs sandboxed if opened."""
    if not _FILE_NAME.fullmatch(filename):
        raise Http404()
    name = f"files/{filename}"
    message = selectors.message_file_for_reader(user=_viewer(request), name=name)
    if message is None:
        raise Http404()
    response = _send(name, "application/octet-stream")
    response["Cache-Control"] = "private, max-age=3600"
    response["Content-Disposition"] = content_disposition_header(True, message.file_name)
    return response


def _send(name: str, content_type: str):
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
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["X-Content-Type-Options"] = "nosniff"
    return response
