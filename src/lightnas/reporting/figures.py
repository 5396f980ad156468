"""The Plotly figures of the reports (plain figure objects; the page embeds them).

Every evaluation is exactly one marker of the front figure (traces tagged
``meta="evaluations"``), so a page can be checked against the store by
counting markers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lightnas.objectives import TABLE_LATENCY, Constraint
from lightnas.reporting.run import ACC, LAT, Evaluation, Part, RunView, hypervolume_progress
from lightnas.space import Value

HOVER = (
    "<b>%{customdata[0]}</b><br>accuracy %{y:.2f}%<br>latency %{x:.4f} ms<br>"
    "params %{customdata[1]:,}<br>MACs %{customdata[2]:,}<br>%{customdata[3]}<extra>%{customdata[4]}</extra>"
)
LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 40, "b": 50}, "hovermode": "closest"}


def arch_text(arch: Mapping[str, Value], per_line: int = 6) -> str:
    """``dim=value`` pairs, ``per_line`` to a line (hover labels)."""
    pairs = [f"{k}={v}" for k, v in arch.items()]
    return "<br>".join(" ".join(pairs[i : i + per_line]) for i in range(0, len(pairs), per_line))


def label(e: Evaluation) -> str:
    """How an evaluation is named: its exported model's id, else its evaluation number."""
    return e.model or f"evaluation {e.index}"


def _points(
    evals: Sequence[Evaluation], name: str, marker: dict[str, object], run: str = "", lat: str = LAT
) -> go.Scatter:
    return go.Scatter(
        x=[e.metrics[lat] for e in evals],
        y=[e.metrics[ACC] for e in evals],
        mode="markers",
        name=f"{name} ({len(evals)})",
        meta="evaluations" if lat == LAT else f"evaluations {lat}",
        marker=marker,
        ids=[f"{run}{e.index}" for e in evals],
        customdata=[
            [label(e), int(e.metrics.get("params", 0)), int(e.metrics.get("macs", 0)), arch_text(e.arch), run]
            for e in evals
        ],
        hovertemplate=HOVER,
    )


def _front_line(evals: Sequence[Evaluation], name: str, color: str | None = None, device: str = "") -> go.Scatter:
    """The feasible front as a staircase: this machine's, or ``device``'s (its table's latency)."""
    lat = TABLE_LATENCY + device if device else LAT
    on = (lambda e: device in e.device_fronts) if device else (lambda e: e.pareto)
    front = sorted((e for e in evals if on(e)), key=lambda e: e.metrics[lat])
    return go.Scatter(
        x=[e.metrics[lat] for e in front],
        y=[e.metrics[ACC] for e in front],
        mode="lines",
        line={"shape": "hv", "width": 2, **({"color": color} if color else {})},
        name=name,
        hoverinfo="skip",
    )


def _constraint_shapes(fig: go.Figure, constraints: Sequence[Constraint]) -> None:
    for c in constraints:
        if c.metric == LAT:
            fig.add_vline(x=c.bound, line_dash="dash", line_color="#1f77b4", annotation_text=str(c))
        elif c.metric == ACC:
            fig.add_hline(y=c.bound, line_dash="dash", line_color="#1f77b4", annotation_text=str(c))


def front_figure(view: RunView) -> go.Figure:
    """Every evaluation (feasible, infeasible, exported), the feasible front as a
    staircase, the constraints on the plotted metrics as dashed lines."""
    ev = view.evaluations
    fig = go.Figure(layout={**LAYOUT, "height": 480})
    fig.add_trace(_front_line(ev, "Pareto front", "#d62728"))
    fig.add_trace(_points([e for e in ev if e.feasible and not e.model], "evaluated", {"color": "#9e9e9e", "size": 7}))
    infeasible = [e for e in ev if not e.feasible]
    if infeasible:
        fig.add_trace(_points(infeasible, "infeasible", {"color": "#cccccc", "size": 7, "symbol": "x"}))
    star = {"color": "#d62728", "size": 12, "symbol": "star"}
    fig.add_trace(_points([e for e in ev if e.model], "exported (click to open)", star))
    _constraint_shapes(fig, view.constraints)
    fig.update_xaxes(title=f"latency (ms, {view.target()})", type="log")
    fig.update_yaxes(title=f"validation {ACC} (%)")
    return fig


