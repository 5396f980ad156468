"""The ``compare`` and ``export-study`` commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from lightnas.errors import LightnasError

if TYPE_CHECKING:  # the command line starts without the report's imports (numpy, plotly)
    from lightnas.reporting.run import RunView


def _views(dirs: list[str], with_parts: bool) -> list[RunView]:
    """The finished runs in ``dirs``, each named by its folder (by its path
    where two folders share a name)."""
    # imported by the command that runs: the parser starts in 0.3 s (torch alone: 2 s)
    import sys

    from lightnas.lock import writer_of
    from lightnas.reporting.run import load_run
    from lightnas.runfolder import load_folder

    for d in dirs:
        busy = writer_of(Path(d))
        if busy:
            print(f"lightnas: {d} is being written by {busy}; reading what it holds now", file=sys.stderr)
    views = [load_run(Path(d), load_folder(Path(d)), with_parts=with_parts) for d in dirs]
    names = [v.name for v in views]
    for v in views:
        if names.count(v.name) > 1:
            v.label = str(v.out)
    if len({v.name for v in views}) < len(views):
        raise LightnasError("a run is named twice: give each run folder once")
    return views


def cmd_compare(args: argparse.Namespace) -> int:
    # imported by the command that runs: the parser starts in 0.3 s (torch alone: 2 s)
    from lightnas.reporting.compare import check_output, write_compare

    path = Path(args.out)
    check_output(path, args.force)
    views = _views(args.runs, with_parts=False)
    write_compare(views, path)
    if not args.quiet:
        print(f"compared {len(views)} runs: {path}")
    return 0


def cmd_export_study(args: argparse.Namespace) -> int:
    # imported by the command that runs: the parser starts in 0.3 s (torch alone: 2 s)
    from lightnas.reporting.study import export_study

    (view,) = _views([args.dir], with_parts=True)
    if view.space is None:
        raise LightnasError(f"{args.dir} has no supernet.pt (the study's parameters need its search space)")
    name, n = export_study(view, view.space, args.storage, args.study_name)
    if not args.quiet:
        print(f"wrote {n} trials to study {name!r} in {args.storage}")
    return 0


def add_report_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``compare`` and ``export-study`` on the command's subparsers."""
    p = sub.add_parser("compare", help="put several finished runs' fronts side by side in one page")
    p.add_argument("runs", nargs="+", help="run folders (same data and latency target)")
    p.add_argument("--out", default="compare.html", help="page to write (default: compare.html)")
    p.add_argument("--force", action="store_true", help="replace a file that is not an earlier comparison")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=cmd_compare)

    p = sub.add_parser("export-study", help="write a run's evaluations as an Optuna study (optuna-dashboard)")
    p.add_argument("dir", help="run folder")
    p.add_argument("--storage", required=True, help="Optuna storage URL, e.g. sqlite:///lightnas-study.db")
    p.add_argument("--study-name", default=None, help="(default: <run folder>-<search study>)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=cmd_export_study)
