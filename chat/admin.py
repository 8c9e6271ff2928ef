"""Admin for rooms, memberships and messages. What live clients must hear of (a room's
name and kind, who is in it, deletions) goes through chat.services, staff acting, exactly
as from the app: a room made private closes outsiders' sockets, a new member's stream
hears `room.added`, a removed member's sockets close."""

from django import forms
from django.contrib import admin, messages
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.forms.models import BaseInlineFormSet

from chat import services
from chat.models import (
    Announcement,
    AuditEntry,
    Membership,
    Message,
    MessageVersion,
    Preset,
    Reaction,
    Report,
    Room,
    RoomBan,
    RoomMute,
    Webhook,
    preset_image_path,
)
from chat.services.rooms import CREATABLE_KINDS
from core import images
from core.errors import AppError, InvalidInput, NotFound

CONVERSATION_KINDS = (Room.Kind.DM, Room.Kind.PROJECT)
# Room fields whose change clients must hear of: saved by services.room_update.
LIVE_ROOM_FIELDS = ("name", "topic", "kind")


def _is_conversation(room) -> bool:
    return room is not None and room.kind in CONVERSATION_KINDS


def _add_member(by, room: Room, membership: Membership) -> Membership:
    """Put `membership.user` in `room` with `membership.role` the way the app would: an
    invitation to a private room, a join of a public one; their stream hears room.added."""
    if room.kind == Room.Kind.PRIVATE:
        added = services.room_invite(by=by, room=room, username=membership.user.username)
    elif room.is_public:
        added = services.room_join(user=membership.user, room=room)
    else:
        raise InvalidInput("Direct and project conversations keep their two members.")
    if added.role != membership.role:
        Membership.objects.filter(pk=added.pk).update(role=membership.role)
        added.role = membership.role
    return added


def _remove_member(by, membership: Membership) -> None:
    services.room_remove_member(by=by, room=membership.room, username=membership.user.username)


def _report(request, action: str, error: AppError) -> None:
    messages.error(request, f"{action}: {error.detail}")


