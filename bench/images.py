"""Real RGB images: a `lightnas run` on a folder of emoji of mixed sizes against a plain CNN trained alone.

The images are the Noto (Google, Apache-2.0) and Twemoji (Twitter, CC-BY 4.0)
renderings that the npm packages ``emoji-datasource-google`` and
``emoji-datasource-twitter`` 16.0.0 ship (fetched with ``npm pack`` from the
registry into ``--cache``; nothing of them is committed), labelled by their
Unicode category (9 classes: smileys, people, animals, food, travel,
activities, objects, symbols, flags). Each emoji with its skin-tone variants
and both renderings goes wholly to ``test/`` (a fifth, by a hash of its code
point), ``val/`` (a tenth of the rest) or ``train/``, so no test or
validation image has a twin in training: a validation split drawn from the
training images at random would hold the other rendering or skin tone of a
training image, and measure memory instead of generalisation. Half the
renderings are the 64-px PNG files, half the 32-px cells of the packages'
sprite sheets: a folder of mixed sizes, RGBA laid on white.

It then runs ``lightnas run --data FOLDER --image-size 64`` with the given
options (the run's default training length unless ``--epochs E``), and
trains a plain CNN (four 3x3 conv-BN-ReLU stages of 32-256 channels, global
pooling, a linear classifier) alone on the same training split for the
epochs the run trained, with the same augmentation and optimiser, from
``--cnn-seeds`` seeds (its test accuracy is their mean, each beside it: on
1,546 test images one CNN's accuracy moves by points from seed to seed), and prints
the run's wall time, its exported family (test accuracy, ONNX Runtime
latency) and the plain CNN's test accuracy.

    python bench/images.py --json bench/results/images-emoji.json

With ``--tight F`` the run is given ``--max-latency-ms`` at F times the
latency of the cheapest sub-network at the full resolution (measured here
first, ONNX Runtime, one thread): every model it exports must have been
found at a lower resolution, and each one's input side is printed.

    python bench/images.py --epochs 2 --tight 0.8 --json bench/results/images-emoji-tight.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

SETS = {"google": "emoji-datasource-google", "twitter": "emoji-datasource-twitter"}
VERSION = "16.0.0"
SHEET = 32  # sprite-sheet cell size used for half the images (cells are 34 px with padding)


def fetch(cache: Path) -> dict[str, Path]:
    """The two packages' tarballs in ``cache`` (``npm pack`` on the first call)."""
    cache.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, pkg in SETS.items():
        tgz = cache / f"{pkg}-{VERSION}.tgz"
        if not tgz.exists():
            subprocess.run(["npm", "pack", f"{pkg}@{VERSION}", "--silent"], cwd=cache, check=True)
        out[name] = tgz
    return out


def build_folder(tarballs: dict[str, Path], root: Path) -> dict[str, int]:
    """Write ``root/{train,val,test}/<category>/*.png``; returns the counts per split."""
    from PIL import Image

    counts = {"train": 0, "val": 0, "test": 0}
    for name, tgz in tarballs.items():
        with tarfile.open(tgz) as tar:
            meta = json.load(tar.extractfile("package/emoji.json"))  # type: ignore[arg-type]
            sheet = Image.open(tar.extractfile(f"package/img/{name}/sheets/{SHEET}.png")).convert("RGBA")
            sheet.load()
            for e in meta:
                if e["category"] == "Component":
                    continue
                digest = hashlib.sha1(e["unified"].encode()).digest()
                split = "test" if digest[0] % 5 == 0 else "val" if digest[1] % 10 == 0 else "train"
                cls = e["category"].replace(" & ", "-").replace(" ", "-").lower()
                for v in [e, *e.get("skin_variations", {}).values()]:
                    if not v.get(f"has_img_{name}"):
                        continue
                    dest = root / split / cls / f"{name}-{v['unified'].lower()}.png"
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    if hashlib.sha1((name + v["unified"]).encode()).digest()[0] % 2:
                        member = tar.extractfile(f"package/img/{name}/64/{v['image']}")
                        if member is None:
                            continue
                        dest.write_bytes(member.read())
                    else:
                        x, y = v["sheet_x"] * (SHEET + 2) + 1, v["sheet_y"] * (SHEET + 2) + 1
                        sheet.crop((x, y, x + SHEET, y + SHEET)).save(dest)
                    counts[split] += 1
    return counts


class PlainCNN:
    """Built lazily so the module imports without torch."""

    @staticmethod
    def make(c_in: int, n_classes: int):  # noqa: ANN205
        from torch import nn

        layers, c = [], c_in
        for width in (32, 64, 128, 256):
            layers += [nn.Conv2d(c, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            c = width
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, n_classes))