def device_figure(view: RunView, device: str) -> go.Figure:
    """The same evaluations against another device's latency (its table,
    ``--target-table``): that device's front and the models picked from it."""
    lat = TABLE_LATENCY + device
    ev = [e for e in view.evaluations if lat in e.metrics and e.feasible]
    fig = go.Figure(layout={**LAYOUT, "height": 420})
    fig.add_trace(_front_line(ev, f"{device} front", "#2ca02c", device))
    picked = {c.id for c in view.cards if device in c.fronts}
    fig.add_trace(
        _points([e for e in ev if e.model not in picked], "evaluated", {"color": "#9e9e9e", "size": 7}, "", lat)
    )
    star = {"color": "#2ca02c", "size": 12, "symbol": "star"}
    fig.add_trace(_points([e for e in ev if e.model in picked], f"exported for {device}", star, "", lat))
    fig.update_xaxes(title=f"latency on {device} (ms, its table)", type="log")
    fig.update_yaxes(title=f"validation {ACC} (%)")
    return fig


def progress_figure(view: RunView) -> go.Figure:
    """Hypervolume of the feasible evaluations so far against evaluations made."""
    hv = hypervolume_progress(view.evaluations)
    fig = go.Figure(layout={**LAYOUT, "height": 320})
    fig.add_trace(go.Scatter(x=list(range(1, len(hv) + 1)), y=hv, mode="lines+markers", name="hypervolume"))
    fig.update_xaxes(title="evaluations")
    fig.update_yaxes(title="hypervolume (scaled, max 1.21)")
    return fig


CURVES = (
    ("val_largest", 1, "largest: validation accuracy"),
    ("val_smallest", 1, "smallest: validation accuracy"),
    ("loss", 2, "training loss (all students)"),
    ("val_loss_largest", 2, "largest: validation loss"),
    ("val_loss_smallest", 2, "smallest: validation loss"),
)


def curves_figure(history: Sequence[Mapping[str, object]]) -> go.Figure:
    """Per epoch: validation accuracy of the largest and smallest sub-networks,
    training loss, validation loss of both (what the history records)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("validation accuracy (%)", "loss"))
    fig.update_layout(**LAYOUT, height=340)
    epochs = [h["epoch"] for h in history]
    for key, col, name in CURVES:
        if history and all(key in h for h in history):
            fig.add_trace(go.Scatter(x=epochs, y=[h[key] for h in history], mode="lines+markers", name=name), 1, col)
    fig.update_xaxes(title="epoch")
    return fig


def arch_figure(parts: Sequence[Part]) -> go.Figure:
    """A sub-network as the parts it runs in order (stem, blocks, head), bar
    height its MACs, the part in words on hover."""
    kinds = [p.kind for p in parts]
    fig = go.Figure(layout={**LAYOUT, "height": 260, "showlegend": False, "margin": {**LAYOUT["margin"], "t": 10}})
    fig.add_trace(
        go.Bar(
            x=[f"{i + 1} {k}" for i, k in enumerate(kinds)],
            y=[p.macs for p in parts],
            hovertext=[p.text for p in parts],
            marker={"color": [_kind_colour(k) for k in kinds]},
            hovertemplate="%{hovertext}<br>%{y:,} MACs<extra></extra>",
        )
    )
    fig.update_yaxes(title="MACs")
    return fig


PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _kind_colour(kind: str) -> str:
    return PALETTE[sum(map(ord, kind)) % len(PALETTE)]


def compare_figure(views: Sequence[RunView]) -> go.Figure:
    """The runs' evaluations and fronts on shared axes, one colour per run."""
    fig = go.Figure(layout={**LAYOUT, "height": 520})
    for i, v in enumerate(views):
        colour = PALETTE[i % len(PALETTE)]
        fig.add_trace(_front_line(v.evaluations, f"{v.name}: front", colour))
        fig.add_trace(_points(v.evaluations, v.name, {"color": colour, "size": 6, "opacity": 0.5}, run=v.name))
    fig.update_xaxes(title=f"latency (ms, {views[0].target()})", type="log")
    fig.update_yaxes(title=f"validation {ACC} (%)")
    return fig
