"""`manage.py setup_code [--url URL]`: while no staff account exists, print where and with
which one-time code to create it (SPEC §6.7); print nothing once one exists."""

from django.core.management.base import BaseCommand

from accounts import services


class Command(BaseCommand):
    help = "Print the one-time code for /setup/ while the instance has no staff account."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="The address the site is served at.")

    def handle(self, *args, url, **options):
        if not services.setup_needed():
            return
        self.stdout.write(
            "\n  First run: no administrator yet. Open "
            + self.style.SUCCESS(f"{url.rstrip('/')}/setup/")
            + "\n  and enter the setup code "
            + self.style.SUCCESS(services.setup_code())
            + " to create the staff account.\n"
        )
