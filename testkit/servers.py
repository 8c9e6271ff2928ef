"""Server processes on 127.0.0.1: free ports, environment, start, readiness, logs, stop.

Standard library only (the benchmark imports it without Django). Every wait has a time
limit; a server that exits or never gets ready raises ServerError with its log.
"""

import atexit
import contextlib
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Parley's settings (config/settings.py) besides PARLEY_* and DJANGO_*: never inherited
# from the shell or from pytest's environment, each server sets its own.
SETTINGS = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS",
            "MEDIA_ROOT", "STATIC_ROOT", "LOG_FORMAT", "LOG_LEVEL")


class ServerError(RuntimeError):
    """A server exited, or did not get ready in time; the message ends with its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**settings) -> dict[str, str]:
    """This process's environment without any of Parley's settings, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS and not k.startswith(("PARLEY_", "DJANGO_"))}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env.update({key: str(value) for key, value in settings.items()})
    return env


def make_run_flags() -> list[str]:
    """uvicorn's flags in the Makefile's `run` target, all but --host and --port: the
    production flags every worker here runs with."""
    lines = (REPO / "Makefile").read_text().splitlines()
    line = next(text for text in lines if "uvicorn config.asgi:application" in text)
    words = iter(line.split("config.asgi:application", 1)[1].split())
    flags = []
    for word in words:
        if word in ("--host", "--port"):
            next(words)  # and its value: each server here has its own
        else:
            flags.append(word)
    return flags


