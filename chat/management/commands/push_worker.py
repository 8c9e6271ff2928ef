"""Send pending Web Push messages until stopped (SIGTERM / Ctrl-C): the worker service of
the compose file and systemd units. Under `make run` the server runs it itself."""

import signal
import threading

from django.core.management.base import BaseCommand

from chat import pushworker


class Command(BaseCommand):
    help = "Send pending Web Push messages (retries with backoff) until stopped."

    def handle(self, *args, **options):
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write("push worker running")
        self.stdout.flush()
        pushworker.run(stop)
