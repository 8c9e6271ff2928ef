"""Measure what decoding uploaded pictures costs: peak RSS and CPU-seconds of a process
that runs `core.images.process_upload` on 4 uploads at once (4 threads, as 4 concurrent
requests would), for pictures that are hostile (a small PNG that claims 40 MP, one that
claims 24 MP) and ordinary (a 12 MP phone photo, as a message and as an avatar).

    .venv/bin/python scripts/measure_image_memory.py [--repo PATH] [--concurrent 4]

Each case runs in a fresh process (python -c ... --case NAME) whose peak is reset
(/proc/self/clear_refs) after Django and the pictures are loaded, so a figure is what the
4 decodes add to the process, not what making the pictures cost. `--repo` points at
another checkout to measure its core/images.py (e.g. the commit before a change:
`git archive 9379f7c | tar -x -C /tmp/parley-base`). Not part of `make test`.
"""

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


def make_pictures(folder: Path) -> dict[str, Path]:
    """The inputs, written once by the parent (making them costs memory of its own)."""
    from PIL import Image

    def save(name: str, image, fmt: str, **options) -> Path:
        out = io.BytesIO()
        image.save(out, fmt, **options)
        (folder / name).write_bytes(out.getvalue())
        return folder / name

    paths = {
        # Blank RGBA compresses about 1000:1: a PNG of ~155 KiB that decodes to 40 MP.
        "bomb-40mp": save("bomb-40mp.png", Image.new("RGBA", (8000, 5000)), "PNG", optimize=True),
        "bomb-24mp": save("bomb-24mp.png", Image.new("RGBA", (6000, 4000)), "PNG", optimize=True),
    }
    size = (4000, 3000)
    noise = Image.effect_noise(size, 60)
    photo = Image.merge("RGB", [noise, Image.linear_gradient("L").resize(size), Image.effect_noise(size, 40)])
    paths["photo-12mp"] = paths["avatar-12mp"] = save("photo-12mp.jpg", photo, "JPEG", quality=85)
    return paths


def peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def run_case(repo: Path, case: str, path: Path, concurrent: int) -> dict:
    """In this (fresh) process: decode `path` `concurrent` times at once."""
    sys.path.insert(0, str(repo))
    os.chdir(repo)
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("SECRET_KEY", "measure-image-memory-" + "x" * 40)
    import django

    django.setup()
    from django.core.files.uploadedfile import SimpleUploadedFile

    from core import images
    from core.errors import AppError

    content = path.read_bytes()
    options = {"square": images.AVATAR_EDGE} if case.startswith("avatar") else {}
    outcomes: list[str] = []
    start = threading.Barrier(concurrent + 1)

    def one() -> None:
        upload = SimpleUploadedFile(path.name, content, content_type="image/png")
        start.wait()
        try:
            processed = images.process_upload(upload, **options)
            outcomes.append(f"ok {processed.width}x{processed.height} {len(processed.content) // 1024} KiB")
        except AppError as error:
            outcomes.append(f"{error.code}: {error.detail}")

    threads = [threading.Thread(target=one) for _ in range(concurrent)]
    for thread in threads:
        thread.start()
    baseline = rss()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM starts again from here
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    used = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "case": case,
        "input_kib": len(content) // 1024,
        "baseline_mib": round(baseline / MIB),
        "peak_mib": round(peak_rss() / MIB),
        "added_mib": round((peak_rss() - baseline) / MIB),
        "cpu_s_each": round((used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime) / concurrent, 2),
        "wall_s": round(wall, 2),
        "outcomes": sorted(set(outcomes)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout whose core/images.py is measured")
    parser.add_argument("--concurrent", type=int, default=4)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.repo.resolve(), args.case, args.path, args.concurrent)))
        return
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory(prefix="parley-images-") as folder:
        pictures = make_pictures(Path(folder))
        print(f"{args.concurrent} at once, code from {args.repo.resolve()}")
        print(f"{'case':<12} {'input':>8} {'baseline':>9} {'peak':>7} {'added':>7} {'CPU-s each':>10} {'wall':>6}  outcome")
        for case, path in pictures.items():
            done = subprocess.run(
                [sys.executable, __file__, "--repo", str(args.repo), "--concurrent", str(args.concurrent),
                 "--case", case, "--path", str(path)],
                capture_output=True, text=True, check=True,
            )
            row = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{row['case']:<12} {row['input_kib']:>5} KiB {row['baseline_mib']:>5} MiB {row['peak_mib']:>3} MiB"
                  f" {row['added_mib']:>3} MiB {row['cpu_s_each']:>10} {row['wall_s']:>5}s  {'; '.join(row['outcomes'])}")


if __name__ == "__main__":
    main()
