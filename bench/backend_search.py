"""The search and export of one trained super-network with each latency backend, timed.

``RUN`` is a folder holding a trained super-network (``lightnas train RUN``
or a finished run). For each backend of ``--backends`` the folder's
``config.json`` and ``supernet.pt`` are copied to a fresh folder and
``lightnas run --out COPY --resume --backend NAME`` searches (every
candidate's latency measured in that runtime), exports and reports; the
backends run one after the other, in the order given, so compare them in one
invocation. Prints each one's wall time and the ratio to the first, the
number of exported models and the files each exported model ships.

    python bench/backend_search.py RUN [--backends onnxruntime,litert] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="a folder with config.json and a trained supernet.pt")
    ap.add_argument("--backends", default="onnxruntime,litert")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    run = Path(args.run)
    result: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            out = Path(tmp) / backend
            out.mkdir()
            for name in ("config.json", "supernet.pt"):
                shutil.copy(run / name, out / name)
            job = [sys.executable, "-m", "lightnas.cli", "run", "--out", str(out), "--resume", "--backend", backend]
            t0 = time.perf_counter()
            res = subprocess.run([*job, "--quiet"], capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if res.returncode != 0:
                sys.exit(f"{backend}: {res.stderr.strip()}")
            ids = json.loads((out / "models" / "index.json").read_text())["models"]
            card = json.loads((out / "models" / ids[0] / "card.json").read_text())
            result[backend] = {"wall_s": round(wall, 1), "exported": len(ids), "files": sorted(card["files"].values())}
    first = next(iter(result.values()))["wall_s"]
    for backend, r in result.items():
        r["wall_ratio"] = round(r["wall_s"] / first, 2)
        print(backend, json.dumps(r))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
