"""Parley's fan-out benchmark: Parley against two reference servers, one run, one report.

    python -m benchmark.run            # what `make bench` runs
    python -m benchmark.run --smoke    # a few seconds, exit status says whether it works

Starts each server in turn pinned to core 0 (Parley under uvicorn; the Channels tutorial
consumer under daphne; a bare python-websockets broadcast server), drives it from the
Node load generator pinned to core 1 (benchmark/loadgen/loadgen.js), and writes
results.md, results.json and p99.png under benchmark/results/<timestamp>/.
Everything listens on 127.0.0.1; every wait has a time limit. Settings: --help, or the
BENCH_* environment variables (benchmark/README.md).

    python -m benchmark.run --servers parley --sqlite --workers 1 2 --workers-unpinned   # `make bench-scale`

With --workers other than the default 1, every Parley run uses the scaled configuration
(a fresh PostgreSQL database per run, dropped afterwards, and the Redis channel layer
under a unique prefix), W uvicorn processes on W ports, the sockets spread round-robin
over them; results.md gets a "Scaling with workers" section. --sqlite adds the embedded
single worker (SQLite, in-memory layer) to the same run, and a "Ratios" section compares
them all.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testkit.servers import ServerProcess, Uvicorn, clean_env, free_port, manage, start_workers

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
LOADGEN_DIR = BENCH_DIR / "loadgen"
REFERENCE_DIR = BENCH_DIR / "reference_channels"
PYTHON = sys.executable
SERVERS = ("parley", "channels", "raw")
LABELS = {"parley": "Parley", "channels": "Channels tutorial", "raw": "raw websockets"}
SERVER_CORE, LOADGEN_CORE = 0, 1
# How long the machine is watched before a run, to tell whether something else is running.
BUSY_SECONDS = 3.0
SENDER_USERS, RECEIVER_USERS = 4, 100
# The scaled configuration (--workers): PostgreSQL server (a database is created in it per
# run) and Redis, both on 127.0.0.1.
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

PARLEY_SEED = """
import json
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from chat import services

User = get_user_model()

def make(name):
    user = User.objects.create_user(username=name)  # no password: token only
    return user, Token.objects.create(user=user).key

senders = [make(f"bench_s{i}") for i in range(SENDERS)]
receivers = [make(f"bench_r{i}") for i in range(RECEIVERS)]
room = services.room_create(creator=senders[0][0], slug="bench", name="Benchmark")
for user, _ in senders[1:] + receivers:
    services.room_join(user=user, room=room)
