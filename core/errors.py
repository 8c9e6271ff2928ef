"""Errors the domain raises, each with a stable `code` (SPEC §3/§4) and an HTTP status.

    AppError                      server_error  500
    ├── InvalidInput              invalid       400
    │   └── InvalidImage          invalid_image 400
    ├── AuthRequired              auth_required 401
    ├── NotAllowed                forbidden     403
    │   ├── RecallWindowPassed    recall_window_passed 403
    │   └── Muted                 muted         403 (carries `until`)
    ├── NotFound                  not_found     404
    ├── Truncated                 truncated     410
    ├── TooLarge                  too_large     413
    │   └── QuotaExceeded         quota_exceeded 413
    └── RateLimited               rate_limited  429 (carries retry_after seconds)

Every door renders them the same way: REST as {"detail", "code"}, the socket as an
`error` frame, HTML on the form.
"""


class AppError(Exception):
    code = "server_error"
    http_status = 500
    default_detail = "Something went wrong on the server."

    def __init__(self, detail: str | None = None):
        self.detail = detail or self.default_detail
        super().__init__(self.detail)

    def as_dict(self) -> dict:
        return {"detail": self.detail, "code": self.code}


class InvalidInput(AppError):
    code = "invalid"
    http_status = 400
    default_detail = "The request is not valid."


class InvalidImage(InvalidInput):
    code = "invalid_image"
    default_detail = "The file is not a supported image."


class AuthRequired(AppError):
    code = "auth_required"
    http_status = 401
    default_detail = "You need to log in."


class NotAllowed(AppError):
    code = "forbidden"
    http_status = 403
    default_detail = "You are not allowed to do that."


class RecallWindowPassed(NotAllowed):
    code = "recall_window_passed"
    default_detail = "The message can no longer be recalled."


class Muted(NotAllowed):
    """The sender is muted in the room until `until` (a datetime)."""

    code = "muted"
    default_detail = "You are muted in this room."

    def __init__(self, until, detail: str | None = None):
        self.until = until
        super().__init__(detail or f"You are muted in this room until {until:%Y-%m-%d %H:%M} UTC.")

    def as_dict(self) -> dict:
        return {**super().as_dict(), "until": self.until.isoformat()}


class NotFound(AppError):
    code = "not_found"
    http_status = 404
    default_detail = "Not found."


class Truncated(AppError):
    """What was asked for reaches past what retention still keeps: start again from now."""

    code = "truncated"
    http_status = 410
    default_detail = "Part of what was asked for is gone; reload."


class TooLarge(AppError):
    code = "too_large"
    http_status = 413
    default_detail = "Too large."


class QuotaExceeded(TooLarge):
    code = "quota_exceeded"
    default_detail = "Your uploads would go over your storage quota."


class RateLimited(AppError):
    code = "rate_limited"
    http_status = 429
    default_detail = "You are sending too fast."

    def __init__(self, retry_after: float, detail: str | None = None):
        self.retry_after = max(1, round(retry_after + 0.499))
        super().__init__(detail or f"You are sending too fast; try again in {self.retry_after} s.")

    def as_dict(self) -> dict:
        return {**super().as_dict(), "retry_after": self.retry_after}
