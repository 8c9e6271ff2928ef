"""Account actions: registering and changing one's profile."""

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import Profile
from core.errors import InvalidInput, TooLarge

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


def profile_update(*, user, display_name=None) -> Profile:
    profile, _ = Profile.objects.get_or_create(user=user)
    if display_name is not None:
        if not isinstance(display_name, str):
            raise InvalidInput("display_name must be text.")
        display_name = display_name.strip()
        if len(display_name) > 80:
            raise TooLarge("display_name is limited to 80 characters.")
        profile.display_name = display_name
        profile.save(update_fields=["display_name"])
    return profile