print("BENCH_SEED " + json.dumps({"senders": [k for _, k in senders], "receivers": [k for _, k in receivers]}))
"""


def env_list(name: str, default: str, cast=int) -> list:
    return [cast(x) for x in os.environ.get(name, default).replace(",", " ").split()]


def parse_args(argv=None) -> argparse.Namespace:
    e = os.environ.get
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="one tiny configuration, a few seconds; exit 1 unless all servers deliver without loss",
    )
    p.add_argument("--servers", nargs="+", choices=SERVERS, default=env_list("BENCH_SERVERS", " ".join(SERVERS), str))
    p.add_argument(
        "--receivers",
        nargs="+",
        type=int,
        default=env_list("BENCH_RECEIVERS", "50 200 1000"),
        help="N values (BENCH_RECEIVERS)",
    )
    p.add_argument("--senders", type=int, default=int(e("BENCH_SENDERS", "4")))
    p.add_argument("--step-seconds", type=float, default=float(e("BENCH_STEP_SECONDS", "5")))
    p.add_argument(
        "--drain-seconds",
        type=float,
        default=float(e("BENCH_DRAIN_SECONDS", "2")),
        help="wait after a step's last send before counting the missing as lost",
    )
    p.add_argument(
        "--start-deliveries",
        type=float,
        default=float(e("BENCH_START_DELIVERIES", "2000")),
        help="first step's rate, in deliveries/s (msg/s = this / N)",
    )
    p.add_argument("--rate-factor", type=float, default=float(e("BENCH_RATE_FACTOR", "2")))
    p.add_argument("--rate-max", type=float, default=float(e("BENCH_RATE_MAX", "50000")), help="msg/s")
    p.add_argument("--max-steps", type=int, default=int(e("BENCH_MAX_STEPS", "16")))
    p.add_argument(
        "--refine-steps",
        type=int,
        default=int(e("BENCH_REFINE_STEPS", "3")),
        help="bisection steps after the first failure",
    )
    p.add_argument(
        "--rates",
        nargs="+",
        type=float,
        default=env_list("BENCH_RATES", "", float),
        help="fixed msg/s steps instead of stepping up",
    )
    p.add_argument("--p99-ms", type=float, default=float(e("BENCH_P99_MS", "200")))
    p.add_argument("--payload-bytes", type=int, default=int(e("BENCH_PAYLOAD_BYTES", "64")))
    p.add_argument(
        "--idle",
        nargs="*",
        type=int,
        default=env_list("BENCH_IDLE", "1000 5000"),
        help="idle-connection checkpoints (empty: skip)",
    )
    p.add_argument("--idle-servers", nargs="*", choices=SERVERS, default=env_list("BENCH_IDLE_SERVERS", "parley", str))
    p.add_argument(
        "--out", default=e("BENCH_OUT", ""), help="results directory (default benchmark/results/<timestamp>)"
    )
    p.add_argument(
        "--deadline-seconds",
        type=float,
        default=float(e("BENCH_DEADLINE_SECONDS", "600")),
        help="limit per load-generator run",
    )
    p.add_argument(
        "--workers",
        nargs="+",
        type=int,
        default=env_list("BENCH_WORKERS", "1"),
        help="Parley worker-process counts (BENCH_WORKERS); anything but '1' runs every Parley "
        "configuration on PostgreSQL + Redis (BENCH_POSTGRES_URL, BENCH_REDIS_URL)",
    )
    p.add_argument(
        "--workers-unpinned",
        action="store_true",
        default=e("BENCH_WORKERS_UNPINNED", "") not in ("", "0"),
        help="with --workers: also run each worker count unpinned (free to use every core), "
        "besides pinned to the server core",
    )
    p.add_argument(
        "--sqlite",
        action="store_true",
        default=e("BENCH_SQLITE", "") not in ("", "0"),
        help="with --workers: also run 1 worker on SQLite (the embedded configuration) in the same run, "
        "as the reference of the ratios section",
    )
    args = p.parse_args(argv)
    if any(w < 1 for w in args.workers) or len(args.workers) > 8 or max(args.workers) > 8:
        p.error("--workers: between 1 and 8 processes, at most 8 values")
    if args.smoke:
        args.receivers = env_list("BENCH_RECEIVERS", "5")
        args.rates = args.rates or [20.0]
        args.step_seconds = float(e("BENCH_STEP_SECONDS", "2"))
        args.idle = env_list("BENCH_IDLE", "20")
        args.deadline_seconds = 60
    return args


# Processes -----------------------------------------------------------------------------


def pinning() -> tuple[list[str], list[str]]:
    """taskset prefixes for server and load generator, or none when two cores are not ours."""
    cores = os.sched_getaffinity(0)
    if shutil.which("taskset") and {SERVER_CORE, LOADGEN_CORE} <= cores:
        return ["taskset", "-c", str(SERVER_CORE)], ["taskset", "-c", str(LOADGEN_CORE)]
    print(f"warning: cores {sorted(cores)} available, not pinning server and load generator", file=sys.stderr)
    return [], []


def start_parley(
    tmp: Path, pin: list, out: Path, receiver_users: int, *, workers: int = 1, backend: dict | None = None, tag: str = ""
) -> tuple[list[Uvicorn], dict]:
    """Migrate, seed and start `workers` uvicorn processes of Parley on their own ports.

    backend None: SQLite in tmp and the in-memory channel layer (one process only);
    otherwise {"database_url", "redis_url", "redis_prefix"}: PostgreSQL + Redis."""
    env = clean_env(
        DEBUG="false",
        DATABASE_URL=backend["database_url"] if backend else f"sqlite:///{tmp / 'parley.sqlite3'}",
        STATIC_ROOT=tmp / "static",
        MEDIA_ROOT=tmp / "media",
        PARLEY_RATE_BURST=1_000_000,
        PARLEY_MAX_SOCKETS_PER_USER=100_000,
        PARLEY_MAX_SOCKETS_PER_IP=100_000,  # every simulated client is 127.0.0.1
        **({"REDIS_URL": backend["redis_url"], "PARLEY_REDIS_PREFIX": backend["redis_prefix"]} if backend else {}),
    )
    if workers > 1 and not backend:
        raise RuntimeError("several Parley workers need the PostgreSQL + Redis backend")
    manage(env, "migrate", "--noinput")
    seed = PARLEY_SEED.replace("SENDERS", str(SENDER_USERS)).replace("RECEIVERS", str(receiver_users))
    line = next(x for x in manage(env, "shell", "-c", seed).splitlines() if x.startswith("BENCH_SEED "))
    tokens = json.loads(line.split(" ", 1)[1])
    # `name` is "parley" for each: the load generator speaks Parley's protocol to all of them.
    logs = [out / (f"server-parley-{tag}-{i}.log" if tag else "server-parley.log") for i in range(workers)]
    servers = start_workers(env, names=["parley"] * workers, logs=logs, prefix=pin, new_session=True)
    return servers, tokens


# The scaled configuration's backend: a fresh PostgreSQL database and a Redis prefix ---


def _admin_dsn() -> str:
    return POSTGRES_URL.rstrip("/") + "/postgres"


def create_database(name: str) -> str:
    import psycopg

    with psycopg.connect(_admin_dsn(), autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{POSTGRES_URL.rstrip('/')}/{name}"


def drop_database(name: str) -> None:
    import psycopg

    try:
        with psycopg.connect(_admin_dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception as error:  # noqa: BLE001 - report, don't mask the run's own outcome
        print(f"warning: could not drop database {name}: {error}", file=sys.stderr)


def clear_redis_prefix(prefix: str) -> None:
    """Delete the keys the run left under its prefix (cache, presence); bounded."""
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
        keys = []
        for key in client.scan_iter(match=f"*{prefix}*", count=1000):
            keys.append(key)
            if len(keys) >= 100_000:
                break
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
        client.close()
    except Exception as error:  # noqa: BLE001
        print(f"warning: could not clear Redis prefix {prefix}: {error}", file=sys.stderr)


class RedisMemory:
    """Redis `used_memory` sampled while a scenario runs: its peak above the level at start."""

    def __init__(self):
        import threading

        import redis

        self.client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
        self.base = self.read()
        self.peak = self.base
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()

    def read(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def poll(self) -> None:
        while not self.stop.wait(0.25):
            try:
                self.peak = max(self.peak, self.read())
            except Exception:  # noqa: BLE001 - a missed sample only lowers the peak
                pass

    def grown_kib(self) -> float:
        self.stop.set()
        self.thread.join(2)
        self.client.close()
        return (self.peak - self.base) / 1024


def check_scaled_backend() -> None:
    """Fail early, with a reason, when PostgreSQL or Redis is not reachable."""
    import psycopg
    import redis

    try:
        psycopg.connect(_admin_dsn(), connect_timeout=5).close()
    except Exception as error:  # noqa: BLE001
        raise SystemExit(f"--workers needs PostgreSQL at {POSTGRES_URL} (BENCH_POSTGRES_URL): {error}") from error
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=5).ping()
    except Exception as error:  # noqa: BLE001
        raise SystemExit(f"--workers needs Redis at {REDIS_URL} (BENCH_REDIS_URL): {error}") from error


def start_channels(tmp: Path, pin: list, out: Path) -> ServerProcess:
    env = clean_env(DJANGO_SETTINGS_MODULE="refchat.settings", REFCHAT_DB=tmp / "refchat.sqlite3")
    manage(env, "migrate", "--noinput", cwd=REFERENCE_DIR)
    port = free_port()
    cmd = pin + [str(Path(PYTHON).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port), "refchat.asgi:application"]
    return ServerProcess("channels", cmd, port=port, env=env, cwd=REFERENCE_DIR, log=out / "server-channels.log",
                         new_session=True).start()


def start_raw(pin: list, out: Path) -> ServerProcess:
    port = free_port()
    cmd = pin + [PYTHON, str(BENCH_DIR / "raw_server.py"), str(port)]
    return ServerProcess("raw", cmd, port=port, env=clean_env(), cwd=BENCH_DIR, log=out / "server-raw.log",
                         new_session=True).start()


# Load generator ------------------------------------------------------------------------


def ensure_loadgen() -> None:
    if not shutil.which("node") or not shutil.which("npm"):
        raise SystemExit("node and npm are needed for the load generator (benchmark/README.md)")
    if not (LOADGEN_DIR / "node_modules" / "ws" / "package.json").exists():
        print("installing the load generator's packages (npm ci)", file=sys.stderr)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=LOADGEN_DIR, check=True, timeout=300)


def run_loadgen(config: dict, pin: list, out: Path, tag: str) -> list[dict]:
    path = out / f"loadgen-{tag}.json"
    path.write_text(json.dumps(config))
    cmd = pin + ["node", str(LOADGEN_DIR / "loadgen.js"), str(path)]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=config["deadlineSeconds"] + 60)
    path.unlink()  # it holds tokens
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode and not any(e["event"] == "error" for e in events):
        message = next((e["message"] for e in events if e["event"] == "error"), f"exit status {done.returncode}")
        events.append({"event": "error", "server": config["server"], "message": message})
    return events


def server_url(server: ServerProcess) -> str:
    return f"ws://127.0.0.1:{server.port}/ws/chat/bench/" if server.name != "raw" else f"ws://127.0.0.1:{server.port}/"


def loadgen_config(args, server: ServerProcess | list[ServerProcess], tokens: dict | None, **extra) -> dict:
    servers = server if isinstance(server, list) else [server]
    server = servers[0]
    return {
        "server": server.name,
        "protocol": server.name,
        "url": ",".join(server_url(s) for s in servers),  # connection i goes to the (i mod W)-th
        "origin": f"http://127.0.0.1:{server.port}",
        "serverPid": server.pid,
        "serverPids": [s.pid for s in servers],  # CPU and RSS summed over these
        "clockTicks": os.sysconf("SC_CLK_TCK"),
        "senderTokens": tokens["senders"] if tokens else None,
        "receiverTokens": tokens["receivers"] if tokens else None,
        "senders": args.senders,
        "stepSeconds": args.step_seconds,
        "drainSeconds": args.drain_seconds,
        "rateFactor": args.rate_factor,
        "rateMax": args.rate_max,
        "maxSteps": args.max_steps,
        "refineSteps": args.refine_steps,
        "rates": args.rates or None,
        "p99LimitMs": args.p99_ms,
        "payloadBytes": args.payload_bytes,
        "connectConcurrency": 50,
        "idleSettleSeconds": 0.5 if args.smoke else 2,
        "deadlineSeconds": args.deadline_seconds,
        **extra,
    }


def label(result: dict) -> str:
    return result.get("label") or LABELS[result["server"]]


def fanout_runs(result: dict, args, servers: list[ServerProcess], tokens: dict | None, loadgen_pin: list, out: Path) -> None:
    """The fan-out scenario at every N against one server (or one set of worker processes)."""
    name, tag = result["server"], result.get("tag", result["server"])
    for n in args.receivers:
        print(f"-- {label(result)}: {n} receivers, {args.senders} senders", file=sys.stderr, flush=True)
        config = loadgen_config(
            args, servers, tokens, mode="fanout", receivers=n, rateStart=max(args.start_deliveries / n, 0.5)
        )
        config["label"] = label(result) if result.get("label") else name
        for event in run_loadgen(config, loadgen_pin, out, f"{tag}-{n}"):
            if event["event"] == "step":
                result["steps"].append(event)
            elif event["event"] == "fanout":
                result["fanout"].append(event)
            elif event["event"] == "error":
                result["errors"].append(f"N={n}: {event['message']}")


def idle_run(result: dict, args, servers: list, tokens: dict | None, loadgen_pin: list, out: Path) -> None:
    """The idle-connection scenario; on Redis also what the sockets cost there (presence)."""
    print(f"-- {label(result)}: idle connections up to {max(args.idle)}", file=sys.stderr, flush=True)
    config = loadgen_config(args, servers, tokens, mode="idle", idle=max(args.idle), idleCounts=args.idle)
    redis_memory = RedisMemory() if result.get("backend") == "postgresql+redis" else None
    for event in run_loadgen(config, loadgen_pin, out, f"{result.get('tag', result['server'])}-idle"):
        if event["event"] == "idle":
            result["idle"] = event["checkpoints"]
        elif event["event"] == "error":
            result["errors"].append(f"idle: {event['message']}")
    if redis_memory:
        result["redis_kib_per_1000"] = round(1000 * redis_memory.grown_kib() / max(args.idle), 1)


def bench_parley_workers(workers: int, pinned: bool, args, tmp: Path, pins: tuple, out: Path, stamp: str) -> dict:
    """Parley on PostgreSQL + Redis with `workers` processes, pinned to the server core or not."""
    server_pin, loadgen_pin = pins
    tag = f"w{workers}-{'pinned' if pinned else 'unpinned'}"
    result = {
        "server": "parley",
        "label": f"Parley ×{workers}, {'pinned' if pinned else 'unpinned'}",
        "tag": f"parley-{tag}",
        "workers": workers,
        "pinned": pinned,
        "backend": "postgresql+redis",
        "fanout": [],
        "steps": [],
        "idle": None,
        "errors": [],
    }
    print(f"\n== {result['label']} (PostgreSQL + Redis): starting", file=sys.stderr, flush=True)
    db = f"parley_bench_{stamp.replace('-', '_')}_{tag.replace('-', '_')}"
    prefix = f"parley-bench-{stamp}-{tag}"
    receiver_users = min(RECEIVER_USERS, max(args.receivers))
    try:
        backend = {"database_url": create_database(db), "redis_url": REDIS_URL, "redis_prefix": prefix}
        (tmp / tag).mkdir(exist_ok=True)
        servers, tokens = start_parley(
            tmp / tag, server_pin if pinned else [], out, receiver_users, workers=workers, backend=backend, tag=tag
        )
        result["pids"] = [s.pid for s in servers]
        result["ports"] = [s.port for s in servers]
        try:
            if args.idle and workers == 1 and pinned:
                idle_run(result, args, servers, tokens, loadgen_pin, out)
            fanout_runs(result, args, servers, tokens, loadgen_pin, out)
        finally:
            for server in servers:
                server.stop()
    except (RuntimeError, subprocess.SubprocessError, OSError) as error:
        print(f"{result['label']}: {error}", file=sys.stderr)
        result["errors"].append(str(error))
    finally:
        drop_database(db)
        clear_redis_prefix(prefix)
    return result


def bench_server(name: str, args, tmp: Path, pins: tuple, out: Path) -> dict:
    server_pin, loadgen_pin = pins
    print(f"\n== {LABELS[name]}: starting", file=sys.stderr, flush=True)
    tokens = None
    receiver_users = min(RECEIVER_USERS, max(args.receivers + (args.idle or [1])))
    if name == "parley":
        (server,), tokens = start_parley(tmp, server_pin, out, receiver_users)
    elif name == "channels":
        server = start_channels(tmp, server_pin, out)
    else:
        server = start_raw(server_pin, out)
    result = {"server": name, "pid": server.pid, "fanout": [], "steps": [], "idle": None, "errors": []}
    if name == "parley" and args.workers != [1]:
        result.update(label="Parley ×1, SQLite", tag="parley-sqlite", backend="sqlite")
    try:
        # Idle connections first, while the server is fresh: its baseline is not a heap
        # already grown (and freed) by the fan-out runs.
        if args.idle and name in args.idle_servers:
            idle_run(result, args, [server], tokens, loadgen_pin, out)
        fanout_runs(result, args, [server], tokens, loadgen_pin, out)
    finally:
        server.stop()
    return result


# Report --------------------------------------------------------------------------------


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")

    def out(cmd, cwd=REPO):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=10).stdout.strip()
        except OSError:
            return "?"

    ws_version = json.loads((LOADGEN_DIR / "node_modules" / "ws" / "package.json").read_text())["version"]
    import websockets

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": out(["node", "--version"]),
        "ws": ws_version,
        "websockets": websockets.__version__,
        "commit": out(["git", "rev-parse", "--short", "HEAD"])
        + (" (with local changes)" if out(["git", "status", "--porcelain"]) else ""),
    }


def busy_now(seconds: float = BUSY_SECONDS) -> float | None:
    """How busy the whole machine is right now (% of all cores, from /proc/stat over
    `seconds`): unlike the 1-minute load average, it does not stay high after a run that
    just ended."""

    def ticks() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values) - idle, sum(values)

    try:
        busy0, total0 = ticks()
        time.sleep(seconds)
        busy1, total1 = ticks()
    except (OSError, ValueError, IndexError):
        return None
    return round(100 * (busy1 - busy0) / max(total1 - total0, 1), 1)


def fmt(x, digits=1) -> str:
    if x is None:
        return "–"
    return f"{float(x):,.{digits}f}" if digits else f"{round(x):,}"


def row_for(result: dict, n: int) -> dict | None:
    return next((f for f in result["fanout"] if f["receivers"] == n), None)


def nearest_failure(result: dict, n: int, best: dict | None) -> dict | None:
    """The lowest failed step above the max sustainable rate: why the next step up failed."""
    floor = best["offered_msgs_per_s"] if best else 0
    failed = [s for s in result["steps"] if s["receivers"] == n and not s["pass"] and s["offered_msgs_per_s"] > floor]
    return min(failed, key=lambda s: s["offered_msgs_per_s"], default=None)


def cpu_us_per_delivery(step: dict) -> float | None:
    return 1e6 * step["server_cpu_s"] / step["delivered"] if step and step["delivered"] else None


def markdown(results: list[dict], args, info: dict, started: str, seconds: float) -> str:
    lines = [
        f"# Fan-out benchmark, {started}",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, Linux {info['kernel']}; Python {info['python']}, "
        f"Node {info['node']} (ws {info['ws']}), websockets {info['websockets']}. Commit {info['commit']}.",
        f"Machine busy in the {BUSY_SECONDS:g} s before the run: {fmt(info.get('busy_start'))} % of all cores (above ~5 % "
        f"something else was running, and the figures are noisy). Load average (1 min) at the start / end: "
        f"{info.get('load_start', '?')} / {info.get('load_end', '?')} on {info['cores']} cores (it lags: high for a "
        "minute after a previous run even when nothing runs now).",
        f"Server pinned to core {SERVER_CORE}, load generator to core {LOADGEN_CORE}. {args.senders} senders, "
        f"{args.step_seconds:g} s steps, payload {args.payload_bytes} B, pass = no loss/dup/reorder and p99 ≤ {args.p99_ms:g} ms. "
        f"Run took {seconds / 60:.1f} min.",
        "",
        "## Max sustainable rate",
        "",
        "| N | server | msg/s | deliveries/s | p50 ms | p95 ms | p99 ms | server CPU % | server RSS MiB | CPU µs/delivery | loadgen CPU % | server CPU % idle, N connected | nearest failed step: msg/s → lost / dup / ooo, p99 |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for n in args.receivers:
        for result in results:
            summary = row_for(result, n)
            best = summary and summary["best"]
            fail = summary and nearest_failure(result, n, best)
            if not summary:
                lines.append(
                    f"| {n} | {label(result)} | error: {'; '.join(result['errors']) or 'no result'} |"
                    + " |" * 11
                )
                continue
            if fail:
                why = f"{fmt(fail['offered_msgs_per_s'])} → {fail['lost']} / {fail['duplicated']} / {fail['out_of_order']}, p99 {fmt(fail['p99_ms'])}"
                if fail["closed_sockets"]:
                    why += f", {fail['closed_sockets']} closed {fail['close_codes']}"
            else:
                why = "no failure within the steps run"
            idle_cpu = fmt((summary.get("idle_usage") or {}).get("server_cpu_pct"))
            if best:
                lines.append(
                    f"| {n} | {label(result)} | {fmt(best['offered_msgs_per_s'])} | {fmt(best['deliveries_per_s'], 0)} | "
                    f"{fmt(best['p50_ms'])} | {fmt(best['p95_ms'])} | {fmt(best['p99_ms'])} | {fmt(best['server_cpu_pct'])} | "
                    f"{fmt(best['server_rss_mib'])} | {fmt(cpu_us_per_delivery(best))} | {fmt(best['loadgen_cpu_pct'])} | {idle_cpu} | {why} |"
                )
            else:
                lines.append(
                    f"| {n} | {label(result)} | below the lowest step | | | | | | | | | {idle_cpu} | {why} |"
                )
    by_name = {}
    for r in results:
        by_name.setdefault(r["server"], r)  # the first Parley (1 worker) against the references
    if "parley" in by_name and len(by_name) > 1:
        lines += [
            "",
            "## Parley / reference",
            "",
            "Throughput ratio (max msg/s) and cost ratio (server CPU µs per delivery at each one's max).",
            "",
        ]
        refs = [r for r in by_name.values() if r["server"] != "parley"]
        lines.append(
            "| N | "
            + " | ".join(f"msg/s vs {LABELS[r['server']]} | CPU/delivery vs {LABELS[r['server']]}" for r in refs)
            + " |"
        )
        lines.append("|---:|" + "---:|---:|" * len(refs))
        for n in args.receivers:
            mine = row_for(by_name["parley"], n)
            cells = []
            for ref in refs:
                theirs = row_for(ref, n)
                a, b = (mine or {}).get("best"), (theirs or {}).get("best")
                cells.append(f"{a['offered_msgs_per_s'] / b['offered_msgs_per_s']:.2f}×" if a and b else "–")
                ca, cb = cpu_us_per_delivery(a), cpu_us_per_delivery(b)
                cells.append(f"{ca / cb:.2f}×" if ca and cb else "–")
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += scaling_section(results, args)
    lines += ratios_section(results, args)
    idle = [r for r in results if r["idle"]]
    if idle:
        lines += [
            "",
            "## Idle authenticated connections",
            "",
            "| server | connections | open | server RSS MiB | baseline MiB | KiB per connection | KiB per connection since previous row |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for result in idle:
            previous = None
            for p in result["idle"]:
                marginal = "–"
                if previous:
                    grown = 1024 * (p["server_rss_mib"] - previous["server_rss_mib"])
                    marginal = f"{grown / (p['connections'] - previous['connections']):.1f}"
                previous = p
                lines.append(
                    f"| {label(result)} | {p['connections']:,} | {p['open']:,} | {p['server_rss_mib']} | "
                    f"{p['baseline_rss_mib']} | {p['kib_per_connection']} | {marginal} |"
                )
    lines += [
        "",
        "## Every step",
        "",
        "| server | N | msg/s offered | deliveries/s | p50 | p95 | p99 | max ms | lost | dup | ooo | closed | server CPU % | RSS MiB | loadgen CPU % | pass |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for result in results:
        for s in result["steps"]:
            lines.append(
                f"| {label(result)} | {s['receivers']} | {fmt(s['offered_msgs_per_s'])} | {fmt(s['deliveries_per_s'], 0)} | {fmt(s['p50_ms'])} | {fmt(s['p95_ms'])} | "
                f"{fmt(s['p99_ms'])} | {fmt(s['max_ms'])} | {s['lost']} | {s['duplicated']} | {s['out_of_order']} | {s['closed_sockets']} | "
                f"{fmt(s['server_cpu_pct'])} | {fmt(s['server_rss_mib'])} | {fmt(s['loadgen_cpu_pct'])} | {'yes' if s['pass'] else 'no'}{' (again)' if s.get('again') else ''} |"
            )
    errors = [f"- {label(r)}: {e}" for r in results for e in r["errors"]]
    if errors:
        lines += ["", "## Errors", "", *errors]
    return "\n".join(lines) + "\n"


def scaling_section(results: list[dict], args) -> list[str]:
    """1 against W workers, same backend (PostgreSQL + Redis), per pinning and N."""
    scaled = [r for r in results if r.get("workers")]
    if not scaled:
        return []
    lines = [
        "",
        "## Scaling with workers",
        "",
        "Parley on PostgreSQL + Redis (a fresh database for each worker count and pinning, Redis pub/sub "
        f"channel layer), W uvicorn processes on W ports; receivers and the {args.senders} senders spread "
        f"round-robin over them. *pinned*: every worker on core {SERVER_CORE} (as the single-worker run); "
        f"*unpinned*: the workers may use every core, the load generator stays on core {LOADGEN_CORE}. "
        "Server CPU and RSS are summed over the workers (PostgreSQL and Redis, separate processes, are not "
        "in them); core 0 / core 1 busy % is the whole machine's (/proc/stat), so it includes PostgreSQL, "
        "Redis, the load generator and anything else running.",
        "",
        "| N | pinning | workers | msg/s | × vs 1 worker | deliveries/s | p50 / p95 / p99 ms | server CPU % (sum; each) | "
        "server RSS MiB (sum) | CPU µs/delivery | loadgen CPU % | core 0 / core 1 busy % | nearest failed step |",
        "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for n in args.receivers:
        for pinned in (True, False):
            group = sorted((r for r in scaled if r["pinned"] == pinned), key=lambda r: r["workers"])
            one = next((r for r in group if r["workers"] == 1), None)
            base = (row_for(one, n) or {}).get("best") if one else None
            for result in group:
                where = "pinned" if pinned else "unpinned"
                summary = row_for(result, n)
                best = summary and summary["best"]
                if not best:
                    why = "; ".join(result["errors"]) or "below the lowest step"
                    lines.append(f"| {n} | {where} | {result['workers']} | {why} |" + " |" * 9)
                    continue
                fail = nearest_failure(result, n, best)
                why = f"{fmt(fail['offered_msgs_per_s'])}: " + ", ".join(fail["fail_reasons"]) if fail else "–"
                ratio = f"{best['offered_msgs_per_s'] / base['offered_msgs_per_s']:.2f}×" if base else "–"
                each = best.get("server_cpu_pct_each")
                cpu = fmt(best["server_cpu_pct"]) + (f" ({' + '.join(fmt(x) for x in each)})" if each else "")
                cores = best.get("cores_busy_pct")
                lines.append(
                    f"| {n} | {where} | {result['workers']} | {fmt(best['offered_msgs_per_s'])} | {ratio} | "
                    f"{fmt(best['deliveries_per_s'], 0)} | {fmt(best['p50_ms'])} / {fmt(best['p95_ms'])} / {fmt(best['p99_ms'])} | "
                    f"{cpu} | {fmt(best['server_rss_mib'])} | {fmt(cpu_us_per_delivery(best))} | "
                    f"{fmt(best['loadgen_cpu_pct'])} | {' / '.join(fmt(x, 0) for x in cores) if cores else '–'} | {why} |"
                )
    return lines


# What issue 19 asks of one run: the SQLite worker's msg/s at N = 200 on a quiet machine
# before that work (commit 017a54c), the reference of "≥ 1.3× today's". It was measured on
# the machine: on another, run 017a54c from a worktree beside main instead.
SQLITE_N200_BEFORE = 380.6


def p99_near_half(result: dict, n: int, best: dict) -> dict | None:
    """The passing step whose rate is nearest half the max sustainable rate."""
    half = best["offered_msgs_per_s"] / 2
    passed = [s for s in result["steps"] if s["receivers"] == n and s["pass"]]
    return min(passed, key=lambda s: abs(s["offered_msgs_per_s"] - half), default=None)


def ratios_section(results: list[dict], args) -> list[str]:
    """The side-by-side ratios: PostgreSQL + Redis against SQLite, 2 workers against 1."""
    sqlite = next((r for r in results if r.get("backend") == "sqlite"), None)
    scaled = {(r["workers"], r["pinned"]): r for r in results if r.get("workers")}
    if not scaled:
        return []

    def best(result, n):
        return ((row_for(result, n) or {}).get("best")) if result else None

    def ratio(a, b, digits=2):
        return f"{a / b:.{digits}f}×" if a and b else "–"

    def mark(ok):
        return "" if ok is None else (" ✓" if ok else " ✗")

    lines = [
        "",
        "## Ratios",
        "",
        "From this run only (same machine, same minutes). Bars: PostgreSQL + Redis ×1 ≥ 0.90× SQLite ×1 msg/s "
        "and CPU-bound at its edge (server ≥ 90 % busy at the max or the failed step above it); 2 workers "
        "pinned ≤ 1.10× the CPU µs per delivery of 1 pinned; 2 unpinned > 1× the msg/s of 1 unpinned.",
        "",
        "| N | PG ×1 / SQLite ×1 msg/s | PG ×1 server CPU % at max / failed step | "
        "2 / 1 pinned CPU µs/delivery | 2 / 1 pinned msg/s | 2 / 1 unpinned msg/s |",
        "|---:|---:|---|---:|---:|---:|",
    ]
    for n in args.receivers:
        s1, p1, p2 = best(sqlite, n), best(scaled.get((1, True)), n), best(scaled.get((2, True)), n)
        u1, u2 = best(scaled.get((1, False)), n), best(scaled.get((2, False)), n)
        edge = "–"
        if p1:
            fail = nearest_failure(scaled[(1, True)], n, p1)
            busy = max(p1["server_cpu_pct"], fail["server_cpu_pct"] if fail else 0)
            edge = f"{fmt(p1['server_cpu_pct'])} / {fmt(fail['server_cpu_pct']) if fail else '–'}{mark(busy >= 90)}"
        pg_sqlite = ratio(p1 and p1["offered_msgs_per_s"], s1 and s1["offered_msgs_per_s"])
        if p1 and s1:
            pg_sqlite += mark(p1["offered_msgs_per_s"] >= 0.9 * s1["offered_msgs_per_s"])
        cost = ratio(cpu_us_per_delivery(p2), cpu_us_per_delivery(p1))
        if p1 and p2 and cpu_us_per_delivery(p1) and cpu_us_per_delivery(p2):
            cost += mark(cpu_us_per_delivery(p2) <= 1.1 * cpu_us_per_delivery(p1))
        unpinned = ratio(u2 and u2["offered_msgs_per_s"], u1 and u1["offered_msgs_per_s"])
        if u1 and u2:
            unpinned += mark(u2["offered_msgs_per_s"] > u1["offered_msgs_per_s"])
        pinned = ratio(p2 and p2["offered_msgs_per_s"], p1 and p1["offered_msgs_per_s"])
        lines.append(f"| {n} | {pg_sqlite} | {edge} | {cost} | {pinned} | {unpinned} |")
    if sqlite:
        lines += ["", "SQLite ×1:", ""]
        for n in args.receivers:
            b = best(sqlite, n)
            if not b:
                continue
            half = p99_near_half(sqlite, n, b)
            text = f"- N = {n}: {fmt(b['offered_msgs_per_s'])} msg/s"
            if n == 200:
                text += f" = {b['offered_msgs_per_s'] / SQLITE_N200_BEFORE:.2f}× the {SQLITE_N200_BEFORE} msg/s before issue 19 on the issue's machine (bar ≥ 1.3×; elsewhere compare 017a54c run here)"
            if half:
                text += (
                    f"; p99 at {fmt(half['offered_msgs_per_s'])} msg/s (the passing step nearest half the max): "
                    f"{fmt(half['p99_ms'])} ms{mark(half['p99_ms'] <= 20)} (bar ≤ 20 ms)"
                )
            lines.append(text)
    for result in [sqlite, scaled.get((1, True))]:
        if result and result.get("idle"):
            last = result["idle"][-1]
            text = (
                f"- Idle, {label(result)}: {last['kib_per_connection']} KiB per authenticated connection "
                f"at {last['connections']:,}{mark(last['kib_per_connection'] <= 20)} (bar ≤ 20 KiB)"
            )
            if result.get("redis_kib_per_1000") is not None:
                text += f"; Redis used_memory +{result['redis_kib_per_1000']:,} KiB per 1,000 sockets"
            lines.append(text)
    return lines


def plot(results: list[dict], args, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (benchmark/requirements.txt): no plot", file=sys.stderr)
        return False
    ns = args.receivers
    fig, axes = plt.subplots(1, len(ns), figsize=(5 * len(ns), 4.2), squeeze=False)
    for ax, n in zip(axes[0], ns, strict=True):
        for result in results:
            steps = sorted(
                (s for s in result["steps"] if s["receivers"] == n and s["p99_ms"] is not None),
                key=lambda s: s["offered_msgs_per_s"],
            )
            if not steps:
                continue
            x = [s["offered_msgs_per_s"] for s in steps]
            (line,) = ax.plot(x, [s["p99_ms"] for s in steps], marker="o", label=label(result))
            bad = [s for s in steps if not s["pass"]]
            ax.scatter(
                [s["offered_msgs_per_s"] for s in bad],
                [s["p99_ms"] for s in bad],
                marker="x",
                s=80,
                color=line.get_color(),
                zorder=3,
            )
        ax.axhline(args.p99_ms, color="grey", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"N = {n} receivers, {args.senders} senders")
        ax.set_xlabel("offered rate, msg/s")
        ax.set_ylabel("p99 latency, ms (× = failed step)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def smoke_ok(results: list[dict], args) -> list[str]:
    problems = []
    for result in results:
        for n in args.receivers:
            steps = [s for s in result["steps"] if s["receivers"] == n]
            if not any(s["delivered"] and not (s["lost"] or s["duplicated"] or s["out_of_order"]) for s in steps):
                problems.append(
                    f"{label(result)} N={n}: no step delivered everything ({result['errors'] or [s['fail_reasons'] for s in steps]})"
                )
    return problems


def write_report(out: Path, results: list[dict], args, info: dict, started: str, seconds: float) -> str:
    report = markdown(results, args, info, started, seconds)
    (out / "results.md").write_text(report)
    if plot(results, args, out / "p99.png"):
        report += f"\nPlot: {out / 'p99.png'}\n"
    return report


def rewrite_report(out: Path) -> int:
    """Redraw results.md and p99.png from a run's results.json (after changing the report)."""
    saved = json.loads((out / "results.json").read_text())
    args = argparse.Namespace(**saved["args"])
    print(
        write_report(
            out, saved["results"], args, saved["machine"], saved.get("started", out.name), saved.get("seconds", 0)
        )
    )
    return 0


