"""deploy/nginx.conf run for real in front of test workers: only ports, paths and the
certificate swapped (nginx_config), as a foreground nginx with its own prefix."""

import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
from pathlib import Path

from testkit.servers import REPO, ServerError, ServerProcess, free_port, http_get

NGINX_CONF = REPO / "deploy" / "nginx.conf"


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


def nginx_config(*, prefix: Path, http_port: int, https_port: int, workers: list[ServerProcess], static: Path,
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


class Nginx(ServerProcess):
    """nginx in the foreground with nginx_config(...) in a prefix of its own; ready when
    its HTTPS port accepts connections; stopped with SIGQUIT (finish what is in flight)."""

    def __init__(self, workers: list[ServerProcess], *, static: Path, media: Path):
        binary = nginx_binary()
        if binary is None:
            raise ServerError("nginx is not installed")
        self.prefix = Path(tempfile.mkdtemp(prefix="parley-nginx-"))
        self.http_port, https_port = free_port(), free_port()
        cert, key = make_certificate(self.prefix)
        self.tls = ssl.create_default_context(cafile=str(cert))
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(
            nginx_config(prefix=self.prefix, http_port=self.http_port, https_port=https_port, workers=workers,
                         static=static, media=media, cert=cert, key=key)
        )
        test = subprocess.run([binary, "-t", "-p", str(self.prefix), "-c", str(self.conf)], capture_output=True, text=True)
        if test.returncode:
            raise ServerError(f"nginx -t failed:\n{test.stderr}\n{self.conf.read_text()}")
        super().__init__("nginx", [binary, "-p", str(self.prefix), "-c", str(self.conf), "-g", "daemon off;"],
                         port=https_port, env=dict(os.environ), log=self.prefix / "stderr.log",
                         stop_signal=signal.SIGQUIT, stop_timeout=5)
        self.start()

    @property
    def https_port(self) -> int:
        return self.port

    def ws_url(self, path: str) -> str:
        return f"wss://127.0.0.1:{self.https_port}{path}"

    def get(self, path: str, **kwargs):
        return http_get(self.https_port, path, tls=self.tls, **kwargs)

    def output(self) -> str:
        parts = []
        for name in ("stderr.log", "access.log"):
            path = self.prefix / name
            if path.exists():
                parts.append(f"--- nginx {name} ---\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.prefix, ignore_errors=True)
