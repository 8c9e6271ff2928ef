"""HTML door for projects: the catalogue, publishing and editing, the project page and
the owner's inbox, all in the app's shell (sidebar beside them)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

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
    return _render(request, "projects/detail.html", {"project": _project(slug)})


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
