from django import forms
from django.contrib import admin

from accounts.models import Profile, Suspension


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "display_name"]
    search_fields = ["user__username", "display_name"]
    raw_id_fields = ["user"]


class SuspensionForm(forms.ModelForm):
    minutes = forms.IntegerField(required=False, min_value=1, help_text="Empty: until lifted.")

    class Meta:
        model = Suspension
        fields = ["user"]


@admin.register(Suspension)
class SuspensionAdmin(admin.ModelAdmin):
    """Suspending here is suspending over REST (chat.services.user_suspend: sockets close,
    tokens and logins are refused, the audit log keeps it); deleting one lifts it."""

    form = SuspensionForm
    list_display = ["user", "until", "by", "created_at"]
    raw_id_fields = ["user"]

    def get_readonly_fields(self, request, obj=None):
        return ["user", "until", "by", "created_at"] if obj else []

    def save_model(self, request, obj, form, change):
        from chat import services

        if change:
            return
        saved = services.user_suspend(by=request.user, username=obj.user.username, minutes=form.cleaned_data.get("minutes"))
        obj.pk, obj.until, obj.by, obj.created_at = saved.pk, saved.until, saved.by, saved.created_at

    def delete_model(self, request, obj):
        from chat import services

        services.user_unsuspend(by=request.user, username=obj.user.username)

    def delete_queryset(self, request, queryset):
        for obj in queryset.select_related("user"):
            self.delete_model(request, obj)
