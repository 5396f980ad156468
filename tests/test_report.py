"""report.html, compare.html and export-study: every number equals the
store's and the cards', the pages render without script errors in headless
Chromium, the Optuna study opens in Optuna."""

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from lightnas.cli import main
from lightnas.config import RunConfig
from lightnas.objectives import parse_constraint
from lightnas.reporting.compare import budget_table
from lightnas.reporting.figures import front_figure
from lightnas.reporting.run import Evaluation, RunView, hypervolume_progress
from lightnas.store import OK, Record, Store
from lightnas_dev.browser import chromium, render


def stored(out: Path) -> dict[int, dict]:
    cfg = RunConfig.from_file(out / "config.json")
    with Store(out / "lightnas.db") as store:
        return {r.index: r for r in store.records(cfg.study(), OK)}


def figures_of(page: Path) -> dict:
    text = page.read_text()
    m = re.search(r'<script type="application/json" id="lightnas-figures">(.*?)</script>', text, re.S)
    return json.loads(m.group(1).replace("<\\/", "</"))


def cells(fragment: str) -> dict[str, str]:
    return dict(re.findall(r'data-key="([^"]*)" data-value="([^"]*)"', fragment))


def dotted(d: dict, key: str):
    for part in key.split("."):
        d = d[part]
    return d


def test_report_numbers_equal_the_store_and_the_cards(finished_run):
    page = finished_run / "report.html"
    records = stored(finished_run)
    points = [t for t in figures_of(page)["front"]["data"] if t.get("meta") == "evaluations"]
    seen = set()
    for t in points:
        for i, x, y, custom in zip(t["ids"], t["x"], t["y"], t["customdata"], strict=True):
            r = records[int(i)]
            assert (x, y) == (r.metrics["latency_ms"], r.metrics["accuracy"])
            assert custom[1:3] == [int(r.metrics["params"]), int(r.metrics["macs"])]
            seen.add(int(i))
    assert seen == set(records)  # every evaluation exactly once
    text = page.read_text()
    index = json.loads((finished_run / "models" / "index.json").read_text())["models"]
    for model_id in index:
        card = json.loads((finished_run / "models" / model_id / "card.json").read_text())
        section = text.split(f'id="model-{model_id}"', 1)[1].split('<div class="model"', 1)[0].split("</section>")[0]
        values = cells(section)
        assert {"test_accuracy", "val_accuracy", "latency.latency_ms", "params", "macs", "bytes"} <= set(values)
        for key, value in values.items():
            assert float(value) == float(dotted(card, key)), key
        for href in re.findall(r'href="(models/[^"]+)"', section):
            assert (finished_run / href).is_file(), href
    summary = json.loads((finished_run / "summary.json").read_text())
    for key, value in cells(text.split('<section id="summary">', 1)[1].split("</section>", 1)[0]).items():
        assert float(value) == float(dotted(summary, key)), key


def test_training_curves_record_both_ends(finished_run):
    import torch

    history = torch.load(finished_run / "supernet.pt", weights_only=True)["history"]
    for key in ("val_largest", "val_smallest", "val_loss_largest", "val_loss_smallest", "loss"):
        assert all(np.isfinite(h[key]) for h in history), key
    names = {t["name"] for t in figures_of(finished_run / "report.html")["training"]["data"]}
    assert {"largest: validation accuracy", "smallest: validation accuracy"} <= names


def _view(points: list[tuple[float, float]], constraints=(), name="r") -> RunView:
    evs = [
        {"index": i + 1, "key": f"k{i}", "arch": {"a": i}, "metrics": {"latency_ms": lat, "accuracy": acc}}
        for i, (lat, acc) in enumerate(points)
    ]
    cons = [parse_constraint(c) for c in constraints]
    for e in evs:
        e.update(feasible=all(c.satisfied(e["metrics"]) for c in cons), model=None)
    for e in evs:  # the feasible front, by brute force
        e["pareto"] = e["feasible"] and not any(
            o["feasible"]
            and o["metrics"]["latency_ms"] <= e["metrics"]["latency_ms"]
            and o["metrics"]["accuracy"] >= e["metrics"]["accuracy"]
            and o["metrics"] != e["metrics"]
            for o in evs
        )
    evaluations = [
        Evaluation(Record(e["index"], e["key"], e["arch"], e["metrics"], OK, 0.0), e["feasible"], e["pareto"])
        for e in evs
    ]
    return RunView(Path(name), RunConfig(), "s", evaluations, [], None, [], cons)


