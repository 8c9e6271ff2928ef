"""A profile beside Django's auth user: the name and face other people see."""

from django.conf import settings
from django.db import models


class Profile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    display_name = models.CharField(max_length=80, blank=True)
    avatar = models.ImageField(upload_to="avatars/", blank=True, null=True)

    def __str__(self) -> str:
        return self.display_name or self.user.username

    @property
    def shown_name(self) -> str:
        return self.display_name or self.user.username


class Suspension(models.Model):
    """A site-wide suspension by staff (SPEC §6.4): while it lasts the user cannot log in,
    their tokens and sessions are refused and their sockets close with 4401. It ends by
    itself at `until` (never, when null), or when staff lift it (the row is deleted).
    Every check compares with the clock, so it holds across restarts and processes."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="suspension")
    until = models.DateTimeField(null=True, blank=True, help_text="Empty: until lifted.")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.user} suspended until {self.until or 'lifted'}"
