"""Reads for projects: the catalogue, one project, the owner's inbox."""

from django.db.models import QuerySet

from chat import selectors as chat_selectors
from core.errors import NotAllowed, NotFound
from projects.models import Project, ProjectConversation, Widget


def project_list() -> QuerySet[Project]:
    return Project.objects.select_related("owner__profile")


def project_get(*, slug: str) -> Project:
    project = project_list().filter(slug=slug).first()
    if project is None:
        raise NotFound("No such project.")
    return project


def project_inbox(*, user, project: Project) -> list[tuple[ProjectConversation, int]]:
    """The owner's conversations about `project`, most recent activity first, each with
    the owner's unread count (two queries, whatever the number of conversations)."""
    if not (user is not None and user.is_authenticated and user.pk == project.owner_id):
        raise NotAllowed("Only the project's owner sees its conversations.")
    conversations = list(
        ProjectConversation.objects.filter(project=project)
        .select_related("room", "visitor__profile")
        .order_by("-room__last_activity_at", "-id")
    )
    counts = {
        m.room_id: m.unread_count
        for m in chat_selectors.memberships_with_unread(user=user).filter(
            room_id__in=[c.room_id for c in conversations]
        )
    }
    return [(c, counts.get(c.room_id, 0)) for c in conversations]


def widget_get(*, user, project: Project) -> Widget:
    """The project's widget settings, for its owner only (NotAllowed); off until set."""
    if not (user is not None and user.is_authenticated and user.pk == project.owner_id):
        raise NotAllowed("Only the project's owner sees its widget settings.")
    return Widget.objects.filter(project=project).first() or Widget(project=project)


def widget_for_embedding(*, slug: str) -> Widget | None:
    """The widget of the project `slug` when it is on, for the iframe page; else None."""
    return Widget.objects.select_related("project").filter(project__slug=slug, enabled=True).first()
