"""How fast a run's report.html opens in headless Chromium, and how much it weighs.

Regenerates the run's report with this code (``lightnas report RUN``), then
opens it ``--loads`` times in one headless Chromium (Debian's package, driven
by Playwright), each in a fresh tab: time from navigation start until every
figure is drawn (the page's own ``data-rendered`` mark), script errors, and
the front's markers against the store's evaluations.

    lightnas run                                  # the default run -> ./lightnas-run
    python bench/report.py lightnas-run --loads 5 --json

Prints size, each load's time, median and slowest.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "devkit"))  # the project's test kit (not in the wheel)


def main() -> int:
    from lightnas.config import RunConfig
    from lightnas.store import OK, Store
    from lightnas_dev.browser import chromium, render

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", default="lightnas-run", help="a finished run folder (default: lightnas-run)")
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    run = Path(args.run)
    subprocess.run([sys.executable, "-m", "lightnas.cli", "report", str(run), "--quiet"], check=True)
    page = run / "report.html"
    cfg = RunConfig.from_file(run / "config.json")
    with Store(run / "lightnas.db") as store:
        n = sum("accuracy" in r.metrics and "latency_ms" in r.metrics for r in store.records(cfg.study(), OK))
    loads = []
    with chromium() as browser:
        for _ in range(args.loads):
            info = render(browser, page)
            info["page"].close()
            info.pop("page")
            loads.append(info)
    times = [x["rendered_ms"] for x in loads]
    result = {
        "run": str(run),
        "bytes": page.stat().st_size,
        "evaluations": n,
        "render_ms": times,
        "median_ms": statistics.median(times),
        "slowest_ms": max(times),
        "points_match": all(x["points"] == x["drawn"] == n for x in loads),
        "script_errors": sorted({e for x in loads for e in [x["errors"], *x["console"]] if e}),
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{page}: {result['bytes'] / 1e6:.2f} MB, {n} evaluations, points match: {result['points_match']}")
        print(
            f"drawn in {', '.join(f'{t:.0f}' for t in times)} ms: median {result['median_ms']:.0f}, "
            f"slowest {result['slowest_ms']:.0f}; script errors: {len(result['script_errors'])}"
        )
    return 0 if result["points_match"] and not result["script_errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
