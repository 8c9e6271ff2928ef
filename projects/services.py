"""Everything that changes projects. Conversation rooms are made by chat.services;
nothing here writes messages or memberships."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator, validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from accounts.selectors import GUEST_PREFIX
from chat import selectors as chat_selectors
from chat import services as chat_services
from chat.models import SLUG_PATTERN, Room
from core.errors import InvalidInput, NotAllowed, NotFound
from core.ratelimit import check_rate
from core.validation import clean_text, require_user
from core.websocket import parse_origin
from projects.models import Guest, Project, ProjectConversation, Widget

TITLE_MAX = 120
DESCRIPTION_MAX = 4000
WIDGET_ORIGINS_MAX = 20

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
    if chat_selectors.is_blocked_by(user=visitor, other=project.owner):
        raise NotAllowed("You cannot open a conversation with this user.")
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


# The website widget (SPEC §6.6) ------------------------------------------------------------


def widget_update(*, user, project: Project, enabled=None, origins=None) -> Widget:
    """Turn the project's widget on or off and set the sites allowed to embed it. Only the
    owner may (NotAllowed). `origins`: a list of at most WIDGET_ORIGINS_MAX
    `scheme://host[:port]` (http or https), stored normalised; anything else is InvalidInput."""
    if not (user is not None and user.is_authenticated and user.pk == project.owner_id):
        raise NotAllowed("Only the project's owner can change its widget.")
    widget, _ = Widget.objects.get_or_create(project=project)
    if enabled is not None:
        if not isinstance(enabled, bool):
            raise InvalidInput("enabled must be true or false.")
        widget.enabled = enabled
    if origins is not None:
        widget.origins = clean_origins(origins)
    widget.save()
    return widget


def clean_origins(origins) -> list[str]:
    if not isinstance(origins, list) or len(origins) > WIDGET_ORIGINS_MAX:
        raise InvalidInput(f"origins must be a list of at most {WIDGET_ORIGINS_MAX} origins.")
    cleaned: list[str] = []
    for origin in origins:
        parsed = parse_origin(origin) if isinstance(origin, str) and len(origin) <= 200 else None
        if parsed is None:
            raise InvalidInput(f"{origin!r} is not an origin such as https://shop.example.")
        scheme, host, port = parsed
        text = f"{scheme}://{host}" + ("" if port == {"http": 80, "https": 443}[scheme] else f":{port}")
        if text not in cleaned:
            cleaned.append(text)
    return cleaned


def guest_create(*, project: Project, address: str | None, display_name=None, email=None) -> tuple[Guest, str, Room]:
    """A visitor without an account starts a conversation through the widget: a guest user
    (`guest-…`, no password), its API token, and its conversation with the owner.

    Raises NotFound when the project's widget is off, RateLimited past
    PARLEY_WIDGET_GUESTS_PER_HOUR new guests from `address` (checked first: a refused
    request stores nothing), InvalidInput for a bad name or email.
    """
    widget = Widget.objects.filter(project=project).first()
    if widget is None or not widget.enabled:
        raise NotFound("This project has no chat widget.")
    display_name = clean_text(display_name or "", field="display_name", max_length=80, required=False)
    # An address is kept only when there is email to send (PARLEY_EMAIL_ENABLED).
    email = clean_text(email or "", field="email", max_length=254, required=False) if settings.PARLEY_EMAIL_ENABLED else ""
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise InvalidInput("That is not an email address.") from None
    check_rate(
        f"widget-guests:{address or '-'}",
        per_hour=settings.PARLEY_WIDGET_GUESTS_PER_HOUR,
        detail="Too many new conversations from your address; try again in {seconds} s.",
    )
    with transaction.atomic():
        user = get_user_model()(username=GUEST_PREFIX + secrets.token_hex(8))
        user.set_unusable_password()
        user.save()
        user.profile.display_name = display_name
        user.profile.save(update_fields=["display_name"])
        guest = Guest.objects.create(user=user, project=project, email=email, address=(address or "")[:64])
        token = Token.objects.create(user=user)
        conversation, _ = project_chat_open(visitor=user, project=project)
    return guest, token.key, conversation.room


def guest_block(*, user, project: Project, username) -> Guest:
    """The owner blocks a guest of their project, as `POST /api/blocks/` does: the guest's
    token stops working and its open sockets are closed (4401, by the hub's credential
    sweep). Idempotent. Raises NotAllowed for anyone but the owner, NotFound for someone
    not a guest of it."""
    if not (user is not None and user.is_authenticated and user.pk == project.owner_id):
        raise NotAllowed("Only the project's owner can block its guests.")
    guest = Guest.objects.select_related("user").filter(project=project, user__username=username).first()
    if guest is None:
        raise NotFound("No such guest.")
    chat_services.block_add(user=user, username=username)
    guest.refresh_from_db()
    return guest


def guest_access_set(*, owner, guest_user, allowed: bool) -> None:
    """Take away (or give back) the credential of `guest_user` when it is a widget guest of
    one of `owner`'s projects; anyone else is left as they are. Called by block_add and
    block_remove, which own blocking."""
    guests = Guest.objects.filter(user=guest_user, project__owner=owner)
    if allowed:
        changed = guests.exclude(blocked_at=None).update(blocked_at=None)
    else:
        changed = guests.filter(blocked_at=None).update(blocked_at=timezone.now())
    if changed:
        guest_user.is_active = allowed
        guest_user.save(update_fields=["is_active"])
