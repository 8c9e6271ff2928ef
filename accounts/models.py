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


class SearchKey(models.Model):
    """A lower-case prefix a user is found by (GET /api/users/?q=): their username, their
    display name and, for a Chinese display name, its pinyin in full and as initials
    (张三: "zhangsan", "zs"). Kept by accounts.search on every save of a user or profile,
    so a query is one range look-up on the `key` index, never a scan of all users."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="searchkey_user_key_unique")]

    def __str__(self) -> str:
        return self.key


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
