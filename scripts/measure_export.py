"""Measure a room export on PostgreSQL (SPEC §6.5): the peak RSS of a uvicorn worker
while it streams `GET /api/rooms/<slug>/export/?format=jsonl|html` for a room of 10k and
one of 100k messages (edits, reactions and replies among them), then the 100k JSON lines
re-parsed and compared, message by message, with what the history API pages give.

    .venv/bin/python scripts/measure_export.py [--messages 100000] [--admin-url postgres://postgres@127.0.0.1:5432/postgres]

A database of its own is made and dropped. The worker's peak (VmHWM) is reset through
/proc/<pid>/clear_refs before each export, so each figure is that export's peak. Flat
memory means the 100k figure is about the 10k one. Not part of `make test`.
"""

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testkit.servers import Uvicorn, clean_env, http_get, manage, running  # noqa: E402

MIB = 1024 * 1024


def proc_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def seed(n_big: int, n_small: int) -> str:
    """Two public rooms (`big`, `small`) of plain, edited, reacted-to and reply messages; a token."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from chat.formatting import render
    from chat.models import Message, MessageVersion, Reaction, Room

    User = get_user_model()
    users = [User.objects.create_user(username=f"u{i}", password="measure export pw 1") for i in range(5)]
    now = timezone.now()
    for slug, count in (("small", n_small), ("big", n_big)):
        room = Room.objects.create(slug=slug, name=slug.title(), created_by=users[0])
        for start in range(1, count + 1, 5000):
            batch = []
            for seq in range(start, min(start + 5000, count + 1)):
                body = f"message {seq} **bold** https://example.com/{seq} 中文内容第{seq}条"
                batch.append(Message(room=room, seq=seq, rev=seq, sender=users[seq % 5], body=body, html=render(body),
                                     edited_at=now if seq % 20 == 0 else None))
            made = {m.seq: m for m in Message.objects.bulk_create(batch)}
            replies = []
            for s, m in made.items():
                if s % 7 == 0 and s - 1 in made:
                    m.reply_to_id = made[s - 1].id
                    replies.append(m)
            Message.objects.bulk_update(replies, ["reply_to"])
            Reaction.objects.bulk_create(Reaction(message=m, user=users[(s + 1) % 5], emoji="👍")
                                         for s, m in made.items() if s % 10 == 0)
            MessageVersion.objects.bulk_create(MessageVersion(message=m, body="first draft", edited_at=now)
                                               for s, m in made.items() if s % 20 == 0)
        Room.objects.filter(pk=room.pk).update(last_seq=count, rev=count)
    return Token.objects.create(user=users[0]).key


def export(server: Uvicorn, token: str, slug: str, kind: str, out: Path) -> dict:
    Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # reset the peak (VmHWM)
    start = time.monotonic()
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    conn.request("GET", f"/api/rooms/{slug}/export/?format={kind}", headers={"Authorization": f"Token {token}"})
    response = conn.getresponse()
    assert response.status == 200, response.status
    size = 0
    with open(out, "wb") as handle:
        while chunk := response.read(1 << 16):
            handle.write(chunk)
            size += len(chunk)
    conn.close()
    return {"room": slug, "format": kind, "bytes": size, "seconds": round(time.monotonic() - start, 1),
            "peak_rss_mib": round(proc_kib(server.pid, "VmHWM") / 1024, 1)}


def compare_with_history(server: Uvicorn, token: str, path: Path, expected: int) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == expected, (len(lines), expected)
    after, index = 0, 0
    while True:
        status, _, body = http_get(server.port, f"/api/rooms/big/messages/?after_seq={after}&limit=200",
                                   headers={"Authorization": f"Token {token}"})
        page = json.loads(body)
        if not page:
            break
        for message in page:
            exported = json.loads(lines[index])
            exported.pop("versions", None)
            assert exported == message, (exported, message)
            index += 1
        after = page[-1]["seq"]
    assert index == expected


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--admin-url", default=os.environ.get("PARLEY_ADMIN_DATABASE_URL",
                                                              "postgres://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    name = f"parley_export_{secrets.token_hex(4)}"
    admin = urlsplit(args.admin_url)
    database_url = urlunsplit(admin._replace(path=f"/{name}"))
    import psycopg

    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    folder = Path(subprocess.check_output(["mktemp", "-d"]).decode().strip())
    env = clean_env(DATABASE_URL=database_url, SECRET_KEY="measure-export-" + "k" * 40, DEBUG="false",
                    ALLOWED_HOSTS="127.0.0.1", MEDIA_ROOT=folder / "media", STATIC_ROOT=folder / "static",
                    LOG_LEVEL="WARNING", PARLEY_RATE_BURST=100000)
    try:
        manage(env, "migrate", "--noinput", "-v0")
        os.environ.update(env)
        import django

        django.setup()
        started = time.monotonic()
        token = seed(args.messages, args.messages // 10)
        print(f"seeded {args.messages} + {args.messages // 10} messages in {time.monotonic() - started:.0f} s")
        from django.db import connections

        connections.close_all()
        worker = Uvicorn("export", env, "--log-level", "warning")
        with running([worker]):
            worker.start()
            export(worker, token, "small", "jsonl", folder / "warmup.jsonl")  # imports, caches
            print(f"worker RSS before: {proc_kib(worker.pid, 'VmRSS') / 1024:.1f} MiB")
            results = [
                export(worker, token, "small", "jsonl", folder / "small.jsonl"),
                export(worker, token, "big", "jsonl", folder / "big.jsonl"),
                export(worker, token, "small", "html", folder / "small.html"),
                export(worker, token, "big", "html", folder / "big.html"),
            ]
            for row in results:
                print(json.dumps(row))
            compare_with_history(worker, token, folder / "big.jsonl", args.messages)
            print(f"big.jsonl re-parsed: {args.messages} lines equal to the history API's pages")
            html = (folder / "big.html").read_text(encoding="utf-8")
            assert html.count("<article ") == args.messages and "<script" not in html
            print(f"big.html: {args.messages} articles, no script")
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        subprocess.run(["rm", "-rf", str(folder)])


if __name__ == "__main__":
    main()
