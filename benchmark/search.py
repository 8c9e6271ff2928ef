"""`make bench-search`: search speed at scale on SQLite and PostgreSQL (SPEC §6.3).

For each database: a fresh one, migrated; MESSAGES messages of mixed Simplified and
Traditional Chinese, English and code in 40 rooms (10 private) from 20 people, written
in bulk, then indexed by chat.search.rebuild (what `manage.py rebuild_search_index`
runs). Then each query of a fixed set (1-, 2-, 3+-character CJK terms, Latin words,
phrases, filters) is run REPEAT times through chat.selectors.message_search, as a
member of a few private rooms, and p50/p95 per query class are printed; also the index
size against the message table's, and what indexing adds to one send (message_send
timed with and without chat.search.index_message, interleaved).

    python -m benchmark.search [--messages 300000] [--databases sqlite postgres]

Each database runs in its own process (Django is configured once per process).
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SIMPLIFIED = [
    "还有可能是定期检修", "数据库连接超时了", "明天下午开会讨论预算", "这个问题我们再看看", "服务器重启以后正常",
    "请把报告发给我", "测试环境已经部署好了", "用户反馈登录很慢", "我觉得这个方案可以", "周末加班吗",
    "缓存命中率下降", "新版本什么时候发布", "文档写得很清楚", "网络好像有点问题", "谢谢大家的帮助",
]
TRADITIONAL = [
    "數據庫備份完成了", "請確認一下權限設定", "這個功能還在開發中", "會議改到星期四", "伺服器的記憶體不夠",
    "我們需要更多測試", "檔案已經上傳", "這週的進度報告", "問題已經解決了", "感謝你的回覆",
]
ENGLISH = [
    "the deploy finished without errors", "can someone review my pull request", "connection refused on port 5432",
    "lunch at noon?", "the database migration is slow", "rolling back the release", "great work everyone",
    "please update the docs", "load average is high again", "I will look into the flaky test",
]
CODE = [
    "`SELECT count(*) FROM orders WHERE status = 'open'`", "```\ndef handler(event):\n    return event['body']\n```",
    "`git rebase -i HEAD~3`", "`curl -s localhost:8000/healthz`", "`kubectl get pods -n staging`",
]

QUERIES = {
    "CJK 1 char": ["检", "庫", "慢"],
    "CJK 2 chars": ["可能", "數據", "测试"],
    "CJK 3+ chars": ["数据库", "定期检修", "伺服器"],
    "Latin words": ["deploy", "database", "kubectl"],
    "phrases": ['"connection refused"', '"还有可能"', '"pull request"'],
    "filters": ["room:r17 database", "from:u3 测试", "after:2d 报告"],
}


def _body(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        pool = rng.choice((SIMPLIFIED, SIMPLIFIED, TRADITIONAL, ENGLISH, ENGLISH, CODE))
        parts.append(rng.choice(pool))
    filler = "".join(rng.choice("的了是在我有他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过发后作里用道行所然家种事成方多经么去法学如都同现当没动面起看定天分还进好小部其些主样理心她本前开但因只从想实") for _ in range(rng.randint(0, 12)))
    return " ".join(parts) + (" " + filler if filler else "")


def worker(database: str, messages: int, repeat: int, sends: int) -> dict:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from chat import search, selectors, services
    from chat.models import Membership, Message, MessageSearch, Room

    call_command("migrate", verbosity=0)
    User = get_user_model()
    users = User.objects.bulk_create([User(username=f"u{i}") for i in range(20)])
    users = list(User.objects.order_by("id"))
    rooms = Room.objects.bulk_create(
        [Room(slug=f"r{i}", name=f"Room {i}", kind="private" if i < 10 else "public") for i in range(40)]
    )
    rooms = list(Room.objects.order_by("id"))
    reader = users[0]
    Membership.objects.bulk_create(
        [Membership(user=users[(r.id + k) % 20], room=r) for r in rooms for k in range(5) if r.kind == "private" or k < 2]
        + [Membership(user=reader, room=r) for r in rooms[:3] if (r.id) % 20 not in range(5)],
        ignore_conflicts=True,
    )
    rng = random.Random(15)
    seq = {r.id: 0 for r in rooms}
    start = timezone.now() - timezone.timedelta(days=30)
    step = timezone.timedelta(days=30) / messages
    built = time.monotonic()
    batch = []
    for i in range(messages):
        room = rooms[rng.randrange(40)]
        seq[room.id] += 1
        body = _body(rng)
        batch.append(
            Message(room=room, seq=seq[room.id], rev=seq[room.id], sender=users[rng.randrange(20)], body=body,
                    html=body, created_at=start + step * i)
        )
        if len(batch) == 5000:
            with transaction.atomic():
                Message.objects.bulk_create(batch)
            batch = []
    with transaction.atomic():
        Message.objects.bulk_create(batch)
    for room in rooms:
        Room.objects.filter(pk=room.pk).update(last_seq=seq[room.id], rev=seq[room.id])
    # auto_now_add overrode created_at: spread the times again (ids follow the same order).
    with connection.cursor() as cursor:
        first = Message.objects.order_by("id").values_list("id", flat=True).first()
        if connection.vendor == "postgresql":
            cursor.execute(
                "UPDATE chat_message SET created_at = %s::timestamptz + (id - %s) * %s::interval",
                [start, first, f"{step.total_seconds()} seconds"],
            )
        else:
            cursor.execute(
                "UPDATE chat_message SET created_at = strftime('%%Y-%%m-%%d %%H:%%M:%%f', %s, '+' || ((id - %s) * %s) || ' seconds')",
                [start.strftime("%Y-%m-%d %H:%M:%S"), first, step.total_seconds()],
            )
    wrote = time.monotonic() - built
    indexed_at = time.monotonic()
    search.rebuild(batch=5000)
    indexed = time.monotonic() - indexed_at
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE")
            cursor.execute("SELECT pg_total_relation_size('chat_messagesearch'), pg_total_relation_size('chat_message')")
            index_bytes, table_bytes = cursor.fetchone()
        else:
            cursor.execute("ANALYZE")
            cursor.execute(
                "SELECT coalesce(sum(CASE WHEN name LIKE 'chat_messagesearch%%' OR name LIKE 'messagesearch%%'"
                " THEN pgsize END), 0), coalesce(sum(CASE WHEN name LIKE 'chat_message' OR name LIKE 'chat_message\\_%%'"
                " ESCAPE '\\' OR name LIKE 'sqlite_autoindex_chat_message\\_%%' ESCAPE '\\' THEN pgsize END), 0) FROM dbstat"
            )
            index_bytes, table_bytes = cursor.fetchone()

    now = timezone.now()
    results = {}
    for label, queries in QUERIES.items():
        times, hits = [], 0
        for query in queries:
            options = {}
            words = []
            for word in query.split(" "):
                if word.startswith("room:"):
                    options["room"] = Room.objects.get(slug=word[5:])
                elif word.startswith("from:"):
                    options["sender"] = User.objects.get(username=word[5:])
                elif word.startswith("after:"):
                    options["after"] = now - timezone.timedelta(days=int(word[6:-1]))
                else:
                    words.append(word)
            for _ in range(repeat):
                t = time.perf_counter()
                found, _ = selectors.message_search(user=reader, q=" ".join(words), limit=20, **options)
                times.append((time.perf_counter() - t) * 1000)
            hits += len(found)
        times.sort()
        results[label] = {
            "p50": statistics.median(times), "p95": times[int(len(times) * 0.95) - 1], "hits": hits, "n": len(times),
        }

    # One send, with and without indexing, interleaved so load on the machine hits both.
    from django.conf import settings

    settings.PARLEY_RATE_BURST = 10**9
    room = next(r for r in rooms if r.kind == "public")
    Membership.objects.get_or_create(user=reader, room=room)
    real = search.index_message
    with_index, without = [], []
    for _ in range(sends):
        for bucket, fn in ((with_index, real), (without, lambda message, **options: None)):
            search.index_message = fn
            body = _body(rng)
            t = time.perf_counter()
            services.message_send(sender=reader, room=room, body=body)
            bucket.append(time.perf_counter() - t)
    search.index_message = real
    cost_us = (statistics.median(with_index) - statistics.median(without)) * 1e6
    return {
        "database": database, "messages": messages, "indexed_rows": MessageSearch.objects.count(),
        "write_s": wrote, "index_s": indexed, "index_bytes": index_bytes, "table_bytes": table_bytes,
        "queries": results, "send_us": cost_us, "send_ms": statistics.median(with_index) * 1000,
    }


def run_one(database: str, args) -> dict:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings", LOG_LEVEL="WARNING")
    env.pop("REDIS_URL", None)
    dropdb = None
    if database == "sqlite":
        folder = tempfile.mkdtemp(prefix="parley-bench-search-")
        env["DATABASE_URL"] = f"sqlite:///{folder}/db.sqlite3"
    else:
        import psycopg

        name = f"parley_bench_search_{os.getpid()}"
        base = args.postgres.rsplit("/", 1)[0]
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        env["DATABASE_URL"] = f"{base}/{name}"

        def dropdb():
            with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    try:
        out = subprocess.run(
            [sys.executable, "-m", "benchmark.search", "--worker", database, "--messages", str(args.messages),
             "--repeat", str(args.repeat), "--sends", str(args.sends)],
            env=env, check=True, capture_output=True, text=True,
        ).stdout
    finally:
        if dropdb:
            dropdb()
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return json.loads(out.strip().splitlines()[-1])


def table(runs: list[dict]) -> str:
    lines = []
    header = f"{'query class':<14}" + "".join(f"{r['database'] + ' p50':>14}{r['database'] + ' p95':>14}" for r in runs)
    lines += [f"Search at {runs[0]['messages']:,} messages (ms, {runs[0]['queries']['CJK 1 char']['n']} runs per class)", header]
    for label in QUERIES:
        lines.append(
            f"{label:<14}" + "".join(f"{r['queries'][label]['p50']:>14.2f}{r['queries'][label]['p95']:>14.2f}" for r in runs)
        )
    for r in runs:
        lines.append(
            f"{r['database']}: index {r['index_bytes'] / 2**20:.1f} MiB vs messages {r['table_bytes'] / 2**20:.1f} MiB"
            f" ({r['indexed_rows']:,} documents); built in {r['index_s']:.0f} s (rows written in {r['write_s']:.0f} s);"
            f" indexing adds {r['send_us']:.0f} µs to a send ({r['send_ms']:.2f} ms)"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=20, help="Runs of each query (default 20).")
    parser.add_argument("--sends", type=int, default=200, help="Sends timed with and without indexing (default 200).")
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--worker", choices=["sqlite", "postgres"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.messages, args.repeat, args.sends)))
        return 0
    runs = [run_one(database, args) for database in args.databases]
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
