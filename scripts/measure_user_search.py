"""Measure GET /api/users/?q= (finding people, SPEC §6.2) among many users.

Builds (bulk_create) a scratch database with USERS users, about half with a Chinese
display name of two or three characters, their search keys as accounts.search makes
them; then times queries by username start, display name, pinyin initials and full
pinyin through Django's test client and prints the median and p95 per query.

    .venv/bin/python scripts/measure_user_search.py [--users 10000] [--runs 200]
        [--database-url sqlite:////tmp/parley_measure_search.sqlite3]

A SQLite file named in the URL is deleted first; a PostgreSQL database is dropped and
created again (give a scratch name). Talks only to that database; stops by itself.
"""

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建文辉力云飞鹏斌宇浩凯峰波丹梅琳雪晨阳"


def build(users: int, seed: int = 3):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from accounts.models import Profile, SearchKey
    from accounts.search import keys_for

    rng = random.Random(seed)
    User = get_user_model()
    password = make_password("measure-only")
    started = time.perf_counter()
    people = User.objects.bulk_create(
        [User(username=f"user{n:05d}{rng.choice('abcdefghijklmnopqrstuvwxyz')}", password=password) for n in range(users)],
        batch_size=2000,
    )
    people = list(User.objects.order_by("id"))
    names = {}
    for user in people:
        if rng.random() < 0.5:
            names[user.id] = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        elif rng.random() < 0.5:
            names[user.id] = f"Person {user.username[-3:].title()}"
    Profile.objects.filter(user__in=people).delete()
    Profile.objects.bulk_create([Profile(user=u, display_name=names.get(u.id, "")) for u in people], batch_size=2000)
    SearchKey.objects.all().delete()
    keys = [SearchKey(user=u, key=k) for u in people for k in keys_for(u.username, names.get(u.id, ""))]
    SearchKey.objects.bulk_create(keys, batch_size=5000)
    return people[0], len(keys), time.perf_counter() - started


def measure(user, q: str, runs: int) -> dict:
    from rest_framework.test import APIClient

    client = APIClient(HTTP_HOST="127.0.0.1")
    client.force_authenticate(user)
    client.get("/api/users/", {"q": q})
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get("/api/users/", {"q": q})
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.content[:200]
    times.sort()
    return {"median": statistics.median(times), "p95": times[int(len(times) * 0.95) - 1], "found": len(response.json())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--database-url", default="sqlite:////tmp/parley_measure_search.sqlite3")
    args = parser.parse_args()

    parts = urlsplit(args.database_url)
    if parts.scheme.startswith("sqlite"):
        Path(parts.path).unlink(missing_ok=True)
    else:
        from measure_unread import recreate_database

        recreate_database(args.database_url)
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.DEBUG = False
    call_command("migrate", verbosity=0)
    user, keys, seconds = build(args.users)
    print(f"built {args.users} users, {keys} search keys in {seconds:.1f}s ({settings.DATABASES['default']['ENGINE']})")
    for q in ("user0", "user0999", "zs", "zh", "zhangwei", "李", "person", "w"):
        result = measure(user, q, args.runs)
        print(f"q={q:<10} median {result['median']:.2f} ms, p95 {result['p95']:.2f} ms over {args.runs} runs ({result['found']} found)")


if __name__ == "__main__":
    main()
