"""``lightnas export-study``: a run's evaluations as an Optuna study, for
``optuna-dashboard`` and ``optuna.visualization``.

One finished trial per stored evaluation, in the search's order: the
architecture as parameters (categorical distributions over the space's
choices; dimensions a shallower architecture does not use are left out),
accuracy and latency as the two values (maximise, minimise), every other
metric, the architecture key and the exported model id as user attributes,
and the run's constraints as Optuna's ``constraints`` (<= 0: satisfied), so
Optuna's Pareto plots tell feasible from infeasible.
"""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path
from typing import Any

from lightnas.errors import LightnasError
from lightnas.reporting.run import ACC, LAT, RunView
from lightnas.space import SearchSpace
from lightnas.store import read_only_connection


def _optuna() -> Any:
    try:
        # Optuna is an optional extra
        import optuna
    except ImportError:
        raise LightnasError("export-study needs optuna: pip install 'lightnas[optuna]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _check_sqlite_file(url: str) -> None:
    """An existing SQLite file must already be an Optuna storage (or empty):
    Optuna's tables are never added to another program's database."""

    path = Path(url.removeprefix("sqlite:///"))
    if not url.startswith("sqlite:///") or not path.is_file() or path.stat().st_size == 0:
        return
    try:
        con = read_only_connection(path)  # immutable: leaves no -wal or -shm file beside it
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise LightnasError(f"{path} is not a SQLite database ({exc})") from None
    if tables and not {"studies", "trials", "alembic_version"} <= tables:
        raise LightnasError(f"{path} is a SQLite database of another program, not an Optuna storage")


def _storage(optuna: Any, url: str) -> Any:
    if "://" not in url:
        raise LightnasError(f"storage must be a database URL such as sqlite:///study.db, not {url!r}")
    _check_sqlite_file(url)
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as exc:  # SQLAlchemy's errors for bad URLs, missing drivers, unwritable files
        raise LightnasError(f"cannot open storage {url!r}: {str(exc).splitlines()[0]}") from None


def export_study(view: RunView, space: SearchSpace, url: str, name: str | None = None) -> tuple[str, int]:
    """Write ``view``'s evaluations to the Optuna storage ``url`` as a new
    study (default name: run folder and search study); returns (study name,
    trials written). An existing study of that name is a one-line error."""
    optuna = _optuna()
    # Optuna is an optional extra
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState, create_trial

    storage = _storage(optuna, url)
    name = name or f"{view.name}-{view.study}"
    if name in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        raise LightnasError(f"{url} already holds a study named {name!r} (give another --study-name)")
    dists = {d.name: CategoricalDistribution(list(d.values)) for d in space.dims}
    trials = []
    for e in view.evaluations:
        m = e.metrics
        attrs: dict[str, Any] = {k: v for k, v in m.items() if k not in (ACC, LAT)}
        attrs.update(arch_key=e.key, evaluation=e.index, model=e.model, pareto=e.pareto)
        params = {k: v for k, v in e.arch.items() if k in dists}
        trials.append(
            create_trial(
                state=TrialState.COMPLETE,
                values=[m[ACC], m[LAT]],
                params=params,
                distributions={k: dists[k] for k in params},
                user_attrs=attrs,
                system_attrs={"constraints": [c.violation(m) for c in view.constraints]},
            )
        )
    study = optuna.create_study(storage=storage, study_name=name, directions=["maximize", "minimize"])
    with warnings.catch_warnings():  # experimental in Optuna 4-5; the dashboard shows the names
        warnings.simplefilter("ignore")
        study.set_metric_names([ACC, LAT])
    study.set_user_attr("lightnas_run", str(view.out.resolve()))
    study.set_user_attr("latency_target", view.target())
    study.set_user_attr("constraints", list(view.cfg.search.constraints))
    study.add_trials(trials)
    return name, len(trials)
