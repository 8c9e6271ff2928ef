from django import forms
from django.utils.translation import gettext_lazy as _


class RegisterForm(forms.Form):
    username = forms.CharField(label=_("Username"), max_length=30)
    password = forms.CharField(label=_("Password"), widget=forms.PasswordInput)


class ProfileForm(forms.Form):
    display_name = forms.CharField(label=_("Display name"), max_length=80, required=False)
