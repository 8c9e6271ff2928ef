"""Checks every service starts with: who is asking, and is this text acceptable."""

from core.errors import AppError, AuthRequired, InvalidInput


def require_user(user) -> None:
    if user is None or not user.is_authenticated:
        raise AuthRequired()


def clean_text(
    value, *, field: str, max_length: int, required: bool = True, too_long: type[AppError] = InvalidInput
) -> str:
    """`value` stripped; InvalidInput when it is not text (or holds NUL), is required and empty, or runs
    past `max_length` characters. Only a message body past its limit is another error
    (`too_long=TooLarge`, 413): for names and titles length is one more rule (SPEC §2)."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text.")
    if "\x00" in value:
        # PostgreSQL cannot store NUL in text: refuse it here, the same on every database.
        raise InvalidInput(f"{field} must not contain NUL characters.")
    value = value.strip()
    if required and not value:
        raise InvalidInput(f"{field} must not be empty.")
    if len(value) > max_length:
        raise too_long(f"{field} is limited to {max_length} characters.")
    return value
