"""`manage.py purge_messages [--every SECONDS]`: enforce per-room retention (SPEC §2).

Once by default; with --every it keeps running as the periodic job (one per host is
fine: runs are serialized by a cross-process lock, see chat/retention.py). Safe to run
repeatedly: a second run right after the first finds nothing to do.
"""

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from chat import retention


class Command(BaseCommand):
    help = "Drop messages past each room's retention (as deletion tombstones) and old tombstones."

    def add_arguments(self, parser):
        parser.add_argument(
            "--every", type=float, metavar="SECONDS", nargs="?", const=settings.PARLEY_PURGE_SECONDS,
            help="Keep running, purging every SECONDS (default PARLEY_PURGE_SECONDS) — the periodic job. "
            "Without --every: purge once.",
        )

    def handle(self, *args, every=None, **options):
        if every is not None and every <= 0:
            raise CommandError("--every must be a positive number of seconds.")
        verbosity = options["verbosity"]
        while True:
            self.run_once(verbosity)
            if every is None:
                return
            close_old_connections()
            time.sleep(every)

    def run_once(self, verbosity: int) -> None:
        def progress(slug, tombstoned, dropped):
            if verbosity >= 2:
                self.stdout.write(f"  {slug}: {tombstoned} removed, {dropped} tombstones dropped so far")

        results = retention.purge_all(progress=progress)
        if results is None:
            self.stdout.write("Another process is purging; skipped.")
            return
        if verbosity >= 1:
            for slug, (tombstoned, dropped) in results.items():
                self.stdout.write(f"{slug}: {tombstoned} messages removed, {dropped} old tombstones dropped")
            total = sum(t for t, _ in results.values()), sum(d for _, d in results.values())
            self.stdout.write(
                self.style.SUCCESS(
                    f"Retention checked in {len(results)} room(s): {total[0]} messages removed, "
                    f"{total[1]} tombstones dropped."
                )
            )
