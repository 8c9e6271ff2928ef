"""Admin for rooms, memberships and messages. Changes to messages go through
chat.services so live clients hear of them like any other recall or delete."""

from django.contrib import admin, messages

from chat import services
from chat.models import Membership, Message, Room


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]
    readonly_fields = ["last_read_seq", "joined_at"]


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "kind", "last_seq", "rev", "last_activity_at"]
    list_filter = ["kind"]
    search_fields = ["slug", "name"]
    readonly_fields = ["last_seq", "rev", "horizon_rev", "dm_key", "created_at", "last_activity_at"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "room", "role", "last_read_seq"]
    list_filter = ["role"]
    raw_id_fields = ["user", "room"]


@admin.action(description="Delete for everyone (keeps a tombstone)")
def delete_for_everyone(modeladmin, request, queryset):
    for message in queryset.filter(deleted=False):
        services.message_delete(user=request.user, message_id=message.id)
    messages.success(request, "Deleted.")


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "room", "seq", "sender", "kind", "short_body", "recalled", "deleted", "created_at"]
    list_filter = ["kind", "recalled", "deleted"]
    search_fields = ["body", "sender__username", "room__slug"]
    raw_id_fields = ["room", "sender"]
    actions = [delete_for_everyone]
    readonly_fields = [f.name for f in Message._meta.fields]

    def has_add_permission(self, request):
        return False  # messages are sent through a room, which numbers them

    def has_delete_permission(self, request, obj=None):
        return False  # a hard delete would leave connected clients showing it

    @admin.display(description="body")
    def short_body(self, obj):
        return obj.body[:60]
