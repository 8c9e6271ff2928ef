"""Everything that changes projects. Conversation rooms are made by chat.services;
nothing here writes messages or memberships."""

from django.core.validators import RegexValidator
from django.db import IntegrityError, transaction

from chat import services as chat_services
from chat.models import SLUG_PATTERN, Room
from core.errors import InvalidInput
from core.validation import clean_text, require_user
from projects.models import Project, ProjectConversation

TITLE_MAX = 120
DESCRIPTION_MAX = 4000


def project_create(*, owner, title, slug, description="") -> Project:
    """Publish a project owned by `owner`. A taken or malformed slug is InvalidInput."""
    require_user(owner)
    if not isinstance(slug, str) or not RegexValidator(SLUG_PATTERN).regex.fullmatch(slug):
        raise InvalidInput("slug must be 1-50 characters of a-z, 0-9, _ and -.")
    title = clean_text(title, field="title", max_length=TITLE_MAX, required=True)
    description = clean_text(description, field="description", max_length=DESCRIPTION_MAX, required=False)
    try:
        with transaction.atomic():
            return Project.objects.create(owner=owner, title=title, slug=slug, description=description)
    except IntegrityError:
        raise InvalidInput("That slug is taken.") from None


def project_slug_suggest(title) -> str:
    """A free slug for a project called `title` (its ASCII letters and digits, or
    `project-…` for a title without any, e.g. a Chinese one)."""
    import secrets

    from django.utils.text import slugify

    base = slugify(title if isinstance(title, str) else "")[:40].strip("-_") or f"p-{secrets.token_hex(3)}"
    slug, n = base, 1
    while Project.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def project_update(*, by, project: Project, title=None, description=None) -> Project:
    """The owner changes the title or description (the slug stays: links to it live on).
    Others: NotAllowed."""
    from core.errors import NotAllowed

    require_user(by)
    if by.pk != project.owner_id:
        raise NotAllowed("Only the project's owner can change it.")
    if title is not None:
        project.title = clean_text(title, field="title", max_length=TITLE_MAX, required=True)
    if description is not None:
        project.description = clean_text(description, field="description", max_length=DESCRIPTION_MAX, required=False)
    project.save(update_fields=["title", "description"])
    return project


def project_chat_open(*, visitor, project: Project) -> tuple[ProjectConversation, bool]:
    """The visitor's one conversation with the project's owner; (conversation, created).

    Race-safe: (project, visitor) is unique, so of concurrent first calls one stores its
    conversation and the others roll back their room with it and read that one. Only the two of
    them are members (a non-public room: nobody else can read, join or be invited).
    Raises InvalidInput when the owner tries to chat with their own project.
    """
    require_user(visitor)
    if visitor.pk == project.owner_id:
        raise InvalidInput("This is your own project.")
    existing = _conversation(project, visitor)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            room = chat_services.conversation_room_create(
                name=project.title,
                kind=Room.Kind.PROJECT,
                starter=visitor,
                other=project.owner,
            )
            conversation = ProjectConversation.objects.create(project=project, visitor=visitor, room=room)
    except IntegrityError:
        existing = _conversation(project, visitor)
        if existing is None:
            raise
        return existing, False
    return conversation, True


def _conversation(project: Project, visitor) -> ProjectConversation | None:
    return ProjectConversation.objects.select_related("room").filter(project=project, visitor=visitor).first()

