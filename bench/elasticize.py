"""Bring your own network: a trained ResNet-18 and MobileNetV2 made elastic, fine-tuned, searched, exported.

For each model of ``--models`` (factories of ``examples/user_models.py``):

1. the model is trained alone on the data (``--epochs``, the default
   super-network's epochs, with the plain recipe of ``train_alone``) and its
   official-test accuracy measured; its state dict is saved;
2. ``lightnas run --from-model examples.user_models:NAME --weights FILE
   --epochs FINETUNE`` turns it into the elastic super-network, fine-tunes it
   with the model as the teacher, searches and exports (timed: "trained model
   to exported family");
3. from the run folder: the largest sub-network's test accuracy (calibrated as
   the search evaluates it) against the original's; every exported model's
   ONNX Runtime latency measured here, beside the original's, in one process
   (one thread, interleaved order); the exported family's span and the best
   test accuracy at no more than half the original's latency;
4. ``--archs`` random sub-networks of the fine-tuned super-network: extracted
   against in place, and in ONNX Runtime against PyTorch (max abs, logits).

The time of the default super-network trained from scratch on the same data
for ``--epochs`` (``lightnas train``) is measured once, in the same run, as the
reference of the time ratio.

``--train-images`` and ``--test-images`` cut the data (the first images of
the embedded Fashion-MNIST's training and test splits, written as an ``.npz``;
the validation split is kept whole) for a run that fits a small machine; the
figures then say so in ``data``.

    python bench/elasticize.py [--models resnet18,mobilenet_v2] [--epochs 8] [--finetune-epochs 4] \
        [--train-images N] [--test-images N] [--archs 50] [--out DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def lightnas(*args: str) -> list[str]:
    return [sys.executable, "-m", "lightnas.cli", *args]


def timed(cmd: list[str]) -> float:
    """Wall seconds of ``cmd`` run from the repository root; exits on failure."""
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        sys.exit(f"{' '.join(cmd[2:])} failed: {res.stderr.strip()}")
    return time.perf_counter() - t0


def data_spec(out: Path, train_images: int, test_images: int) -> tuple[str, str]:
    """The ``--data`` to use and a description of it."""
    from lightnas.data import load_dataset

    d = load_dataset("fashion-mnist", 0)
    if not train_images and not test_images:
        sizes = f"{len(d.x_train):,} train, {len(d.x_val):,} validation, {len(d.x_test):,} test"
        return "fashion-mnist", f"embedded Fashion-MNIST ({sizes})"
    n, m = train_images or len(d.x_train), test_images or len(d.x_test)
    path = out / f"fashion-mnist-{n}-{m}.npz"
    np.savez(
        path, x=d.x_train[:n], y=d.y_train[:n], x_val=d.x_val, y_val=d.y_val, x_test=d.x_test[:m], y_test=d.y_test[:m]
    )
    return str(path), f"embedded Fashion-MNIST cut to {n} train, {len(d.x_val)} validation, {m} test images"


def test_accuracy(model: torch.nn.Module, data: Any) -> float:
    from lightnas.tensors import predict, to_tensor

    logits = predict(model.eval(), to_tensor(data.x_test, data))
    return 100.0 * float((logits.argmax(1).numpy() == data.y_test).mean())


def train_original(name: str, data: Any, epochs: int, path: Path) -> dict[str, float]:
    """Train the user's model alone and save its state dict to ``path``."""
    from examples import user_models
    from lightnas.config import TrainConfig
    from lightnas.train.plain import train_alone

    model = getattr(user_models, name)()
    t0 = time.perf_counter()
    train_alone(model, data, TrainConfig(epochs=epochs), seed=0)
    seconds = time.perf_counter() - t0
    torch.save(model.state_dict(), path)
    return {"train_seconds": round(seconds, 1), "test_accuracy": test_accuracy(model, data)}


def equality(net: Any, archs: int) -> dict[str, float]:
    """Max abs logit difference of random sub-networks: extracted vs in place, ONNX Runtime vs PyTorch."""
    from lightnas.hardware.onnx_graph import onnx_session, to_onnx_bytes

    rng = np.random.default_rng(0)
    shape = tuple(net.config.input_shape)
    x = torch.randn(4, *shape)
    extract, onnx = [], []
    with torch.no_grad():
        for arch in [net.space.sample(rng) for _ in range(archs)]:
            net.set_active(arch)
            plain = net.extract(arch).eval()
            ref = plain(x)
            extract.append(float((net(x) - ref).abs().max()))
            out = onnx_session(to_onnx_bytes(plain, shape), 1).run(None, {"input": x.numpy()})[0]
            onnx.append(float(np.abs(out - ref.numpy()).max()))
    return {"archs": archs, "extract_max_abs_diff": max(extract), "onnx_max_abs_diff": max(onnx)}


