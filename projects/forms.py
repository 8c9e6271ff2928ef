from django import forms
from django.utils.translation import gettext_lazy as _

from projects.services import DESCRIPTION_MAX, TITLE_MAX


class ProjectForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=TITLE_MAX)
    slug = forms.CharField(
        label=_("Address"), max_length=50, required=False,
        help_text=_("/projects/…/ (a-z 0-9 _ -); left empty, one is made from the title."),
        widget=forms.TextInput(attrs={"autocapitalize": "off", "spellcheck": "false", "pattern": r"[a-z0-9_\-]{1,50}"}),
    )
    description = forms.CharField(
        label=_("Description"), max_length=DESCRIPTION_MAX, required=False, widget=forms.Textarea(attrs={"rows": 6})
    )


class ProjectEditForm(ProjectForm):
    slug = None
