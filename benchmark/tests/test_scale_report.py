"""`make bench-scale` prints, from one run, the ratios issue 19 asks for: PostgreSQL +
Redis against SQLite, 2 workers against 1 (pinned and unpinned), the SQLite worker
against its earlier rate, idle KiB per connection and Redis memory per 1,000 sockets."""

import argparse

from benchmark import run


def step(n, rate, *, ok=True, cpu=50.0, cpu_s=1.0, p99=10.0):
    return {
        "receivers": n, "offered_msgs_per_s": rate, "pass": ok, "server_cpu_pct": cpu, "server_cpu_s": cpu_s,
        "delivered": int(rate * n * 5), "p99_ms": p99, "deliveries_per_s": rate * n,
    }


def result(rates, **extra):
    """rates: {n: (best step, failed step)}"""
    steps, fanout = [], []
    for n, (best, fail) in rates.items():
        steps += [best, fail]
        fanout.append({"receivers": n, "best": best})
    return {"server": "parley", "steps": steps, "fanout": fanout, "idle": None, "errors": [], **extra}


def test_ratios_compare_postgres_with_sqlite_and_two_workers_with_one():
    sqlite = result(
        {200: (step(200, 500, cpu=95), step(200, 560, ok=False, cpu=99)),
         1000: (step(1000, 80), step(1000, 90, ok=False))},
        backend="sqlite", label="Parley ×1, SQLite",
        idle=[{"connections": 1000, "open": 1000, "server_rss_mib": 100, "baseline_rss_mib": 82,
               "kib_per_connection": 18.4}],
    )
    sqlite["steps"].append(step(200, 250, p99=12.5))  # the step nearest half of 500
    pg1 = result(
        {200: (step(200, 460, cpu=80), step(200, 520, ok=False, cpu=93)),
         1000: (step(1000, 60), step(1000, 70, ok=False, cpu=60))},
        backend="postgresql+redis", workers=1, pinned=True, redis_kib_per_1000=512.0,
        idle=[{"connections": 1000, "open": 1000, "server_rss_mib": 120, "baseline_rss_mib": 82,
               "kib_per_connection": 38.9}],
    )
    pg2 = result(
        {200: (step(200, 440, cpu_s=1.05), step(200, 500, ok=False)),
         1000: (step(1000, 60, cpu_s=1.5), step(1000, 70, ok=False))},
        backend="postgresql+redis", workers=2, pinned=True,
    )
    u1 = result({200: (step(200, 400), step(200, 450, ok=False)), 1000: (step(1000, 50), step(1000, 60, ok=False))},
                workers=1, pinned=False)
    u2 = result({200: (step(200, 600), step(200, 700, ok=False)), 1000: (step(1000, 40), step(1000, 50, ok=False))},
                workers=2, pinned=False)
    args = argparse.Namespace(receivers=[200, 1000])
    text = "\n".join(run.ratios_section([sqlite, pg1, pg2, u1, u2], args))

    assert "| 200 | 0.92× ✓ | 80.0 / 93.0 ✓ |" in text
    assert "| 1000 | 0.75× ✗ | 50.0 / 60.0 ✗ |" in text
    # CPU µs per delivery, 2 pinned over 1 pinned: 1.10 ✓ at N = 200, 1.5 ✗ at N = 1000.
    assert "| 200 | 0.92× ✓ | 80.0 / 93.0 ✓ | 1.10× ✓ | 0.96× | 1.50× ✓ |" in text
    assert "| 1000 | 0.75× ✗ | 50.0 / 60.0 ✗ | 1.50× ✗ | 1.00× | 0.80× ✗ |" in text
    assert "N = 200: 500.0 msg/s = 1.31× the 380.6 msg/s before issue 19" in text
    assert "p99 at 250.0 msg/s (the passing step nearest half the max): 12.5 ms ✓" in text
    assert "Parley ×1, SQLite: 18.4 KiB per authenticated connection at 1,000 ✓" in text
    assert "38.9 KiB per authenticated connection at 1,000 ✗ (bar ≤ 20 KiB); Redis used_memory +512.0 KiB" in text


def test_no_ratios_without_worker_runs():
    args = argparse.Namespace(receivers=[200])
    assert run.ratios_section([result({200: (step(200, 100), step(200, 200, ok=False))})], args) == []
