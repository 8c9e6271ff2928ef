from django.contrib import admin

from projects.models import Project, ProjectConversation


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["slug", "title", "owner", "created_at"]
    search_fields = ["slug", "title", "owner__username"]
    raw_id_fields = ["owner"]


@admin.register(ProjectConversation)
class ProjectConversationAdmin(admin.ModelAdmin):
    list_display = ["project", "visitor", "room", "created_at"]
    search_fields = ["project__slug", "visitor__username"]
    # The room and its two members are made by chat.services; they are not re-pointed here.
    readonly_fields = ["project", "visitor", "room", "created_at"]

    def has_add_permission(self, request):
        return False
