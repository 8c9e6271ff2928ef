from django import forms
from django.utils.translation import gettext_lazy as _


class RegisterForm(forms.Form):
    username = forms.CharField(
        label=_("Username"), max_length=30, widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True})
    )
    password = forms.CharField(label=_("Password"), widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))


class ProfileForm(forms.Form):
    display_name = forms.CharField(label=_("Display name"), max_length=80, required=False)
    # Checked, cropped and re-encoded by accounts.services.profile_update (core.images).
    avatar = forms.FileField(
        label=_("Avatar"),
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": "image/png,image/jpeg,image/gif,image/webp"}),
    )


class SetupForm(forms.Form):
    code = forms.CharField(
        label=_("Setup code"), max_length=40,
        help_text=_("Printed by <code>make run</code> (or <code>manage.py setup_code</code>) on the server."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "autofocus": True, "spellcheck": "false"}),
    )
    username = forms.CharField(
        label=_("Username"), max_length=30, widget=forms.TextInput(attrs={"autocomplete": "username"})
    )
    password = forms.CharField(label=_("Password"), widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    room = forms.CharField(label=_("First room"), max_length=80, initial=_("General"))
