"""Admin for rooms, memberships and messages. Changes to messages go through
chat.services so live clients hear of them like any other recall or delete."""

from django import forms
from django.contrib import admin, messages
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile

from chat import services
from chat.models import (
    Announcement,
    Membership,
    Message,
    MessageVersion,
    Preset,
    Reaction,
    Room,
    preset_image_path,
)
from core import images
from core.errors import AppError


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


class _ReadOnlyInline(admin.TabularInline):
    """Rows that only services write: shown, never added, changed or removed here."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class MessageVersionInline(_ReadOnlyInline):
    model = MessageVersion
    fields = readonly_fields = ["edited_at", "body"]
    verbose_name_plural = "earlier versions (oldest first)"


class ReactionInline(_ReadOnlyInline):
    model = Reaction
    fields = readonly_fields = ["emoji", "user", "created_at"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Messages are read here; an edit belongs to its sender (chat.services.message_edit)."""

    list_display = [
        "id", "room", "seq", "sender", "kind", "short_body", "edited_at", "recalled", "deleted", "created_at"
    ]
    list_filter = ["kind", "recalled", "deleted"]
    search_fields = ["body", "sender__username", "room__slug"]
    raw_id_fields = ["room", "sender", "reply_to"]
    actions = [delete_for_everyone]
    readonly_fields = [f.name for f in Message._meta.fields]
    inlines = [MessageVersionInline, ReactionInline]

    def has_add_permission(self, request):
        return False  # messages are sent through a room, which numbers them

    def has_delete_permission(self, request, obj=None):
        return False  # a hard delete would leave connected clients showing it

    @admin.display(description="body")
    def short_body(self, obj):
        return obj.body[:60]


class _ImageCheckingForm(forms.ModelForm):
    """Runs a new upload through core.images, so the admin stores only clean pictures."""

    processed = None

    def clean_image(self):
        image = self.cleaned_data.get("image")
        if isinstance(image, UploadedFile):
            try:
                self.processed = images.process_upload(image)
            except AppError as error:
                raise forms.ValidationError(error.detail) from None
        return image


class PresetForm(_ImageCheckingForm):
    class Meta:
        model = Preset
        fields = ["title", "body", "image", "position"]

    def clean(self):
        data = super().clean()
        if not (data.get("body") or "").strip() and not data.get("image"):
            raise forms.ValidationError("A preset needs a text, an image, or both.")
        return data


@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin):
    form = PresetForm
    list_display = ["title", "position", "body", "image"]
    list_editable = ["position"]

    def save_model(self, request, obj, form, change):
        old = Preset.objects.filter(pk=obj.pk).values_list("image", flat=True).first() if change else None
        if form.processed is not None:
            storage = Preset._meta.get_field("image").storage
            obj.image = storage.save(
                preset_image_path(obj, f"preset.{form.processed.extension}"), ContentFile(form.processed.content)
            )
        super().save_model(request, obj, form, change)
        if old and old != (obj.image.name if obj.image else None):
            Preset._meta.get_field("image").storage.delete(old)

    def delete_model(self, request, obj):
        name = obj.image.name if obj.image else None
        super().delete_model(request, obj)
        if name:
            Preset._meta.get_field("image").storage.delete(name)


class AnnouncementForm(_ImageCheckingForm):
    class Meta:
        model = Announcement
        fields = ["text", "image"]


@admin.register(Announcement)
class AnnouncementAdmin(admin.ModelAdmin):
    """The one announcement; saving it goes through services.announcement_set, so every
    connected socket hears it at once."""

    form = AnnouncementForm
    list_display = ["__str__", "image", "updated_at", "updated_by"]
    readonly_fields = ["updated_at", "updated_by"]

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not Announcement.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False  # clear the text instead: clients must hear of it

    def save_model(self, request, obj, form, change):
        image = form.cleaned_data.get("image")
        saved = services.announcement_set(
            by=request.user,
            text=form.cleaned_data.get("text") or "",
            image=image if isinstance(image, UploadedFile) else None,
            clear_image=image is False,
        )
        obj.pk, obj.image, obj.updated_at, obj.updated_by = saved.pk, saved.image, saved.updated_at, saved.updated_by
