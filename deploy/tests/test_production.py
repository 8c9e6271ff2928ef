"""The production configuration, checked in the ordinary (SQLite) pass of `make test`.

- `manage.py check --deploy` with deploy/production.env.example is clean once a real
  SECRET_KEY is filled in (and catches the placeholder left in).
- docker-compose.yml, the Dockerfile, deploy/nginx.conf and the systemd unit agree with
  each other and with `make run` (Docker cannot run here: this is the structural check).
- LOG_FORMAT=json logs one JSON object per line on stdout.
- deploy/healthcheck.py (the container HEALTHCHECK) passes for a healthy production-like
  worker and fails, with /healthz answering 503, when its database is unreachable.
"""

import json
import logging
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from testkit.servers import REPO, Uvicorn, clean_env, free_port, http_get, make_run_flags, running, stop_all

pytestmark = pytest.mark.dbless

CLEAN = "System check identified no issues"
PRODUCTION_ENV = REPO / "deploy" / "production.env.example"


def read_env_file(path: Path = PRODUCTION_ENV) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _missing_make_run_flags(command: list[str]) -> list[str]:
    """`make run`'s uvicorn flags (each with its value) that `command` lacks: every
    deployment must run uvicorn as `make run` does."""
    options: list[str] = []
    for word in make_run_flags():
        if word.startswith("--"):
            options.append(word)
        else:
            options[-1] += f" {word}"
    joined = " ".join(command)
    return [option for option in options if option not in joined]


def _production_env(tmp_path, **overrides) -> dict[str, str]:
    values = read_env_file()
    # Paths of the example are the server's; here they are the test's.
    values.update(MEDIA_ROOT=str(tmp_path / "media"), STATIC_ROOT=str(tmp_path / "static"))
    return clean_env(**{**values, **overrides})


def _check_deploy(env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )


def test_check_deploy_is_clean_with_the_documented_production_environment(tmp_path):
    example = read_env_file()
    assert example["PARLEY_HTTPS"] == "true" and example["DEBUG"] == "false"
    assert example["SECRET_KEY"] == "CHANGE-ME"
    env = _production_env(tmp_path, SECRET_KEY=secrets.token_urlsafe(50))
    result = _check_deploy(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert CLEAN in result.stdout, result.stdout + result.stderr


def test_check_deploy_refuses_the_placeholder_secret_key(tmp_path):
    result = _check_deploy(_production_env(tmp_path))
    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = _production_env(tmp_path)
    del env["SECRET_KEY"]
    result = _check_deploy(env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set when PARLEY_HTTPS is true" in result.stderr


# Docker and systemd files ---------------------------------------------------------------


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _worker_commands(compose: dict) -> dict[str, list[str]]:
    commands = {}
    for name, service in compose["services"].items():
        command = service.get("command")
        if command and "uvicorn" in (command if isinstance(command, str) else " ".join(command)):
            commands[name] = shlex.split(command) if isinstance(command, str) else command
    return commands


def test_compose_file_has_the_whole_deployment():
    compose = _compose()
    services = compose["services"]
    assert {"postgres", "redis", "nginx", "retention", "release"} <= set(services)
    workers = _worker_commands(compose)
    assert len(workers) >= 2, workers

    nginx = services["nginx"]
    nginx_ip = nginx["networks"]["parley"]["ipv4_address"]
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    assert set(nginx["depends_on"]) == set(workers)
    for name, command in workers.items():
        assert not _missing_make_run_flags(command), (name, command)
        assert "--proxy-headers" in command
        # Only nginx is trusted for X-Forwarded-*.
        assert command[command.index("--forwarded-allow-ips") + 1] == nginx_ip
        service = services[name]
        assert service["env_file"] == "deploy/production.env"
        assert "deploy/healthcheck.py" in service["healthcheck"]["test"]
        assert service["depends_on"]["release"]["condition"] == "service_completed_successfully"
        assert "media:/srv/parley/media" in service["volumes"]

    # nginx balances over exactly these workers.
    upstream = re.findall(r"^\s*server (web\d+):8000 ", (REPO / "deploy" / "nginx.conf").read_text(), re.MULTILINE)
    assert sorted(upstream) == sorted(workers)

    retention = services["retention"]["command"]
    assert retention[-3:] == ["manage.py", "purge_messages", "--every"]
    assert "migrate" in " ".join(services["release"]["command"])
    assert services["postgres"]["healthcheck"] and services["redis"]["healthcheck"]
    assert set(compose["volumes"]) >= {"pgdata", "media", "static"}
    # The example environment is the one the compose file expects to be copied.
    assert (REPO / "deploy" / "production.env.example").exists()
    assert "deploy/production.env" in (REPO / ".dockerignore").read_text()


def test_compose_config_if_docker_compose_is_available():
    """`docker compose config` validates the file against Compose's schema; no engine needed."""
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True) if _has("docker") else None
    if probe is None or probe.returncode != 0:
        pytest.skip("docker compose is not installed here (the structural test above still ran)")
    env_file = REPO / "deploy" / "production.env"
    created = not env_file.exists()
    if created:
        env_file.write_text((REPO / "deploy" / "production.env.example").read_text())
    try:
        result = subprocess.run(["docker", "compose", "config", "--quiet"], cwd=REPO, capture_output=True, text=True)
    finally:
        if created:
            env_file.unlink()
    assert result.returncode == 0, result.stderr


def _has(program: str) -> bool:
    import shutil

    return shutil.which(program) is not None


def test_dockerfile_is_small_non_root_pinned_and_health_checked():
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.MULTILINE)
    assert "COPY requirements.lock" in text and "-r /tmp/requirements.txt" in text
    assert "collectstatic --noinput" in text
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n\s+CMD \[\"python\", \"deploy/healthcheck.py\"\]", text, re.MULTILINE)
    cmd = json.loads(re.search(r"^CMD (\[.*?\])$", text, re.MULTILINE | re.DOTALL).group(1).replace("\\\n", ""))
    assert not _missing_make_run_flags(cmd), cmd
    assert "--proxy-headers" in cmd
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env", "var"} <= set(ignored)