def manage(env: dict[str, str], *args: str, cwd: Path = REPO, timeout: float = 120) -> str:
    """`python manage.py ARGS` in `cwd`; its stdout, or ServerError with its output."""
    done = subprocess.run([sys.executable, "manage.py", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode:
        raise ServerError(f"manage.py {' '.join(args[:3])} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


# Migrations and collected static files depend on the code only, not on the settings the
# tests vary: made once per process and copied for every SQLite server (5-10 s each).
_prepared: list[Path] = []


def migrate_and_collectstatic(env: dict[str, str]) -> None:
    """A fresh database and STATIC_ROOT for `env`; for SQLite, copies of ones made once."""
    database, static = env.get("DATABASE_URL", ""), env.get("STATIC_ROOT")
    if not (database.startswith("sqlite:///") and static):
        _migrate_and_collectstatic(env)
        return
    if not _prepared:
        folder = Path(tempfile.mkdtemp(prefix="parley-prepared-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _migrate_and_collectstatic({**env, "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
                                    "STATIC_ROOT": str(folder / "static")})
        _prepared.append(folder)
    for suffix in ("", "-wal"):  # the WAL too, if the migrating process left one
        if (_prepared[0] / f"db.sqlite3{suffix}").exists():
            shutil.copyfile(_prepared[0] / f"db.sqlite3{suffix}", database.removeprefix("sqlite:///") + suffix)
    shutil.copytree(_prepared[0] / "static", static, dirs_exist_ok=True)


def _migrate_and_collectstatic(env: dict[str, str]) -> None:
    """A fresh database and STATIC_ROOT for `env`, the two at once."""
    collect = subprocess.Popen([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    manage(env, "migrate", "--noinput", "-v0")
    _, stderr = collect.communicate(timeout=120)
    if collect.returncode:
        raise ServerError(f"collectstatic failed:\n{stderr.decode(errors='replace')[-2000:]}")


def http_get(port: int, path: str, *, headers=None, tls: ssl.SSLContext | None = None, method="GET", body=None):
    """(status, headers, body) of one request to 127.0.0.1:port."""
    if tls is not None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=tls)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


class ServerProcess:
    """`command` serving 127.0.0.1:`port`, its output in `log` (a temporary file, removed
    by close(), when not given). Ready when `ready_path` answers 200 or, without one, when
    the port accepts connections."""

    def __init__(self, name: str, command: list[str], *, port: int, env: dict[str, str], cwd: Path = REPO,
                 log: Path | None = None, ready_path: str | None = None, new_session: bool = False,
                 stop_signal: int = signal.SIGTERM, stop_timeout: float = 10):
        self.name, self.command, self.port, self.env, self.cwd = name, command, port, env, cwd
        self.ready_path, self.new_session = ready_path, new_session
        self.stop_signal, self.stop_timeout = stop_signal, stop_timeout
        self.temporary_log = log is None
        if log is None:
            handle, path = tempfile.mkstemp(prefix=f"parley-{name}-", suffix=".log")
            os.close(handle)
            log = Path(path)
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self, *, wait: bool = True) -> "ServerProcess":
        """Start (again, on the same port, after a stop or a kill); wait until ready."""
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=self.new_session)
        if wait:
            self.wait_ready()
        return self

    @property
    def pid(self) -> int:
        return self.process.pid  # taskset execs the server: the same pid

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def _wait(self, ready, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise ServerError(f"{self.name} exited with {self.process.returncode}:\n{self.output()}")
            with contextlib.suppress(OSError):
                if ready():
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(f"{self.name} not {what} after {timeout:.0f}s:\n{self.output()}")
            time.sleep(0.1)

    def wait_listening(self, timeout: float = 30) -> None:
        def listening() -> bool:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True

        self._wait(listening, "listening", timeout)

    def wait_ready(self, timeout: float = 30) -> None:
        if self.ready_path is None:
            return self.wait_listening(timeout)
        # Asked as nginx asks (deploy/healthcheck.py): a Host Django allows, and HTTPS
        # already, or a PARLEY_HTTPS=true worker would answer with a redirect.
        hosts = [h.strip() for h in self.env.get("ALLOWED_HOSTS", "").split(",") if h.strip() not in ("", "*")]
        headers = {"Host": hosts[0].lstrip(".") if hosts else "localhost", "X-Forwarded-Proto": "https"}
        self._wait(lambda: http_get(self.port, self.ready_path, headers=headers)[0] == 200, "ready", timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def rss(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise ServerError("no VmRSS")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)

    def terminate(self) -> None:
        """Ask it to stop (stop_signal, SIGTERM unless said otherwise); stop() waits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(self.stop_signal)

    def stop(self) -> None:
        """SIGTERM (stop_signal), then SIGKILL if it is still there after stop_timeout."""
        self.terminate()
        if self.process is not None and self.process.poll() is None:
            try:
                self.process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def close(self) -> None:
        """Stop, and print the log (pytest shows it for a failing test); a temporary log is removed."""
        self.stop()
        print(f"\n===== {self.name} ({self.address}) =====\n{self.output()}")
        if self.temporary_log:
            with contextlib.suppress(OSError):
                self.log.unlink()


class Uvicorn(ServerProcess):
    """`uvicorn config.asgi:application` with the `make run` flags, then `flags`; `prefix`
    goes before the command (taskset). Ready when /healthz answers 200."""

    def __init__(self, name: str, env: dict[str, str], *flags: str, graceful: float = 2, port: int | None = None,
                 log: Path | None = None, prefix: Sequence[str] = (), new_session: bool = False):
        port = port or free_port()
        command = [*prefix, sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
                   "--port", str(port), *make_run_flags(), "--timeout-graceful-shutdown", f"{graceful:g}", *flags]
        super().__init__(name, command, port=port, env=env, log=log, ready_path="/healthz", new_session=new_session,
                         stop_timeout=graceful + 6)


def stop_all(servers: Sequence[ServerProcess]) -> None:
    """SIGTERM to every one at once, then each waited for (SIGKILL when it takes too long)."""
    for server in servers:
        server.terminate()
    for server in servers:
        server.stop()


def start_workers(env: dict[str, str], *flags: str, names: Sequence[str] = ("A", "B"),
                  logs: Sequence[Path] | None = None, **options) -> list[Uvicorn]:
    """One uvicorn worker per name on the same environment, started together and each
    waited for; all stopped again if one fails."""
    workers: list[Uvicorn] = []
    try:
        for i, name in enumerate(names):
            workers.append(Uvicorn(name, env, *flags, log=logs[i] if logs else None, **options))
            workers[-1].start(wait=False)
        for worker in workers:
            worker.wait_ready()
    except BaseException:
        stop_all(workers)
        raise
    return workers


@contextlib.contextmanager
def running(servers: Sequence[ServerProcess]) -> Iterator[Sequence[ServerProcess]]:
    """Stop and close `servers` (logs printed) however the block ends."""
    try:
        yield servers
    finally:
        stop_all(servers)
        for server in servers:
            server.close()


@contextlib.contextmanager
def browser_server(folder: Path, name: str, **settings) -> Iterator[Uvicorn]:
    """One started Parley for browser tests, on its own SQLite file, media and static files
    in `folder`; `settings` add to or override the environment (kept as `server.env`, for
    `manage`)."""
    import secrets

    env = clean_env(**{
        "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
        "MEDIA_ROOT": folder / "media",
        "STATIC_ROOT": folder / "static",
        "SECRET_KEY": f"{name}-" + secrets.token_urlsafe(40),
        "PARLEY_RATE_BURST": 1000,
        "PARLEY_SWEEP_SECONDS": 1,
        "LOG_LEVEL": "WARNING",
        **settings,
    })
    migrate_and_collectstatic(env)
    worker = Uvicorn(name, env, "--log-level", "warning", log=folder / "server.log")
    with running([worker]):
        worker.start()
        worker.env = env
        yield worker


@contextlib.contextmanager
def running_workers(env: dict[str, str], *flags: str, names: Sequence[str] = ("A", "B"), **options):
    """start_workers(...) for the length of the block; logs printed at the end."""
    with running(start_workers(env, *flags, names=names, **options)) as workers:
        yield workers
