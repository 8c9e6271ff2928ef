"""HTML door for projects: the project page and the owner's inbox."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from core.errors import AppError, NotAllowed, NotFound
from projects import selectors, services


def _project(slug):
    try:
        return selectors.project_get(slug=slug)
    except NotFound:
        raise Http404("No such project.") from None


def project_detail(request, slug):
    project = _project(slug)
    return render(request, "projects/detail.html", {"project": project})


@login_required
@require_POST
def project_chat(request, slug):
    project = _project(slug)
    try:
        conversation, _ = services.project_chat_open(visitor=request.user, project=project)
    except AppError as error:
        messages.error(request, error.detail)
        return redirect("project", slug=slug)
    return redirect("room", slug=conversation.room.slug)


@login_required
def project_inbox(request, slug):
    project = _project(slug)
    try:
        rows = selectors.project_inbox(user=request.user, project=project)
    except NotAllowed:
        raise PermissionDenied from None
    return render(request, "projects/inbox.html", {"project": project, "rows": rows})
