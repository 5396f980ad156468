"""Resident memory of `lightnas train` on a large folder of 224-px JPEGs.

Writes ``--images`` JPEG files of 224x224 (smooth random colour fields, ten
classes) into ``--work`` once, then runs ``lightnas train`` on them at
``--image-size 224`` (the first run decodes them into the image cache) and
samples the training process's resident set size (``VmRSS``, and its peak
``VmHWM``) every half second, from its start through decoding and the first
``--train-seconds`` seconds of training steps, then stops it and prints the
figures (GiB) with the cache's size on disk.

    python bench/memory.py --images 50000 --json bench/results/memory-50k-224.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def write_folder(root: Path, n: int, classes: int = 10, size: int = 224) -> None:
    """``n`` JPEGs, one subfolder per class; each image a bilinearly upsampled 7x7 random field."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / f"c{i % classes}"
        d.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (7, 7, 3), dtype=np.uint8)
        small[..., i % 3] = 40 + 20 * (i % classes)  # a class tint
        Image.fromarray(small).resize((size, size), Image.Resampling.BILINEAR).save(d / f"{i}.jpg", quality=85)


def status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in bytes (0 once it is gone)."""
    out = {"VmRSS": 0, "VmHWM": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in out:
                out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=50_000)
    ap.add_argument("--work", default="/tmp/lightnas-memory")
    ap.add_argument("--train-seconds", type=float, default=180.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    work = Path(args.work)
    folder = work / f"jpeg-{args.images}"
    if not (folder / "done").exists():
        t = time.perf_counter()
        write_folder(folder, args.images)
        (folder / "done").write_text("")
        print(f"wrote {args.images} JPEGs in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    env = {**os.environ, "LIGHTNAS_CACHE": str(work / "cache")}
    cmd = [sys.executable, "-m", "lightnas.cli", "train", str(work / "run"), "--data", str(folder), "--force"]
    cmd += ["--image-size", "224", "--epochs", "1", "--batch-size", str(args.batch_size)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    samples: list[tuple[float, int]] = []
    training_since = None
    peak = 0
    os.set_blocking(proc.stderr.fileno(), False)  # type: ignore[union-attr]
    log = ""
    while proc.poll() is None:
        st = status(proc.pid)
        peak = max(peak, st["VmHWM"])
        samples.append((round(time.perf_counter() - t0, 1), st["VmRSS"]))
        log += (proc.stderr.read() or b"").decode(errors="replace")  # type: ignore[union-attr]
        if training_since is None and "step=" in log:
            training_since = time.perf_counter()
        if training_since is not None and time.perf_counter() - training_since > args.train_seconds:
            peak = max(peak, status(proc.pid)["VmHWM"])
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.5)
    proc.wait()
    cache = sum(p.stat().st_size for p in (work / "cache").glob("*.npy"))
    gib = 1024**3
    out = {
        "images": args.images,
        "batch_size": args.batch_size,
        "peak_rss_gib": round(peak / gib, 3),
        "max_sampled_rss_gib": round(max(r for _, r in samples) / gib, 3),
        "trained_seconds": round(time.perf_counter() - training_since, 1) if training_since else 0.0,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "cache_gib": round(cache / gib, 2),
        "last_progress": log.strip().split("\r")[-1][-200:],
        "rss_gib_over_time": [(t, round(r / gib, 3)) for t, r in samples[:: max(1, len(samples) // 40)]],
    }
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
