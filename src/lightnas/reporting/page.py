"""Self-contained HTML pages: Plotly's JavaScript embedded once, figures as
JSON, tables of plain text. The page opens offline from the run folder.

A rendered page records on its ``<html>`` element ``data-rendered`` (ms from
navigation start until every figure is drawn), ``data-points`` (markers of
evaluations in the front figure) and ``data-errors`` (script errors, absent
when there are none), which browser tests and ``bench/report.py`` read.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import plotly.graph_objects as go

from lightnas.io import write_text

STYLE = """body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1150px;padding:0 1.5em 3em;color:#222}
h1{font-size:1.5em;margin-top:1em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
nav a{margin-right:1em}table{border-collapse:collapse;font-size:14px;margin:.5em 0}
td,th{border-bottom:1px solid #eee;padding:4px 10px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#fafafa}
.model{border:1px solid #e4e4e4;border-radius:6px;padding:.3em 1em 1em;margin:1em 0}
.model:target{border-color:#d62728;box-shadow:0 0 0 2px #f6c7c7}#details{min-height:3em;background:#fafafa;
padding:.6em 1em;font-size:14px;border-radius:4px}code{font-size:12px}.headline{font-size:1.05em}"""

SCRIPT = """
document.documentElement.dataset.scripted = performance.now().toFixed(1);
const cfg = {responsive: true, displaylogo: false};
const figs = JSON.parse(document.getElementById('lightnas-figures').textContent);
Promise.all(Object.entries(figs).map(([id, f]) => Plotly.newPlot(id, f.data, f.layout, cfg))).then(() => {
  const front = document.getElementById('front');
  const root = document.documentElement;
  if (front) {
    root.dataset.points = front.data.filter(t => t.meta === 'evaluations').reduce((n, t) => n + t.x.length, 0);
    front.on('plotly_click', ev => {
      const p = ev.points[0], d = p.customdata, panel = document.getElementById('details');
      if (!d || !panel) return;
      const model = document.getElementById('model-' + d[0]);
      if (model) { location.hash = 'model-' + d[0]; return; }
      panel.innerHTML = '<b>' + d[0] + '</b>: accuracy ' + p.y.toFixed(2) + '%, latency ' + p.x.toFixed(4) +
        ' ms, ' + d[1].toLocaleString() + ' params, ' + d[2].toLocaleString() + ' MACs<br><code>' + d[3] + '</code>';
    });
  }
  root.dataset.rendered = performance.now().toFixed(1);
});
"""

ERRORS = """window.lightnasErrors = [];
function lightnasError(m) {
  lightnasErrors.push(String(m)); document.documentElement.dataset.errors = lightnasErrors.join(' | ');
}
window.addEventListener('error', e => lightnasError(e.message));
window.addEventListener('unhandledrejection', e => lightnasError(e.reason));"""


BUNDLE = Path(__file__).with_name("js") / "plotly-basic.min.js"
BUNDLE_TRACES = {"scatter", "bar", "pie"}
"""Plotly's basic bundle, the plotly.js version the plotly package ships, with
its scatter, bar and pie traces only: a quarter of the full bundle's 4.8 MB,
which takes seconds to parse on a small machine."""


def plotly_js() -> str:
    """The embedded plotly.js (MIT, Plotly, Inc.; ``js/LICENSE``)."""
    return BUNDLE.read_text(encoding="utf-8")


def esc(v: object) -> str:
    return html.escape(str(v))


def number(v: float | int, unit: str = "", digits: int = 4) -> str:
    """A number as shown: integers with thousands separators, floats to ``digits`` significant digits."""
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 1000):
        return f"{int(v):,}{unit}"
    return f"{v:.{digits}g}{unit}"


def cell(key: str, value: float | int, unit: str = "") -> str:
    """A table cell of a number that tests can read back exactly (``data-value``)."""
    return f'<td class="num" data-key="{esc(key)}" data-value="{esc(repr(value))}">{esc(number(value, unit))}</td>'


def flat(d: Mapping[str, object], prefix: str = "") -> list[tuple[str, object]]:
    """Nested dicts as (dotted key, value) rows."""
    rows: list[tuple[str, object]] = []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            rows += flat(v, f"{prefix}{k}.")
        else:
            rows.append((f"{prefix}{k}", v))
    return rows


def key_value_table(d: Mapping[str, object]) -> str:
    """A two-column table of a nested dict (numbers as readable cells)."""
    body = []
    for k, v in flat(d):
        if isinstance(v, bool) or not isinstance(v, int | float):
            shown = v if isinstance(v, str) else json.dumps(v)
            body.append(f"<tr><th>{esc(k)}</th><td>{esc(shown)}</td></tr>")
        else:
            body.append(f"<tr><th>{esc(k)}</th>{cell(k, v)}</tr>")
    return f"<table>{''.join(body)}</table>"


def figure_div(fig_id: str, height: int | None = None) -> str:
    style = f' style="height:{height}px"' if height else ""
    return f'<div id="{esc(fig_id)}" class="figure"{style}></div>'


def write_page(
    path: Path,
    title: str,
    intro: str,
    sections: Sequence[tuple[str, str, str]],
    figures: dict[str, go.Figure],
    generator: str,
) -> None:
    """Write one page: ``sections`` are (anchor, heading, inner HTML); every
    key of ``figures`` names a ``<div>`` in them that Plotly draws into."""
    kinds = {t.type for f in figures.values() for t in f.data}
    if not kinds <= BUNDLE_TRACES:
        raise ValueError(f"trace types {sorted(kinds - BUNDLE_TRACES)} are not in the embedded plotly.js bundle")
    nav = "".join(f'<a href="#{esc(a)}">{esc(h)}</a>' for a, h, _ in sections)
    body = "".join(f'<section id="{esc(a)}"><h2>{esc(h)}</h2>{inner}</section>' for a, h, inner in sections)
    data = json.dumps({k: json.loads(f.to_json()) for k, f in figures.items()}).replace("</", "<\\/")
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="{esc(generator)}">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>
<script>{ERRORS}</script><style>{STYLE}</style></head><body>
<h1>{esc(title)}</h1>{intro}<nav>{nav}</nav>{body}
<script type="application/json" id="lightnas-figures">{data}</script>
<script>{plotly_js()}</script><script>{SCRIPT}</script>
</body></html>
"""
    write_text(doc, path)
