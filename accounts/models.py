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
