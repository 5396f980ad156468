"""The hostile-input battery: every case of ``lightnas_dev.hostile`` in a fresh process.

Bad data, malformed options, a tampered copy of a finished run (config,
checkpoint, database pages, cards, index) and seeded random corruptions of
every file lightnas reads; each case in its own sandbox folder, judged by
``lightnas_dev.hostile.check``: one line on stderr with exit 2 naming the
problem within 10 s and nothing on disk changed, or a success that touches
nothing outside its run folder.

    python bench/hostile.py                # the battery and 6 corruptions of each file kind
    python bench/hostile.py --generated 20 --json

Prints a line per failed case and the totals.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "devkit"))  # the project's test kit (not in the wheel)


def invoke(args: list[str], cwd: Path) -> tuple[int, str]:
    res = subprocess.run(
        [sys.executable, "-m", "lightnas.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )
    return res.returncode, res.stderr


def main() -> int:
    from lightnas_dev.hostile import check, malformed_files
    from lightnas_dev.hostile_cases import battery

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generated", type=int, default=6, help="random corruptions of each file kind")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cases = battery() + malformed_files(args.seed, args.generated)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        finished = root / "finished"
        rc, err = invoke(
            ["run", "--data", "digits", "--out", str(finished), "--epochs", "1", "--budget", "4", "--max-export", "2"]
            + ["--quiet"],
            root,
        )
        if rc != 0:
            raise SystemExit(f"could not make the finished run: {err}")

        def one(i: int) -> object:
            sandbox = root / f"case{i}"
            sandbox.mkdir()
            return check(cases[i], sandbox, invoke, finished)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.workers) as pool:
            outcomes = list(pool.map(one, range(len(cases))))
        seconds = time.perf_counter() - t0
    failed = [o for o in outcomes if not o.passed]
    for o in failed:
        print(f"FAIL {o.case}: {o.why} ({o.seconds:.1f} s) {o.message[:160]}", file=sys.stderr if args.json else None)
    summary = {
        "cases": len(outcomes),
        "passed": len(outcomes) - len(failed),
        "failed": [o.case for o in failed],
        "slowest_error_s": max((o.seconds for o in outcomes if o.message), default=0.0),
        "seconds": round(seconds, 1),
    }
    print(
        json.dumps(summary)
        if args.json
        else f"{summary['passed']}/{summary['cases']} cases keep the promise "
        f"(slowest error {summary['slowest_error_s']:.1f} s, {seconds:.0f} s in all)"
    )
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