def latencies(models: list[torch.nn.Module], shape: tuple[int, ...], rounds: int = 3) -> list[float]:
    """ONNX Runtime ms of each model (one thread), the median of ``rounds``
    passes over all of them in turn, so that a slow spell hits every model."""
    from lightnas.hardware.latency import measure_latency

    runs = [[measure_latency(m, shape)["latency_ms"] for m in models] for _ in range(rounds)]
    return [float(v) for v in np.median(np.array(runs), axis=0)]


def family(name: str, run: Path, weights: Path, data: Any, original: dict[str, float], archs: int) -> dict[str, Any]:
    """The figures of one elasticized model's run folder."""
    from examples import user_models
    from lightnas.export import load_exported
    from lightnas.tensors import CALIB_IMAGES, to_tensor
    from lightnas.train.checkpoint import load_supernet

    net, _ = load_supernet(run / "supernet.pt")
    net.eval()
    largest = net.space.largest()
    net.set_active(largest)
    net.calibrate(to_tensor(data.x_train[:CALIB_IMAGES], data))
    largest_acc = test_accuracy(net, data)
    ids = json.loads((run / "models" / "index.json").read_text())["models"]
    cards = [json.loads((run / "models" / i / "card.json").read_text()) for i in ids]
    model = getattr(user_models, name)()
    model.load_state_dict(torch.load(weights, weights_only=True))
    shape = tuple(net.config.input_shape)
    ms = latencies([model.eval(), *(load_exported(run / "models" / i) for i in ids)], shape)
    base_ms, exported = ms[0], sorted(zip(ms[1:], (c["test_accuracy"] for c in cards), strict=True))
    half = [acc for lat, acc in exported if lat <= base_ms / 2]
    return {
        "original_test_accuracy": original["test_accuracy"],
        "original_train_seconds": original["train_seconds"],
        "original_latency_ms": round(base_ms, 4),
        "largest_test_accuracy": largest_acc,
        "largest_gap_points": round(original["test_accuracy"] - largest_acc, 2),
        "exported": len(exported),
        "latency_ms": [round(lat, 4) for lat, _ in exported],
        "test_accuracy": [round(acc, 2) for _, acc in exported],
        "latency_span": round(exported[-1][0] / exported[0][0], 2) if exported else 0.0,
        "best_at_half_latency": max(half) if half else None,
        "kept_at_half_latency": round(100.0 * max(half) / original["test_accuracy"], 1) if half else None,
        **equality(net, archs),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v2", help="factories of examples/user_models.py")
    ap.add_argument("--epochs", type=int, default=8, help="training of the original and of the reference")
    ap.add_argument("--finetune-epochs", type=int, default=4)
    ap.add_argument("--train-images", type=int, default=0, help="cut the training split (0: all)")
    ap.add_argument("--test-images", type=int, default=0, help="cut the test split (0: all)")
    ap.add_argument("--archs", type=int, default=50, help="random sub-networks checked equal")
    ap.add_argument("--out", default="/tmp/lightnas-bench-elasticize")
    ap.add_argument("--json", default="", help="write the figures there after each model")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from lightnas.data import load_dataset
    from lightnas.tensors import setup_torch

    threads = setup_torch()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec, described = data_spec(out, args.train_images, args.test_images)
    data = load_dataset(spec, 0)
    epochs = ["--epochs", str(args.epochs)]
    reference = timed(lightnas("train", str(out / "reference"), "--data", spec, *epochs, "--force", "--quiet"))
    result: dict[str, Any] = {
        "data": described,
        "threads": threads,
        "epochs": args.epochs,
        "finetune_epochs": args.finetune_epochs,
        "reference_train_seconds": round(reference, 1),
        "models": {},
    }
    print(f"{described}; {threads} thread(s); the default super-network trains in {reference:.0f} s")
    for name in args.models.split(","):
        weights = out / f"{name}.pt"
        original = train_original(name, data, args.epochs, weights)
        run = out / name
        job = ["run", "--from-model", f"examples.user_models:{name}", "--weights", str(weights), "--data", spec]
        seconds = timed(lightnas(*job, "--epochs", str(args.finetune_epochs), "--out", str(run), "--force", "--quiet"))
        r = {"model_to_family_seconds": round(seconds, 1), "time_ratio": round(seconds / reference, 2)}
        r.update(family(name, run, weights, data, original, args.archs))
        result["models"][name] = r
        print(name, json.dumps(r))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
