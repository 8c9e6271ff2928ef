"""Account actions: registering, changing one's profile, API tokens."""

import secrets

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Q
from rest_framework.authtoken.models import Token

from accounts.models import Profile
from core import images
from core.errors import InvalidInput
from core.ratelimit import check_avatar_rate
from core.validation import clean_text

User = get_user_model()
USERNAME_MAX = 30


def user_register(*, username, password) -> User:
    """Create an account. Raises InvalidInput for a taken or malformed name or a weak password."""
    if not isinstance(username, str) or not isinstance(password, str):
        raise InvalidInput("username and password are required.")
    username = username.strip()
    if not username or len(username) > USERNAME_MAX:
        raise InvalidInput(f"A username is 1-{USERNAME_MAX} characters.")
    try:
        UnicodeUsernameValidator()(username)
        password_validation.validate_password(password, User(username=username))
    except ValidationError as error:
        raise InvalidInput(" ".join(error.messages)) from None
    if username.lower().startswith("guest-"):
        # Reserved for the website widget's guests (projects/services.py): a name there
        # is what marks a user as a guest everywhere (accounts.guests.is_guest).
        raise InvalidInput("Usernames starting with guest- are reserved.")
    if User.objects.filter(username__iexact=username).exists():
        raise InvalidInput("That username is taken.")
    try:
        with transaction.atomic():
            return User.objects.create_user(username=username, password=password)
    except IntegrityError:
        raise InvalidInput("That username is taken.") from None


def profile_update(*, user, display_name=None, avatar=None) -> Profile:
    """Change one's display name and/or avatar. `avatar` is an upload: verified, cropped
    to a square, stripped of metadata and re-encoded by core.images (InvalidImage,
    TooLarge); the previous picture is removed once the change commits. Each avatar upload
    takes one from PARLEY_AVATAR_PER_HOUR before it is decoded (RateLimited past it,
    nothing changes)."""
    if display_name is not None:
        display_name = clean_text(display_name, field="display_name", max_length=80, required=False)
    new_avatar = None
    if avatar is not None:
        check_avatar_rate(user.id)
        processed = images.process_upload(avatar, square=images.AVATAR_EDGE)
        storage = Profile._meta.get_field("avatar").storage
        new_avatar = storage.save(f"avatars/{secrets.token_urlsafe(24)}.{processed.extension}", ContentFile(processed.content))
    try:
        with transaction.atomic():
            profile, _ = Profile.objects.select_for_update().get_or_create(user=user)
            if display_name is not None:
                profile.display_name = display_name
            if new_avatar:
                old = profile.avatar.name if profile.avatar else None
                profile.avatar = new_avatar
                if old:
                    transaction.on_commit(lambda: storage.delete(old))
            profile.save()
            user.profile = profile
            _tell_rooms_user_updated(user)
    except BaseException:
        if new_avatar:
            storage.delete(new_avatar)
        raise
    user.profile = profile
    return profile


def _tell_rooms_user_updated(user) -> None:
    """After commit, every room the user is in hears `user.updated` (their new name and
    avatar), so pages open there show them without a reload. A hint like typing: never
    stored or replayed; a page loaded later reads the profile anyway."""
    from chat import events
    from chat.models import Membership
    from chat.serializers import user_to_dict

    frame = {"type": "user.updated", "user": user_to_dict(user)}
    for room_id in Membership.objects.filter(user=user).values_list("room_id", flat=True):
        events.publish_on_commit(events.room_group(room_id), events.ephemeral(frame, user_id=user.id))


def token_revoke(*, token: Token) -> None:
    """Revoke an API token (`DELETE /api/auth/token/`). Sockets opened with it close with
    4401 (chat.signals)."""
    token.delete()


def user_tokens_rotate(*, user) -> None:
    """Revoke every API token of `user` (their password changed: a token made with the old
    password must not outlive it). The next `POST /api/auth/token/` makes a new one."""
    for token in Token.objects.filter(user=user):
        token_revoke(token=token)


@transaction.atomic
def account_delete(*, user, password) -> None:
    """Delete one's own account (`DELETE /api/me/`), confirmed with the password (a wrong
    one: InvalidInput, nothing changes).

    Messages stay, their sender gone ("deleted user"); reactions are taken away, each
    with a rev (chat.services.reactions); the avatar and any file still held by the
    user's recalled or deleted messages are removed after commit; sessions end, and the
    tokens go with the user (their sockets close with 4401: chat.signals, hub recheck).
    """
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    from chat import events
    from chat.models import Message
    from chat.services.reactions import reactions_drop_user

    if not isinstance(password, str) or not password or not user.check_password(password):
        raise InvalidInput("The password is not right.")
    user = User.objects.select_for_update().get(pk=user.pk)
    reactions_drop_user(user_id=user.pk)
    storage = Profile._meta.get_field("avatar").storage
    leftovers = []
    profile = Profile.objects.filter(user=user).first()
    if profile is not None and profile.avatar:
        leftovers.append((storage, profile.avatar.name))
    for message in Message.objects.filter(sender=user).filter(Q(deleted=True) | Q(recalled=True)).exclude(image=""):
        if message.image:
            leftovers.append((message.image.storage, message.image.name))
    Message.objects.filter(sender=user).filter(Q(deleted=True) | Q(recalled=True)).update(image=None)
    key = str(user.pk)
    ended = [
        session.session_key
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
        if session.get_decoded().get("_auth_user_id") == key
    ]
    Session.objects.filter(session_key__in=ended).delete()
    user_id = user.pk
    user.delete()
    events.publish_on_commit(events.user_group(user_id), events.control("recheck"))
    for file_storage, name in leftovers:
        transaction.on_commit(lambda file_storage=file_storage, name=name: file_storage.delete(name))


# First run (SPEC §6.7) ---------------------------------------------------------------------
# An ordinary registration never becomes staff, so a fresh public instance cannot be taken
# over by whoever registers first: the first staff account is made at /setup/, and only
# with the setup code the operator sees (`make run` prints it; `manage.py setup_code`).


def setup_code() -> str:
    """The one-time setup code: derived from SECRET_KEY (the same in every process, never
    stored), useful only while no staff account exists."""
    from django.utils.crypto import salted_hmac

    digest = salted_hmac("parley.setup", "first-staff-account", algorithm="sha256").hexdigest()
    raw = digest[:16].upper()
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def setup_needed() -> bool:
    """True while the instance has no staff account (then /setup/ is open)."""
    return not User.objects.filter(is_staff=True, is_active=True).exists()


def setup_create_staff(*, code, username, password) -> User:
    """The first staff (and superuser) account. NotFound once any staff exists; a wrong
    code is NotAllowed and changes nothing; name and password follow user_register's rules."""
    import hmac

    from core.errors import NotAllowed, NotFound

    if not setup_needed():
        raise NotFound("This Parley is already set up.")
    given = (code or "").strip().upper().replace(" ", "") if isinstance(code, str) else ""
    if not hmac.compare_digest(given.replace("-", ""), setup_code().replace("-", "")):
        raise NotAllowed("That is not the setup code.")
    with transaction.atomic():
        user = user_register(username=username, password=password)
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    return user