class RoomForm(forms.ModelForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "kind" in self.fields:  # staff make public and private rooms; conversations are the app's
            self.fields["kind"].choices = [(k.value, k.label) for k in CREATABLE_KINDS]

    def clean_slug(self):
        try:
            return services.clean_room_slug(self.cleaned_data.get("slug"))
        except AppError as error:
            raise forms.ValidationError(error.detail) from None


class MembershipFormSet(BaseInlineFormSet):
    def clean(self):
        super().clean()
        for form in self.deleted_forms:
            if form.instance.pk and form.initial.get("role") == Membership.Role.OWNER:
                raise forms.ValidationError("The owner cannot be removed.")


class MembershipInlineForm(forms.ModelForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:  # someone else in the room is a removal and an addition
            self.fields["user"].disabled = True


class MembershipInline(admin.TabularInline):
    """Adding and deleting rows invites/joins and removes through the services; only the
    role is edited in place. Conversations (dm, project) are shown, not edited."""

    model = Membership
    form = MembershipInlineForm
    formset = MembershipFormSet
    extra = 0
    raw_id_fields = ["user"]
    readonly_fields = ["last_read_seq", "joined_at"]

    def has_add_permission(self, request, obj=None):
        return not _is_conversation(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return not _is_conversation(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not _is_conversation(obj) and super().has_delete_permission(request, obj)


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    form = RoomForm
    list_display = ["slug", "name", "kind", "last_seq", "rev", "last_activity_at"]
    list_filter = ["kind"]
    search_fields = ["slug", "name"]
    readonly_fields = ["last_seq", "rev", "horizon_rev", "dm_key", "created_at", "last_activity_at"]
    inlines = [MembershipInline]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields.append("slug")  # links, bookmarks and open sockets know the room by it
            if _is_conversation(obj):
                fields += LIVE_ROOM_FIELDS
        return fields

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)  # a new room: nobody is in it yet
            return
        quiet = [name for name in form.changed_data if name not in LIVE_ROOM_FIELDS]
        if quiet:  # retention and the like: nobody connected needs to hear of them
            Room.objects.filter(pk=obj.pk).update(**{name: getattr(obj, name) for name in quiet})
        live = {name: form.cleaned_data[name] for name in LIVE_ROOM_FIELDS if name in form.changed_data}
        if live:
            try:
                services.room_update(by=request.user, room=obj, **live)
            except AppError as error:
                _report(request, str(obj), error)
        obj.refresh_from_db()

    def save_formset(self, request, form, formset, change):
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        room = form.instance
        formset.save(commit=False)  # sorts the rows into new, changed and deleted; saves nothing
        for membership in formset.deleted_objects:
            try:
                _remove_member(request.user, membership)
            except AppError as error:
                _report(request, str(membership.user), error)
        for membership, _ in formset.changed_objects:
            Membership.objects.filter(pk=membership.pk).update(role=membership.role)
        for membership in formset.new_objects:
            try:
                _add_member(request.user, room, membership)
            except AppError as error:
                _report(request, str(membership.user), error)


class MembershipForm(forms.ModelForm):
    def clean_room(self):
        room = self.cleaned_data.get("room")
        if _is_conversation(room):
            raise forms.ValidationError("Direct and project conversations keep their two members.")
        return room

    def clean_user(self):
        user = self.cleaned_data.get("user")
        if user is not None and not user.is_active:
            raise forms.ValidationError("Only active users can be added to a room.")
        return user


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    """Adding one invites (private room) or joins (public room), deleting one removes the
    member, both through the services; only the role is edited in place."""

    form = MembershipForm
    list_display = ["user", "room", "role", "last_read_seq"]
    list_filter = ["role"]
    raw_id_fields = ["user", "room"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ["last_read_seq", "joined_at"]
        fields = ["user", "room", "last_read_seq", "joined_at"]
        return fields + ["role"] if _is_conversation(obj.room) else fields

    def has_delete_permission(self, request, obj=None):
        if obj is not None and (obj.role == Membership.Role.OWNER or _is_conversation(obj.room)):
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        if change:
            Membership.objects.filter(pk=obj.pk).update(role=obj.role)
            return
        added = _add_member(request.user, obj.room, obj)
        obj.pk, obj.joined_at, obj.last_read_seq = added.pk, added.joined_at, added.last_read_seq

    def delete_model(self, request, obj):
        _remove_member(request.user, obj)

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("room", "user"):
            try:
                _remove_member(request.user, membership)
            except AppError as error:
                _report(request, str(membership), error)


@admin.action(description="Delete for everyone (keeps a tombstone)")
def delete_for_everyone(modeladmin, request, queryset):
    for message in queryset.filter(deleted=False):
        try:
            services.message_delete(user=request.user, message_id=message.id)
        except NotFound:
            pass  # deleted or purged meanwhile: gone either way
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


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    """Incoming webhooks (made and revoked by room owner/admins in the app; SPEC §6.5). The
    token is the secret in the URL: not shown here."""

    list_display = ("name", "room", "created_by", "created_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "room__slug")
    readonly_fields = ("room", "name", "bot", "created_by", "created_at", "revoked_at")
    exclude = ("token",)

    def has_add_permission(self, request):
        return False


# Moderation (SPEC §6.4): the queue of reports, mutes and bans, and the audit log ---------------


@admin.action(description="Resolve")
def resolve_reports(modeladmin, request, queryset):
    for report in queryset.filter(resolved=False):
        services.report_resolve(by=request.user, report_id=report.pk)
    messages.success(request, "Resolved.")


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    """Staff's queue: open reports first; resolving one is written to the audit log."""

    list_display = ["id", "created_at", "room", "reported_text", "reporter", "reason", "resolved", "resolved_by"]
    list_filter = ["resolved", "created_at"]
    list_select_related = ["room", "message__sender", "reporter", "resolved_by"]
    search_fields = ["reason", "reporter__username", "message__sender__username", "room__slug"]
    actions = [resolve_reports]
    readonly_fields = ["message", "room", "reporter", "reason", "created_at", "resolved", "resolved_by", "resolved_at"]
    ordering = ["resolved", "-id"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="message")
    def reported_text(self, obj):
        # Staff judge the words themselves: who wrote what, gone or not.
        message = obj.message
        if message is None:
            return "(purged)"
        sender = message.sender.username if message.sender else "?"
        state = " (deleted)" if message.deleted else " (recalled)" if message.recalled else ""
        return f"{sender}: {message.body[:80]}{state}"


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Every moderation action, never edited."""

    list_display = ["at", "room", "actor", "action", "target", "message", "detail"]
    list_filter = ["action", "at"]
    list_select_related = ["room", "actor", "target"]
    date_hierarchy = "at"
    search_fields = ["actor__username", "target__username", "room__slug"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class _RestrictionAdmin(admin.ModelAdmin):
    """Mutes and bans are made from the room (REST or the app); here staff see them and
    lift them (deleting one lifts it through the services, audited)."""

    list_display = ["room", "user", "until", "by", "created_at"]
    readonly_fields = ["room", "user", "until", "by", "created_at"]
    lift = None

    def has_add_permission(self, request):
        return False

    def delete_model(self, request, obj):
        type(self).lift(by=request.user, room=obj.room, username=obj.user.username)

    def delete_queryset(self, request, queryset):
        for obj in queryset.select_related("room", "user"):
            self.delete_model(request, obj)


@admin.register(RoomMute)
class RoomMuteAdmin(_RestrictionAdmin):
    lift = services.room_unmute


@admin.register(RoomBan)
class RoomBanAdmin(_RestrictionAdmin):
    lift = services.room_unban