def test_systemd_unit_runs_uvicorn_like_make_run_behind_local_nginx():
    unit = (REPO / "deploy" / "parley@.service").read_text()
    exec_start = re.search(r"^ExecStart=(.*?)(?<!\\)$", unit, re.MULTILINE | re.DOTALL).group(1)
    command = shlex.split(exec_start.replace("\\\n", " "))
    assert not _missing_make_run_flags(command), command
    assert "--proxy-headers" in command and "--forwarded-allow-ips=127.0.0.1" in command
    assert command[command.index("--port") + 1] == "%i"
    assert "EnvironmentFile=/etc/parley/parley.env" in unit
    retention = (REPO / "deploy" / "parley-retention.service").read_text()
    assert "manage.py purge_messages --every" in retention


# Logging ------------------------------------------------------------------------------


def test_json_log_lines_on_stdout(tmp_path):
    script = (
        "import logging, django; django.setup();"
        "log = logging.getLogger('parley.test');"
        "log.info('hello %s', 'world', extra={'room': 'townhall'});\n"
        "try:\n    1/0\nexcept ZeroDivisionError:\n    log.exception('failed')\n"
        "logging.getLogger('uvicorn.access').info('%s - \"%s %s HTTP/%s\" %d', '10.0.0.1:5', 'GET', '/healthz', '1.1', 200)"
    )
    env = clean_env(LOG_FORMAT="json", SECRET_KEY="x" * 50, STATIC_ROOT=str(tmp_path / "static"))
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    hello, failed, access = lines
    assert hello["message"] == "hello world" and hello["level"] == "INFO" and hello["logger"] == "parley.test"
    assert hello["room"] == "townhall" and hello["time"].endswith("+00:00")
    assert failed["level"] == "ERROR" and "ZeroDivisionError" in failed["exception"]
    assert (access["method"], access["path"], access["status"]) == ("GET", "/healthz", 200)


def test_json_formatter_never_fails_on_odd_extras():
    from core.jsonlog import JsonFormatter

    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "value %r", (object,), None)
    record.payload = {1, 2}  # not JSON: rendered with str()
    entry = json.loads(JsonFormatter().format(record))
    assert entry["payload"] == "{1, 2}" and entry["message"].startswith("value <class")


# Health check -------------------------------------------------------------------------


def _healthcheck(worker: Uvicorn) -> subprocess.CompletedProcess:
    """deploy/healthcheck.py, as the container HEALTHCHECK runs it."""
    return subprocess.run([sys.executable, str(REPO / "deploy" / "healthcheck.py"), str(worker.port)], env=worker.env,
                          capture_output=True, text=True, timeout=15)


def test_container_healthcheck_passes_healthy_and_fails_without_database(tmp_path):
    production = read_env_file()
    common = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "PARLEY_HTTPS": "true",  # the check must get past the HTTPS redirect
        "ALLOWED_HOSTS": production["ALLOWED_HOSTS"],  # ... and the Host check
        "STATIC_ROOT": str(tmp_path / "static"),
        "MEDIA_ROOT": str(tmp_path / "media"),
        "LOG_FORMAT": "json",
    }
    trust_local_proxy = "--forwarded-allow-ips=127.0.0.1"
    healthy = Uvicorn("healthy", clean_env(**common, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}"),
                      trust_local_proxy, graceful=10)
    closed = free_port()  # nothing listens there
    broken = Uvicorn("no-db", clean_env(**common, DATABASE_URL=f"postgres://parley@127.0.0.1:{closed}/parley"),
                     trust_local_proxy, graceful=10)
    with running([healthy, broken]):
        healthy.start(wait=False)
        broken.start(wait=False)
        healthy.wait_ready()
        broken.wait_listening()
        result = _healthcheck(healthy)
        assert result.returncode == 0, result
        result = _healthcheck(broken)
        assert result.returncode == 1, result
        assert "HTTP 503" in result.stderr and '"database": false' in result.stderr, result.stderr
        status, _, body = http_get(
            broken.port, "/healthz", headers={"Host": production["ALLOWED_HOSTS"], "X-Forwarded-Proto": "https"}
        )
        assert status == 503 and json.loads(body)["database_error"] == "OperationalError"
        # Without the proxy's headers the production worker redirects to HTTPS: what the
        # health check has to (and does) avoid.
        status, headers, _ = http_get(healthy.port, "/healthz", headers={"Host": production["ALLOWED_HOSTS"]})
        assert status == 301 and headers["Location"].startswith("https://")
        stop_all([healthy, broken])
        output = healthy.output()
    assert "Traceback" not in output, output
