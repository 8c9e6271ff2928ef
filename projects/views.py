"""HTML door for projects: the catalogue, publishing and editing, the project page and
the owner's inbox, all in the app's shell (sidebar beside them)."""

from functools import cache
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import cache_control
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat.views import sidebar_context
from core.errors import AppError, NotAllowed, NotFound
from projects import selectors, services
from projects.forms import ProjectEditForm, ProjectForm


def _project(slug):
    try:
        return selectors.project_get(slug=slug)
    except NotFound:
        raise Http404("No such project.") from None


def _render(request, template, context, status=200):
    return render(request, template, {**context, "sidebar": sidebar_context(user=request.user)}, status=status)


def project_list(request):
    return _render(request, "projects/list.html", {"projects": selectors.project_list()})


@login_required
@require_http_methods(["GET", "POST"])
def project_create(request):
    """A refused slug (taken, malformed) keeps the form open with what was typed."""
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            project = services.project_create(
                owner=request.user,
                title=data["title"],
                slug=data["slug"].strip().lower() or services.project_slug_suggest(data["title"]),
                description=data["description"],
            )
        except AppError as error:
            form.add_error("slug" if "slug" in error.detail.lower() else None, _(error.detail))
        else:
            return redirect("project", slug=project.slug)
    status = 400 if form.errors else 200
    return _render(request, "projects/form.html", {"form": form, "heading": _("New project")}, status)


@login_required
@require_http_methods(["GET", "POST"])
def project_edit(request, slug):
    project = _project(slug)
    if request.user.pk != project.owner_id:
        raise PermissionDenied
    initial = {"title": project.title, "description": project.description}
    form = ProjectEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.project_update(by=request.user, project=project, **form.cleaned_data)
        except AppError as error:
            form.add_error(None, _(error.detail))
        else:
            messages.success(request, _("Saved."))
            return redirect("project", slug=project.slug)
    status = 400 if form.errors else 200
    return _render(request, "projects/form.html", {"form": form, "project": project, "heading": project.title}, status)


def project_detail(request, slug):
    # The widget's snippet names this server as the visitor's browser will reach it.
    script_url = request.build_absolute_uri("/widget.js")
    return _render(request, "projects/detail.html", {"project": _project(slug), "widget_script_url": script_url})


@login_required
@require_POST
def project_chat(request, slug):
    project = _project(slug)
    try:
        conversation, _created = services.project_chat_open(visitor=request.user, project=project)
    except AppError as error:
        messages.error(request, _(error.detail))
        return redirect("project", slug=slug)
    return redirect("room", slug=conversation.room.slug)


@login_required
def project_inbox(request, slug):
    """The owner's conversations; chat/static/chat/js/inbox.js keeps it live."""
    project = _project(slug)
    try:
        rows = selectors.project_inbox(user=request.user, project=project)
    except NotAllowed:
        raise PermissionDenied from None
    return _render(request, "projects/inbox.html", {"project": project, "rows": rows})


# The website widget (SPEC §6.6) ------------------------------------------------------------

WIDGET_LANGUAGES = {"en": "en", "zh-hans": "zh-hans", "zh-hant": "zh-hant"}


def widget_language(code: str) -> str | None:
    """The widget's language for a host page's `lang` (or the browser's): zh-TW, zh-HK and
    zh-Hant are traditional Chinese, other zh simplified, en English; else None."""
    code = (code or "").strip().lower().replace("_", "-")
    if code.startswith("zh"):
        return "zh-hant" if any(part in code for part in ("hant", "-tw", "-hk", "-mo")) else "zh-hans"
    if code.startswith("en"):
        return "en"
    return None


@require_GET
@xframe_options_exempt
def widget_frame(request, project):
    """The page inside the widget's iframe. Only the project owner's listed sites may frame
    it: `Content-Security-Policy: frame-ancestors` is exactly those origins (a widget that is
    off, or a project that does not exist, is a 404 nobody may frame)."""
    widget = selectors.widget_for_embedding(slug=project)
    if widget is None or not widget.origins:
        raise Http404("No chat widget here.")
    language = widget_language(request.GET.get("lang", "")) or translation.get_language()
    with translation.override(language):
        strings = {
            "closed": translation.gettext("This conversation is closed."),
            "blocked": translation.gettext("This conversation is no longer available."),
            "failed": translation.gettext("Something went wrong. Please try again."),
            "busy": translation.gettext("Too many attempts. Please try again later."),
            "you": translation.gettext("You"),
            "offline": translation.gettext("Reconnecting…"),
        }
        response = render(
            request,
            "projects/widget_frame.html",
            {
                "project": widget.project,
                "language": language,
                "strings": strings,
                "email_enabled": settings.PARLEY_EMAIL_ENABLED,
            },
        )
    response._csp_replace = {"frame-ancestors": list(widget.origins)}
    response["Cache-Control"] = "no-store"
    return response


@cache
def _widget_script() -> bytes:
    return (Path(__file__).parent / "static" / "projects" / "widget.js").read_bytes()


@require_GET
@cache_control(public=True, max_age=300)
def widget_script(request):
    """`/widget.js`, the script the owner's site embeds (projects/static/projects/widget.js)."""
    return HttpResponse(_widget_script(), content_type="text/javascript; charset=utf-8")