def plain_baseline(folder: Path, size: int, epochs: int, seed: int) -> dict[str, float]:
    """The plain CNN trained alone (the run's training recipe's optimiser,
    learning rate, batch, warm-up, weight decay, augmentation), scored on the test split."""
    import torch

    from lightnas.config import TrainConfig
    from lightnas.data import load_dataset
    from lightnas.tensors import accuracy, split_tensors
    from lightnas.train.plain import train_alone

    data = load_dataset(str(folder), seed, size)
    model = PlainCNN.make(data.input_shape[0], data.n_classes)
    t0 = time.perf_counter()
    history = train_alone(model, data, TrainConfig(epochs=epochs), seed, threads=None)
    seconds = time.perf_counter() - t0
    x, y = split_tensors(data, "test")
    model = model.eval().to(memory_format=torch.channels_last)
    return {
        "majority_class_test_share": round(100.0 * float(torch.bincount(y).max()) / max(len(y), 1), 2),
        "test_accuracy": accuracy(model, x, y),
        "val_accuracy": max(h["val_metric"] for h in history),
        "params": sum(p.numel() for p in model.parameters()),
        "seconds": round(seconds, 1),
    }


def full_resolution_smallest_ms(folder: Path, size: int) -> float:
    """ONNX Runtime latency (ms, one thread, batch 1) of the cheapest
    sub-network at the full input resolution, from an untrained super-network
    (latency does not depend on the weights)."""
    import torch

    from lightnas.hardware.latency import measure_latency
    from lightnas.supernets import create_supernet

    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    n_classes = sum(1 for d in (folder / "train").iterdir() if d.is_dir())
    net = create_supernet("mobilenet", input_shape=(3, size, size), n_classes=n_classes)
    arch = dict(net.space.smallest())
    if "r" in arch:
        arch["r"] = max(next(d.values for d in net.space.dims if d.name == "r"))
    arch = net.space.make(arch)
    lat = measure_latency(net.extract(arch).eval(), net.input_shape_for(arch), "onnxruntime", 1, 1)
    return float(lat["latency_ms"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/lightnas-images", help="folder for the images and the run")
    ap.add_argument("--cache", default="", help="where the npm tarballs are kept (default: WORK/npm)")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=0, help="0: the run's default length")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cnn-seeds", type=int, default=4, help="plain CNN trainings (seeds SEED, SEED+1, ...), averaged")
    ap.add_argument("--run-option", action="append", default=[], help="extra 'lightnas run' option (repeatable)")
    ap.add_argument("--tight", type=float, default=0.0, help="bound: share of the full size's cheapest")
    ap.add_argument("--json", default="", help="write the figures there too")
    args = ap.parse_args()
    work = Path(args.work)
    folder, run = work / "emoji", work / "run"
    if not (folder / "val").is_dir():  # absent, or written without a validation split: (re)built
        shutil.rmtree(folder, ignore_errors=True)
        counts = build_folder(fetch(Path(args.cache) if args.cache else work / "npm"), folder)
        print(f"folder: {folder} ({', '.join(f'{n} {k}' for k, n in counts.items())} images)", file=sys.stderr)
    cmd = [sys.executable, "-m", "lightnas.cli", "run", "--data", str(folder), "--image-size", str(args.image_size)]
    cmd += ["--epochs", str(args.epochs)] if args.epochs else []
    cmd += ["--seed", str(args.seed), "--out", str(run), "--force", "--quiet"]
    cmd += [o for opt in args.run_option for o in opt.split()]
    tight = {}
    if args.tight:
        full_ms = full_resolution_smallest_ms(folder, args.image_size)
        tight = {"full_resolution_smallest_ms": round(full_ms, 4), "max_latency_ms": round(args.tight * full_ms, 4)}
        cmd += ["--max-latency-ms", str(tight["max_latency_ms"])]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    summary = json.loads((run / "summary.json").read_text())
    ids = json.loads((run / "models" / "index.json").read_text())["models"]
    cards = [json.loads((run / "models" / i / "card.json").read_text()) for i in ids]
    family = sorted(
        (
            {
                "id": c["id"],
                "test_accuracy": c["test_accuracy"],
                "latency_ms": c["latency"]["latency_ms"],
                "macs": c["macs"],
                "input_side": next(
                    (st["height"] for st in c["preprocessing"]["steps"] if st["op"] == "resize_input"), args.image_size
                ),
            }
            for c in cards
        ),
        key=lambda m: m["latency_ms"],
    )
    lat = [m["latency_ms"] for m in family]
    from lightnas.train.checkpoint import read_checkpoint

    epochs = read_checkpoint(run / "supernet.pt").epoch
    plain: dict[str, object] = {}
    if not tight:  # a plain CNN's test accuracy moves by points from seed to seed on 1,546 images: the mean of several
        runs = [
            plain_baseline(folder, args.image_size, epochs, s) for s in range(args.seed, args.seed + args.cnn_seeds)
        ]
        accs = [float(r["test_accuracy"]) for r in runs]
        plain = {**runs[0], "test_accuracy": sum(accs) / len(accs), "seeds": len(accs), "test_accuracy_by_seed": accs}
    out = {
        "command": " ".join(cmd[2:]),
        "epochs": epochs,
        "wall_seconds": round(wall, 1),
        "stage_seconds": {k: v for k, v in summary.items() if k.endswith("_seconds")},
        "models": len(family),
        "latency_span": round(max(lat) / min(lat), 2) if lat else 0.0,
        "best_test_accuracy": max((m["test_accuracy"] for m in family), default=0.0),
        "family": family,
        **({"tight": tight} if tight else {"plain_cnn": plain}),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
