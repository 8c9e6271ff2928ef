"""`manage.py rebuild_search_index`: index every message again from scratch (chat/search.py).

For data that predates the index, or after a change to how text is normalised. Sends
during a rebuild are indexed by their own transactions as always.
"""

import sys
import time

from django.core.management.base import BaseCommand

from chat import search


class Command(BaseCommand):
    help = "(Re)build the message search index, with a progress bar."

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=2000, help="Messages per transaction (default 2000).")

    def handle(self, *args, batch=2000, **options):
        started = time.monotonic()
        show = options["verbosity"] >= 1 and sys.stderr.isatty()

        def progress(done, total):
            if not show:
                return
            width = 40
            filled = width * done // max(total, 1)
            rate = done / max(time.monotonic() - started, 1e-6)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} ({rate:,.0f}/s)")
            sys.stderr.flush()

        done = search.rebuild(batch=max(1, batch), progress=progress)
        if show:
            sys.stderr.write("\n")
        self.stdout.write(f"Indexed {done} messages in {time.monotonic() - started:.1f} s.")
