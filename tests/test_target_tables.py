"""--target-table: other devices' latency tables searched as fronts of their own."""

import csv
import json
import shutil

from lightnas.cli import main
from lightnas.config import RunConfig
from lightnas.hardware.cost import count_macs
from lightnas.hardware.lut import LUT_FORMAT, LatencyTable, _key
from lightnas.store import OK, Store
from lightnas.train.checkpoint import load_supernet


def mcu_table(run, path):
    """A device whose latency is proportional to MACs (unlike this CPU's)."""
    net, _ = load_supernet(run / "supernet.pt")
    parts = {_key(p): 1e-5 * count_macs(*net.build_part(p)) for p in net.all_latency_parts()}
    meta = {"format": LUT_FORMAT, "batch": 1, "machine": {"node": "mcu"}}
    LatencyTable("mobilenet", net.config.to_dict(), "onnxruntime", 1, parts, {"a": 1.0, "b": 0.5}, meta).save(path)
    return LatencyTable.load(path).bind(net), net


def test_each_device_gets_its_front_and_family(finished_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out, ignore=shutil.ignore_patterns("lightnas.db*", "models"))
    table, net = mcu_table(out, tmp_path / "mcu.json")
    opts = ["--target-table", f"mcu={tmp_path / 'mcu.json'}", "--quiet"]
    assert main(["search", str(out), "--budget", "10", *opts]) == 0
    cfg = RunConfig.from_file(out / "config.json")
    assert cfg.latency.tables == {"mcu": str(tmp_path / "mcu.json")}
    with Store(out / "lightnas.db") as store:
        records = store.records(cfg.study(), OK)
    assert len(records) == 10
    for r in records:  # every evaluation priced on both devices
        assert abs(r.metrics["latency_ms@mcu"] - table.predict(net.space.make(r.arch))) < 1e-9
    assert main(["export", str(out), "--quiet"]) == 0 and main(["report", str(out), "--quiet"]) == 0
    index = json.loads((out / "models" / "index.json").read_text())
    cards = [json.loads((out / "models" / i / "card.json").read_text()) for i in index["models"]]
    assert all(set(c["table_latency_ms"]) == {"mcu"} and set(c["fronts"]) <= {"cpu", "mcu"} for c in cards)
    # the most accurate model on the mcu's front and its fastest are exported for it
    acc = {r.arch_key: r.metrics["accuracy"] for r in records}
    best = max(records, key=lambda r: (r.metrics["accuracy"], -r.metrics["latency_ms@mcu"]))
    fastest = min(records, key=lambda r: (r.metrics["latency_ms@mcu"], -r.metrics["accuracy"]))
    for_mcu = {c["key"] for c in cards if "mcu" in c["fronts"]}
    assert {best.arch_key, fastest.arch_key} <= for_mcu and all(k in acc for k in for_mcu)
    rows = list(csv.DictReader((out / "pareto.csv").open()))
    assert len(rows) == len(cards) and all(float(r["latency_ms@mcu"]) > 0 for r in rows)
    from test_report import figures_of  # the report draws the mcu's front too

    device = figures_of(out / "report.html")["device-0"]["data"]
    assert sum(len(t["x"]) for t in device if t.get("meta") == "evaluations latency_ms@mcu") == len(records)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["devices"]["mcu"]["models"] == len(for_mcu) and "mcu:" in summary["headline"]
    # the training cost counts every exported model, whichever device it serves, once
    cost = json.loads((out / "training_cost.json").read_text())
    assert cost["n_subnets"] == len(cards)
    assert (
        f"the {len(cards)} exported models one by one (every model exported for this device, 1 device table"
        in (summary["headline"])
    )


def test_the_cost_sentence_names_what_it_counts():
    from lightnas.artefacts import TrainingCost
    from lightnas.reporting.tables import cost_sentence

    cost = TrainingCost(100.0, 9, 250.0, 2.5, "")
    assert cost_sentence(cost, 0, 0) == (
        "training the super-network took 100 s, training the 9 exported models one by one "
        "(every model exported for this device, each once) ~250 s: ratio 2.5"
    )
    assert "for this device, 2 device tables, 3 bounds, each once" in cost_sentence(cost, 2, 3)


def test_bad_target_tables_are_one_line_errors(finished_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out, ignore=shutil.ignore_patterns("lightnas.db*", "models"))
    (tmp_path / "bad.json").write_text("{}")
    mcu_table(out, tmp_path / "mcu.json")  # its smallest sub-network takes more than 0.5 ms
    stored = (out / "config.json").read_text()
    for args, needle in (
        (["--target-table", f"mcu={tmp_path / 'none.json'}"], "no latency table"),
        (["--target-table", "a/b=x.json"], "letters"),
        (["--constraint", "latency_ms@pi<=3"], "names no --target-table"),
        (["--target-table", f"x={tmp_path / 'bad.json'}"], "not a lightnas latency table"),
        (["--target-table", f"mcu={tmp_path / 'mcu.json'}", "--constraint", "latency_ms@mcu<=0.1"], "impossible"),
    ):
        capsys.readouterr()
        assert main(["search", str(out), *args]) == 2
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(err) == 1 and err[0].startswith("lightnas: error:") and needle in err[0], err
    assert (out / "config.json").read_text() == stored and not (out / "lightnas.db").exists()
