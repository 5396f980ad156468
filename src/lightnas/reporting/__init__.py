"""What a finished run shows people: the interactive ``report.html``, its
tables (``pareto.csv``, the terminal table, ``summary.json``), the
comparison of several runs (``compare.html``) and the export of a run's
evaluations as an Optuna study.

- :mod:`.tables` makes the tables and the run's summary from the cards;
- :mod:`.run` reads a run folder into one :class:`~.run.RunView` (store,
  cards, training history, configuration) without changing anything;
- :mod:`.figures` turns it into Plotly figures (front, progress, training
  curves, architectures);
- :mod:`.page` writes the self-contained HTML page (Plotly's JavaScript
  embedded: the file opens offline);
- :mod:`.compare` puts several runs' fronts on shared axes;
- :mod:`.study` writes an Optuna study for ``optuna-dashboard``.
"""
