"""Real processes for the deployment tests: uvicorn workers started with the production
flags, and nginx running deploy/nginx.conf (ports, paths and certificate swapped)."""

import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NGINX_CONF = REPO / "deploy" / "nginx.conf"
HEALTHCHECK = REPO / "deploy" / "healthcheck.py"
PRODUCTION_ENV = REPO / "deploy" / "production.env.example"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_env_file(path: Path = PRODUCTION_ENV) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def make_run_uvicorn_flags() -> list[str]:
    """The uvicorn flags `make run` uses, which every deployment must use too."""
    lines = (REPO / "Makefile").read_text().splitlines()
    line = next(text for text in lines if "uvicorn config.asgi:application" in text)
    flags = line.split("config.asgi:application", 1)[1].split()
    wanted = []
    for name in ("--ws-max-size", "--ws-per-message-deflate"):
        wanted += [name, flags[flags.index(name) + 1]]
    return wanted


def base_env(**overrides: str) -> dict[str, str]:
    """The test process's environment without Parley's settings (each test sets its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "DJANGO_"))}
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS",
                 "MEDIA_ROOT", "STATIC_ROOT", "LOG_FORMAT", "LOG_LEVEL"):
        env.pop(name, None)
    if "PARLEY_REDIS_PREFIX" in os.environ:
        env["PARLEY_REDIS_PREFIX"] = os.environ["PARLEY_REDIS_PREFIX"]
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env.update(overrides)
    return env


class Worker:
    """`uvicorn config.asgi:application` with the flags of deploy/parley@.service."""

    def __init__(self, name: str, env: dict[str, str]):
        self.name = name
        self.port = free_port()
        self.env = env
        self.log = tempfile.NamedTemporaryFile(prefix=f"parley-{name}-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "config.asgi:application",
                "--host", "127.0.0.1", "--port", str(self.port),
                *make_run_uvicorn_flags(),
                "--proxy-headers", "--forwarded-allow-ips=127.0.0.1",
                "--no-server-header", "--timeout-graceful-shutdown", "10",
            ],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def healthcheck(self) -> subprocess.CompletedProcess:
        """deploy/healthcheck.py, as the container HEALTHCHECK runs it."""
        return subprocess.run(
            [sys.executable, str(HEALTHCHECK), str(self.port)], env=self.env, capture_output=True, text=True, timeout=15
        )

    def wait_listening(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.name} exited with {self.process.returncode}:\n{self.output()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.1)
        raise AssertionError(f"worker {self.name} not listening after {timeout}s:\n{self.output()}")

    def wait_healthy(self, timeout: float = 30) -> None:
        self.wait_listening(timeout)
        deadline = time.monotonic() + timeout
        while self.healthcheck().returncode != 0:
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {self.name} not healthy:\n{self.output()}")
            time.sleep(0.2)

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.log.close()

    def cleanup(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)


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


# nginx --------------------------------------------------------------------------------


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost (the TLS server of nginx.conf)."""
    cert, key = directory / "fullchain.pem", directory / "privkey.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _swap(text: str, pattern: str, replacement: str, count: int = 1) -> str:
    new, made = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    assert made == count, f"deploy/nginx.conf changed: expected {count} match(es) of {pattern!r}, found {made}"
    return new


def nginx_config(*, prefix: Path, http_port: int, https_port: int, workers: list[Worker], static: Path,
                 media: Path, cert: Path, key: Path) -> str:
    """deploy/nginx.conf, only made runnable here: loopback ports, the test's workers,
    files under `prefix`, and a response header naming the worker that answered."""
    text = NGINX_CONF.read_text()
    text = _swap(text, r"^worker_processes .*;$", "worker_processes 2;")
    text = _swap(text, r"^pid .*;$", f"pid {prefix}/nginx.pid;")
    if os.geteuid() == 0:  # worker processes would run as `nobody` and not read the test's files
        text = "user root;\n" + text
    servers = re.findall(r"^\s*server web\d+:8000 .*;$", text, flags=re.MULTILINE)
    assert len(servers) == len(workers), servers
    for line, worker in zip(servers, workers, strict=True):
        text = text.replace(line, re.sub(r"web\d+:8000", worker.address, line), 1)
    text = _swap(text, r"^(\s*)listen 80;$", rf"\1listen 127.0.0.1:{http_port};")
    text = _swap(text, r"^(\s*)listen 443 ssl http2;$", rf"\1listen 127.0.0.1:{https_port} ssl http2;")
    text = _swap(text, r"ssl_certificate /etc/nginx/certs/fullchain.pem;", f"ssl_certificate {cert};")
    text = _swap(text, r"ssl_certificate_key /etc/nginx/certs/privkey.pem;", f"ssl_certificate_key {key};")
    text = _swap(text, r"alias /srv/parley/static/;", f"alias {static}/;")
    text = _swap(text, r"alias /srv/parley/media/;", f"alias {media}/;")
    text = _swap(text, r"^(\s*)access_log /dev/stdout parley_json;$", rf"\1access_log {prefix}/access.log parley_json;")
    temp = "\n".join(
        f"    {kind}_temp_path {prefix}/{kind}_temp;" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = _swap(text, r"^http \{$", "http {\n" + temp)
    # Which worker answered (its address; after a failed try, "dead, live").
    text = _swap(
        text,
        r"^(\s*)server_name _;  # Django checks",
        r"\1add_header X-Upstream $upstream_addr always;\n\1server_name _;  # Django checks",
    )
    return text


class Nginx:
    def __init__(self, workers: list[Worker], *, static: Path, media: Path):
        binary = nginx_binary()
        assert binary, "nginx is not installed"
        self.prefix = Path(tempfile.mkdtemp(prefix="parley-nginx-"))
        self.http_port, self.https_port = free_port(), free_port()
        cert, key = make_certificate(self.prefix)
        self.tls = ssl.create_default_context(cafile=str(cert))
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(
            nginx_config(prefix=self.prefix, http_port=self.http_port, https_port=self.https_port, workers=workers,
                         static=static, media=media, cert=cert, key=key)
        )
        test = subprocess.run([binary, "-t", "-p", str(self.prefix), "-c", str(self.conf)], capture_output=True, text=True)
        assert test.returncode == 0, f"nginx -t failed:\n{test.stderr}\n{self.conf.read_text()}"
        self.log = open(self.prefix / "stderr.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [binary, "-p", str(self.prefix), "-c", str(self.conf), "-g", "daemon off;"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"nginx exited:\n{self.output()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.https_port), timeout=1):
                break
            assert time.monotonic() < deadline, f"nginx not listening:\n{self.output()}"
            time.sleep(0.05)

    def ws_url(self, path: str) -> str:
        return f"wss://127.0.0.1:{self.https_port}{path}"

    def get(self, path: str, **kwargs):
        return http_get(self.https_port, path, tls=self.tls, **kwargs)

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        parts = []
        for name in ("stderr.log", "access.log"):
            path = self.prefix / name
            if path.exists():
                parts.append(f"--- nginx {name} ---\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.log.close()

    def cleanup(self) -> None:
        shutil.rmtree(self.prefix, ignore_errors=True)