def test_hypervolume_progress_grows_to_the_front_value():
    view = _view([(2.0, 80.0), (1.0, 70.0), (3.0, 60.0), (4.0, 90.0), (0.5, 95.0)], ["latency_ms<=3.5"])
    hv = hypervolume_progress(view.evaluations)
    assert hv[0] > 0 and all(b >= a for a, b in zip(hv, hv[1:], strict=False))
    assert hv[3] == hv[2]  # the infeasible fourth evaluation adds nothing
    assert hv[-1] == pytest.approx(1.21)  # the last one dominates the whole box


def test_front_figure_draws_constraints_and_every_point():
    view = _view([(2.0, 80.0), (1.0, 70.0), (4.0, 90.0)], ["latency_ms<=3", "accuracy>=65"])
    fig = front_figure(view)
    assert sum(len(t.x) for t in fig.data if t.meta == "evaluations") == 3
    assert {s.type for s in fig.layout.shapes} == {"line"} and len(fig.layout.shapes) == 2


def test_budget_table_names_the_leader_per_latency_range():
    a = _view([(1.0, 80.0), (3.0, 90.0)], name="a")
    b = _view([(2.0, 85.0), (4.0, 88.0)], name="b")
    rows = budget_table([a, b])
    assert [(r.from_ms, r.leader) for r in rows] == [(1.0, "a"), (2.0, "b"), (3.0, "a")]
    assert rows[1].best == {"a": 80.0, "b": 85.0} and rows[-1].to_ms is None


def test_export_study_opens_in_optuna(finished_run, tmp_path):
    optuna = pytest.importorskip("optuna")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    assert main(["export-study", str(finished_run), "--storage", url, "--study-name", "s", "--quiet"]) == 0
    study = optuna.load_study(study_name="s", storage=url)
    records = stored(finished_run)
    assert len(study.trials) == len(records)
    for t in study.trials:
        r = records[t.user_attrs["evaluation"]]
        assert t.values == [r.metrics["accuracy"], r.metrics["latency_ms"]]
        assert all(r.arch[k] == v for k, v in t.params.items())
    assert study.best_trials  # the Pareto front Optuna computes
    optuna.visualization.plot_pareto_front(study, target_names=["accuracy", "latency_ms"])
    before = (tmp_path / "study.db").read_bytes()
    assert main(["export-study", str(finished_run), "--storage", url, "--study-name", "s", "--quiet"]) == 2
    assert main(["export-study", str(finished_run), "--storage", f"sqlite:///{finished_run / 'lightnas.db'}"]) == 2
    assert (tmp_path / "study.db").read_bytes() == before


def test_compare_refuses_what_does_not_compare(finished_run, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(finished_run, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["data"]["source"] = "fashion-mnist"
    (other / "config.json").write_text(json.dumps(cfg))
    assert main(["compare", str(finished_run), str(other), "--out", str(tmp_path / "c.html")]) == 2
    assert "do not compare" in capsys.readouterr().err
    precious = tmp_path / "notes.html"
    precious.write_text("mine")
    assert main(["compare", str(finished_run), "--out", str(precious)]) == 2
    assert precious.read_text() == "mine"


@pytest.fixture
def browser():
    """Headless Chromium; skipped where there is none, except on CI, which installs it."""
    try:
        with chromium() as b:
            yield b
    except (ImportError, FileNotFoundError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must have Chromium and playwright for the browser tests: {exc}")
        pytest.skip(f"no browser here: {exc}")


def test_pages_render_in_chromium(finished_run, tmp_path, browser):
    n = len(stored(finished_run))
    twin = tmp_path / "twin"
    shutil.copytree(finished_run, twin)
    compare = tmp_path / "compare.html"
    assert main(["compare", str(finished_run), str(twin), "--out", str(compare), "--quiet"]) == 0
    report = render(browser, finished_run / "report.html")
    assert report["errors"] == "" and report["console"] == []
    assert report["points"] == report["drawn"] == n
    page = report["page"]
    hrefs = page.eval_on_selector_all("a[href^='models/']", "els => els.map(e => e.getAttribute('href'))")
    assert hrefs and all((finished_run / h).is_file() for h in hrefs)
    model = json.loads((finished_run / "models" / "index.json").read_text())["models"][0]
    page.evaluate(  # a click on the model's point opens its section
        "id => document.getElementById('front').emit('plotly_click',"
        " {points: [{customdata: [id, 0, 0, '', ''], x: 1, y: 1}]})",
        model,
    )
    assert page.evaluate("location.hash") == f"#model-{model}"
    both = render(browser, compare)
    assert both["errors"] == "" and both["console"] == []
    assert both["points"] == both["drawn"] == 2 * n
