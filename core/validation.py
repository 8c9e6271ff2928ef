"""Checks every service starts with: who is asking, and is this text acceptable."""

from core.errors import AuthRequired, InvalidInput, TooLarge


def require_user(user) -> None:
    if user is None or not user.is_authenticated:
        raise AuthRequired()


def clean_text(value, *, field: str, max_length: int, required: bool = True) -> str:
    """`value` stripped; InvalidInput when it is not text, holds a NUL character or is
    required and empty, TooLarge past `max_length` characters."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text.")
    value = value.strip()
    if "\x00" in value:
        # PostgreSQL text cannot hold NUL: refused here, not as a server error at the INSERT.
        raise InvalidInput(f"{field} must not contain NUL characters.")
    if required and not value:
        raise InvalidInput(f"{field} must not be empty.")
    if len(value) > max_length:
        raise TooLarge(f"{field} is limited to {max_length} characters.")
    return value
