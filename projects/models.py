"""Projects people publish, and the private conversations visitors open with their owners.

A conversation is a chat room of kind `project` with exactly two members (the owner and
the visitor); everything said in it lives in chat.Message, written only by chat.services.
"""

from django.conf import settings
from django.db import models

from chat.models import slug_validator


class Project(models.Model):
    title = models.CharField(max_length=120)
    slug = models.CharField(max_length=50, unique=True, validators=[slug_validator])
    description = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.title


class ProjectConversation(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="conversations")
    visitor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="project_conversations")
    room = models.OneToOneField("chat.Room", on_delete=models.CASCADE, related_name="project_conversation")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "visitor"], name="project_conversation_visitor_unique")
        ]

    def __str__(self) -> str:
        return f"{self.visitor} about {self.project}"


class Widget(models.Model):
    """The chat button a project's owner puts on their own site (SPEC §6.6): whether it is on,
    and the origins (scheme://host[:port]) allowed to embed it."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="widget")
    enabled = models.BooleanField(default=False)
    origins = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"widget of {self.project}"


class Guest(models.Model):
    """A visitor who chats through the widget without an account: a user named `guest-…`
    (no password, logged in only by its API token) bound to one project."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="widget_guest")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="guests")
    email = models.EmailField(blank=True)
    address = models.CharField(max_length=64, blank=True)
    blocked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.user.username
