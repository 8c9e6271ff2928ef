"""config/asgi.py as a server process loads it."""

import json
import subprocess
import sys

from testkit.servers import REPO, clean_env

# In a fresh interpreter: the test process has imported much more than a server does.
PROBE = """
import gc, json, time
import config.asgi
start = time.perf_counter()
gc.collect()
print(json.dumps({"frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects()),
                  "full_collection_ms": (time.perf_counter() - start) * 1000}))
"""


def test_what_the_server_loaded_is_left_out_of_garbage_collection():
    """A full collection right after startup has next to nothing to walk: what the
    process loaded cannot make its sockets wait while the collector runs."""
    env = clean_env(DATABASE_URL="sqlite:///:memory:")
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["frozen"] > 100_000, found
    assert found["tracked"] < found["frozen"] / 100, found
