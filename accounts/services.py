"""Account actions: registering and changing one's profile."""

import secrets

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

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
    except BaseException:
        if new_avatar:
            storage.delete(new_avatar)
        raise
    user.profile = profile
    return profile