def main(argv=None) -> int:
    if argv is None and sys.argv[1:2] == ["--report"]:
        return rewrite_report(Path(sys.argv[2]))
    args = parse_args(argv)
    started = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else BENCH_DIR / "results" / (started + ("-smoke" if args.smoke else ""))
    out.mkdir(parents=True, exist_ok=True)
    ensure_loadgen()
    pins = pinning()
    info = machine()
    info["load_start"] = round(os.getloadavg()[0], 1)
    info["busy_start"] = busy_now()
    t0 = time.monotonic()
    print(f"benchmark: servers {args.servers}, N {args.receivers}, results in {out}", file=sys.stderr, flush=True)
    results = []
    scaled = args.workers != [1] and "parley" in args.servers
    if scaled:
        check_scaled_backend()
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        for name in args.servers:
            if name == "parley" and scaled:
                if args.sqlite:
                    results.append(bench_server("parley", args, Path(tmp), pins, out))
                # Same backend for every worker count, so 1 against W compares the processes only.
                for pinned in (True, False) if args.workers_unpinned else (True,):
                    for workers in sorted(set(args.workers)):
                        results.append(bench_parley_workers(workers, pinned, args, Path(tmp), pins, out, started))
                continue
            try:
                results.append(bench_server(name, args, Path(tmp), pins, out))
            except (RuntimeError, subprocess.SubprocessError) as error:
                print(f"{name}: {error}", file=sys.stderr)
                results.append({"server": name, "fanout": [], "steps": [], "idle": None, "errors": [str(error)]})
    seconds = time.monotonic() - t0
    info["load_end"] = round(os.getloadavg()[0], 1)
    saved = {"machine": info, "args": vars(args), "started": started, "seconds": seconds, "results": results}
    (out / "results.json").write_text(json.dumps(saved, indent=1))
    report = write_report(out, results, args, info, started, seconds)
    print("\n" + report)
    print(f"results: {out}")
    if args.smoke:
        problems = smoke_ok(results, args)
        for problem in problems:
            print(f"SMOKE FAILED: {problem}", file=sys.stderr)
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
