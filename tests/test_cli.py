import contextlib
import io
import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from lightnas.cli import main


def run_cli(*args):
    """``lightnas ARGS`` in this process, the whole CLI (parsing, error handling) included."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in args])
        except SystemExit as exc:  # --help and argparse's own exits
            rc = exc.code if isinstance(exc.code, int) else 1
    return SimpleNamespace(returncode=rc, stdout=out.getvalue(), stderr=err.getvalue())


def test_the_installed_command_runs_in_its_own_process(tmp_path):
    """One real process: the module entry point, exit status and stderr as a shell sees them."""
    res = subprocess.run(
        [sys.executable, "-m", "lightnas.cli", "run", "--data", "/nonexistent/data.npz", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    one_line_error(res, "does not exist")


def one_line_error(res, needle):
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("lightnas: error:") and needle in lines[0], lines[0]
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (["run", "--data", "/nonexistent/data.npz"], "does not exist"),
        (["run", "--data", "imagenet"], "unknown dataset"),
        (["run", "--constraint", "latency_ms<<3"], "malformed constraint"),
        (["run", "--max-latency-ms", "-1"], "impossible constraint"),
        (["run", "--constraint", "colour<=3"], "cannot constrain"),
        (["run", "--epochs", "0"], "epochs"),
        (["run", "--recipe", "magic"], "unknown recipe"),
        (["run", "--budget", "x"], "invalid int"),
        (["frobnicate"], "invalid choice"),
        (["search", "/nonexistent-run"], "no lightnas run"),
        (["bench", "nb201", "--device", "toaster"], "unknown NAS-Bench-201 device"),
        (["lut", "check", "--lut", "/nonexistent.json"], "does not exist"),
        (["lut", "build", "--input-shape", "1,28"], "input-shape"),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path, args, needle):
    one_line_error(run_cli(*args, "--out", str(tmp_path / "o")) if args[0] == "run" else run_cli(*args), needle)


def test_mis_shaped_npz(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 8, 8)), y=np.zeros(9, dtype=int))
    one_line_error(run_cli("run", "--data", str(tmp_path / "d.npz"), "--out", str(tmp_path / "o")), "labels")


def test_folder_holding_another_run_is_not_overwritten(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"data": {"source": "digits"}, "seed": 5}))
    (out / "supernet.pt").write_bytes(b"precious")
    one_line_error(run_cli("run", "--data", "digits", "--out", str(out)), "already holds a run")
    one_line_error(run_cli("run", "--data", "fashion-mnist", "--out", str(out), "--resume"), "cannot resume")
    assert (out / "supernet.pt").read_bytes() == b"precious"
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("x")
    one_line_error(run_cli("run", "--data", "digits", "--out", str(foreign), "--force"), "not a lightnas run")
    assert (foreign / "thesis.tex").exists()


def test_later_stages_refuse_force(tmp_path, capsys):
    """--force replaces a whole run: the stages after training continue the
    run they find, so there it is refused before anything is deleted."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"data": {"source": "digits"}}))
    (out / "supernet.pt").write_bytes(b"precious")
    for stage in ("search", "export", "report"):
        assert main([stage, str(out), "--force"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == ["lightnas: error: unrecognized arguments: --force"]
    assert (out / "supernet.pt").read_bytes() == b"precious"


def test_corrupt_checkpoint_is_a_one_line_error(finished_run, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished_run, out, ignore=shutil.ignore_patterns("lightnas.db*", "models"))
    (out / "supernet.pt").write_bytes(b"garbage")
    one_line_error(run_cli("search", str(out), "--quiet"), "cannot load")


def test_end_to_end_digits(finished_run, tmp_path):
    """The session's finished run (``lightnas run --data digits --epochs 1 --budget 4
    --max-export 2 --max-params 150000``), then its later commands on a copy."""
    import shutil

    import onnxruntime as ort

    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    res = run_cli("report", str(out))
    assert res.returncode == 0, res.stderr
    for name in ("lightnas.db", "supernet.pt", "pareto.csv", "report.html", "config.json"):
        assert (out / name).is_file(), name
    assert '<meta name="generator" content="lightnas report">' in (out / "report.html").read_text()
    assert f"report: {out / 'report.html'}" in res.stdout
    ids = json.loads((out / "models" / "index.json").read_text())["models"]
    assert ids
    cost = json.loads((out / "summary.json").read_text())["training_cost"]
    assert cost["n_subnets"] == len(ids) and cost["supernet_train_seconds"] > 0 and cost["one_by_one_train_seconds"] > 0
    from lightnas.data import load_dataset

    data = load_dataset("digits", 0)
    for model_id in ids:
        folder = out / "models" / model_id
        card = json.loads((folder / "card.json").read_text())
        assert card["params"] <= 150000
        assert card["verification"]["extract_max_abs_diff"] <= 1e-5
        assert card["verification"]["onnx_max_abs_diff"] <= 1e-4
        assert card["latency"]["latency_ms"] > 0 and card["latency"]["threads"] == 1
        # anyone can run the ONNX file with the card's preprocessing and get its accuracy
        pre = card["preprocessing"]
        mean = np.array(pre["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
        std = np.array(pre["std"], dtype=np.float32).reshape(1, -1, 1, 1)
        x = ((data.x_test.astype(np.float32) * pre["scale"] - mean) / std).astype(np.float32)
        sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        pred = sess.run(None, {"input": x})[0].argmax(1)
        assert abs(100 * np.mean(pred == data.y_test) - card["test_accuracy"]) < 0.3
        import torch

        from lightnas.export import load_exported

        plain = load_exported(folder)
        with torch.no_grad():
            logits = plain(torch.from_numpy(x[:50])).numpy()
        assert np.abs(logits - sess.run(None, {"input": x[:50]})[0]).max() < 1e-4
    rows = (out / "pareto.csv").read_text().splitlines()
    assert rows[0].startswith("id,key,val_accuracy") and len(rows) == len(ids) + 1
    # a second run into the same folder is refused; --resume finishes instantly from what is on disk
    one_line_error(run_cli("run", "--data", "digits", "--out", str(out)), "already holds a run")
    res = run_cli("run", "--data", "digits", "--out", str(out), "--budget", "6", "--resume", "--quiet")
    assert res.returncode == 0, res.stderr
    import sqlite3

    con = sqlite3.connect(out / "lightnas.db")
    n = con.execute("SELECT COUNT(*) FROM evaluations WHERE status='ok'").fetchone()[0]
    con.close()
    assert n == 6  # the budget raised on resume: two more, none repeated
    # fine-tune one exported model with distillation: a new folder, card and ONNX; the original stays
    before = (out / "models" / ids[0] / "card.json").read_text()
    res = run_cli("finetune", str(out), "--arch", ids[0], "--epochs", "1", "--quiet")
    assert res.returncode == 0, res.stderr
    ft = out / "models" / f"{ids[0]}-ft1"
    card = json.loads((ft / "card.json").read_text())
    assert card["finetuned_from"] == ids[0] and "test_accuracy_gain" in card
    assert (ft / "model.onnx").is_file() and card["verification"]["onnx_max_abs_diff"] <= 1e-4
    assert (out / "models" / ids[0] / "card.json").read_text() == before
    # the epoch kept is the best on validation, the starting weights included
    history = card["finetune_history"]
    kept = [h for h in history if h.get("kept")]
    assert history[0]["epoch"] == 0 and len(kept) == 1
    assert kept[0]["val_metric"] == max(h["val_metric"] for h in history)
    # a second fine-tuning with the same epochs does not replace the first silently
    one_line_error(run_cli("finetune", str(out), "--arch", ids[0], "--epochs", "1"), "already exists")
    assert json.loads((ft / "card.json").read_text()) == card
    one_line_error(run_cli("finetune", str(out), "--arch", "net-nothere"), "malformed architecture key")
    # a re-export with other settings names the models it leaves on disk outside its family
    res = run_cli("export", str(out), "--max-export", "1")
    assert res.returncode == 0, res.stderr
    index = json.loads((out / "models" / "index.json").read_text())
    assert len(index["models"]) == 1 and f"{ids[0]}-ft1" in index["earlier"]
    assert set(index["models"] + index["earlier"]) >= set(ids) and "earlier model(s)" in res.stderr


def test_run_with_latency_lookup_table(tmp_path):
    out = tmp_path / "lut-run"
    # the ViT: 18 parts to time (the MobileNet has hundreds), the table path end to end, sooner
    args = ["run", "--data", "digits", "--out", str(out), "--epochs", "1", "--budget", "4", "--quiet"]
    res = run_cli(*args, "--latency", "lut", "--lut-seconds", "3", "--supernet", "vit")
    assert res.returncode == 0, res.stderr
    table = json.loads((out / "lut.json").read_text())
    assert table["backend"] == "onnxruntime" and table["threads"] == 1 and table["meta"]["n_parts"] > 0
    assert table["meta"]["window_s"] == 3.0
    ids = json.loads((out / "models" / "index.json").read_text())["models"]
    card = json.loads((out / "models" / ids[0] / "card.json").read_text())
    assert card["latency"]["search_latency_source"] == "lookup table"
    assert card["latency"]["search_latency_ms"] > 0 and card["latency"]["latency_ms"] > 0


def test_bad_settings_are_refused_before_any_work_and_nothing_is_written(tmp_path):
    import time

    out = tmp_path / "o"
    t0 = time.perf_counter()
    one_line_error(run_cli("run", "--data", "digits", "--out", str(out), "--max-latency-ms", "1e-9"), "impossible")
    one_line_error(run_cli("run", "--data", "digits", "--out", str(out), "--constraint", "params>=1e9"), "largest")
    one_line_error(run_cli("run", "--data", "digits", "--out", str(out), "--strategy", "magic"), "unknown strategy")
    one_line_error(run_cli("run", "--out", str(out), "--resume", "--force"), "exclude each other")
    assert time.perf_counter() - t0 < 60 and not out.exists()  # refused within seconds each, the folder not claimed


def test_resume_takes_the_stored_settings_and_refuses_changes(tmp_path):
    out = tmp_path / "run"
    assert main(["train", str(out), "--data", "digits", "--epochs", "1", "--batch-size", "64", "--quiet"]) == 0
    stored = (out / "config.json").read_text()
    one_line_error(run_cli("train", str(out), "--epochs", "3"), "train.epochs=1")
    one_line_error(run_cli("search", str(out), "--budget", "0"), "budget")
    assert (out / "config.json").read_text() == stored  # a refused command leaves the settings as they were
    # a satisfiable lower bound on a cost metric is not taken for an impossible one
    assert main(["search", str(out), "--budget", "2", "--constraint", "params>=5000", "--quiet"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["epochs"] == 1 and cfg["train"]["batch_size"] == 64 and cfg["search"]["budget"] == 2


def test_cards_give_the_latency_at_the_searched_batch(finished_run, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished_run, out, ignore=shutil.ignore_patterns("lightnas.db*", "models"))
    assert main(["search", str(out), "--batch", "4", "--budget", "2", "--max-export", "1", "--quiet"]) == 0
    assert main(["export", str(out), "--quiet"]) == 0
    (first,) = json.loads((out / "models" / "index.json").read_text())["models"]
    assert main(["finetune", str(out), "--arch", first, "--epochs", "1", "--quiet"]) == 0
    for model in (first, f"{first}-ft1"):  # the exported card and the fine-tuned one
        lat = json.loads((out / "models" / model / "card.json").read_text())["latency"]
        assert lat["at_batch"]["batch"] == 4 and lat["at_batch"]["latency_ms"] > lat["latency_ms"] > 0
