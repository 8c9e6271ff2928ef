"""DMs and project conversations made before this gave one person the `owner` role,
which let them delete the other's messages. Both are plain members (SPEC §6.4)."""

from django.db import migrations

CONVERSATION_KINDS = ("dm", "project")


def make_plain_members(apps, schema_editor):
    Membership = apps.get_model("chat", "Membership")
    Membership.objects.filter(room__kind__in=CONVERSATION_KINDS).exclude(role="member").update(role="member")


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0002_presets_announcement_tombstones"),
    ]

    # Nothing to undo: the old code did not read the role in these rooms for anything
    # but moderation, which is what this takes away.
    operations = [migrations.RunPython(make_plain_members, migrations.RunPython.noop)]
