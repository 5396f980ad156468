"""``report.html``: one run, every evaluation, every exported model."""

from __future__ import annotations

from pathlib import Path

from lightnas.artefacts import ModelCard
from lightnas.reporting.figures import arch_figure, curves_figure, device_figure, front_figure, progress_figure
from lightnas.reporting.page import cell, esc, figure_div, key_value_table, number, write_page
from lightnas.reporting.run import RunView

GENERATOR = "lightnas report"


def _latency_rows(card: ModelCard) -> list[str]:
    lat = card.latency
    where = f"{lat.backend}, {lat.threads} thread(s), batch {lat.batch}, {lat.device}"
    rows = [
        f"<tr><th>Latency ({esc(where)})</th>{cell('latency.latency_ms', lat.latency_ms, ' ms')}"
        f"<td>{esc(lat.how)}</td></tr>",
        f"<tr><th>Latency, median</th>{cell('latency.latency_median_ms', lat.latency_median_ms, ' ms')}"
        "<td>same runs</td></tr>",
        f"<tr><th>Latency, interquartile range</th>{cell('latency.latency_iqr_ms', lat.latency_iqr_ms, ' ms')}"
        "<td>same runs</td></tr>",
    ]
    for backend, m in lat.by_backend.items():
        if backend != lat.backend:
            key = f"latency.by_backend.{backend}.latency_ms"
            rows.append(
                f"<tr><th>Latency in {esc(backend)}</th>{cell(key, m.latency_ms, ' ms')}"
                "<td>same measurement, for comparison</td></tr>"
            )
    return rows


FIELDS = (
    ("val_accuracy", "Validation accuracy", " %", "inherited from the super-network, BatchNorm recalibrated"),
    ("test_accuracy", "Test accuracy", " %", "on the whole test split"),
    ("params", "Parameters", "", ""),
    ("macs", "Multiply-accumulates per image", " MACs", ""),
    ("bytes", "Model size", " bytes", "weights: 4 bytes each, 1 in INT8 groups"),
    ("peak_act_bytes", "Peak activation memory", " bytes", "largest live activations, batch 1"),
    ("onnx_bytes", "ONNX file", " bytes", ""),
)


def _quantization_row(card: ModelCard) -> list[str]:
    q = card.quantization
    if q is None or q.test_accuracy_fp32 is None:
        return []
    return [
        f"<tr><th>Precision</th><td colspan=2>{esc(card.precision)} ({esc(q.scheme)}, "
        f"{esc(q.weight_bits)}-bit weights; "
        f"{esc(q.calibration_images)} calibration images, {esc(q.calibration_method)}): test "
        f"{esc(number(q.test_accuracy))} % in INT8 against {esc(number(q.test_accuracy_fp32))} % "
        f"in float32, top-1 agreement {esc(number(100 * (q.top1_agreement_fp32 or 0.0)))} %</td></tr>"
    ]


def model_section(card: ModelCard, view: RunView) -> str:
    """A model's card in words, its architecture by part, links to its files."""
    rows = [
        f"<tr><th>{esc(name)}</th>{cell(key, getattr(card, key), unit)}<td>{esc(note)}</td></tr>"
        for key, name, unit, note in FIELDS
        if getattr(card, key) is not None
    ]
    rows[2:2] = _latency_rows(card)
    ver = card.verification
    rows.append(
        "<tr><th>ONNX checked against PyTorch</th>"
        f"{cell('verification.onnx_max_abs_diff', ver.onnx_max_abs_diff)}"
        f"<td>largest logit difference over {esc(ver.onnx_checked_images)} images; predictions "
        f"agree on {esc(number(100 * ver.onnx_torch_prediction_agreement))} %</td></tr>"
    )
    rows += _quantization_row(card)
    if card.targets:
        rows.append(f"<tr><th>Targets it serves</th><td colspan=2>{esc(', '.join(card.targets))}</td></tr>")
    rows.append(f"<tr><th>Exported</th><td colspan=2>{esc(card.exported)}</td></tr>")
    links = [
        f'<a href="models/{esc(card.id)}/{esc(name)}">{esc(name)}</a> ({esc(kind)})'
        for kind, name in [*card.files.items(), ("card", "card.json")]
    ]
    arch = " ".join(f"{k}={v}" for k, v in card.arch.items())
    drawing = figure_div(f"arch-{card.id}") if card.id in view.parts else ""
    return (
        f'<div class="model" id="model-{esc(card.id)}"><h3>{esc(card.id)}</h3>'
        f"<table>{''.join(rows)}</table><p>Files: {' · '.join(links)}</p>"
        f"<p>Architecture: <code>{esc(arch)}</code></p>{drawing}</div>"
    )


def intro(view: RunView) -> str:
    cfg = view.cfg
    facts = {
        "data": cfg.data.source,
        "super-network": cfg.supernet.name,
        "latency target": view.target(),
        "search": f"{cfg.search.strategy}, {len(view.evaluations)} evaluations, study {view.study}",
        "constraints": ", ".join(cfg.search.constraints) or "none",
        "exported models": len(view.cards),
    }
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts.items())
    headline = view.summary.headline if view.summary else ""
    return f'<p class="headline">{esc(headline)}</p><table>{rows}</table>'


def write_report(view: RunView, path: Path) -> None:
    """Write ``report.html`` for ``view`` (see :mod:`lightnas.reporting`)."""
    figures = {"front": front_figure(view), "progress": progress_figure(view)}
    sections = [
        (
            "front-section",
            "Accuracy against latency",
            f"<p>Every evaluated sub-network; hover for details, click an exported model (star) to open it.</p>"
            f'{figure_div("front", 480)}<div id="details">Click a point for its architecture.</div>',
        ),
        ("progress-section", "Search progress", figure_div("progress", 320)),
    ]
    for i, device in enumerate(view.cfg.latency.tables):  # one front per other device
        figures[f"device-{i}"] = device_figure(view, device)
        sections.append(
            (f"device-{i}-section", f"Accuracy against latency on {device}", figure_div(f"device-{i}", 420))
        )
    if view.history:
        figures["training"] = curves_figure(view.history)
        sections.append(("training-section", "Super-network training", figure_div("training", 340)))
    for card in view.cards:
        if card.id in view.parts:
            figures[f"arch-{card.id}"] = arch_figure(view.parts[card.id])
    models = "".join(model_section(c, view) for c in view.cards)
    sections += [
        ("models", f"Exported models ({len(view.cards)})", models),
        ("summary", "Run summary", key_value_table(_summary_values(view))),
        ("configuration", "Configuration", key_value_table(view.cfg.to_dict())),
    ]
    write_page(path, f"lightnas report: {view.name}", intro(view), sections, figures, GENERATOR)


def _summary_values(view: RunView) -> dict[str, object]:
    values = view.summary.to_dict() if view.summary else {}
    return {k: v for k, v in values.items() if k != "headline"}
