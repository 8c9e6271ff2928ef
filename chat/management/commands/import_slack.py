"""`manage.py import_slack EXPORT.zip [--room-prefix slack-]`: a standard Slack export
into Parley (chat/services/slack_import.py), with a progress bar and a report of what was
skipped and why. Running it again imports nothing twice."""

import time

from django.core.management.base import BaseCommand, CommandError

from chat.services.slack_import import import_slack
from core.errors import InvalidInput

BAR = 30


class Command(BaseCommand):
    help = "Import users, public channels, messages, threads and reactions from a Slack export zip."

    def add_arguments(self, parser):
        parser.add_argument("export", help="The export's .zip file (Workspace settings → Import/Export Data).")
        parser.add_argument("--room-prefix", default="", help="Put this before every room slug, e.g. slack-.")

    def handle(self, *args, export, room_prefix, **options):
        shown = {"at": 0.0, "last": None}

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if done < total and now - shown["at"] < 0.2:
                return
            shown["at"] = now
            filled = BAR * done // total if total else BAR
            line = f"\r[{'#' * filled}{'.' * (BAR - filled)}] {done}/{total} messages"
            if line != shown["last"]:
                self.stderr.write(line, ending="")
                self.stderr.flush()
                shown["last"] = line

        try:
            report = import_slack(export, room_prefix=room_prefix, progress=progress)
        except InvalidInput as error:
            raise CommandError(error.detail) from None
        self.stderr.write("")
        for line in report.lines():
            self.stdout.write(line)
