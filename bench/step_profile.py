"""Where a super-network's training time goes: seconds per section of an epoch and of a step.

Trains the run's super-network (as ``lightnas run`` would build it for the
data: its default config and training settings, the recipe ``auto`` picks)
for ``--epochs`` epochs with the trainer's sections timed
(:class:`lightnas.train.device.Sections`: the device synchronised at each
section's ends) and prints, per epoch and per step, the seconds spent in

- ``data``: drawing the step's students, reading and augmenting the batch;
- ``teacher``: the largest sub-network's forward, loss and backward (the
  depthwise kernels' transformations from the largest kernels included:
  they are part of every forward);
- ``students``: the students' forwards and backwards with the distillation loss;
- ``projection``: the students' gradient projected off the teacher's;
- ``optimiser``: gradient clipping and the optimiser's step;
- ``average``: the moving average of the weights;
- ``calibration`` and ``validation``: BatchNorm calibration and the validation
  split, for the largest and the smallest sub-network after every epoch;
- ``checkpoint``: writing the checkpoint after every epoch;

and, beside them, one training step of the largest sub-network's plain
module alone (extracted, a training batch, in the same process, timed as the
run times its models one by one: ``standalone_train_seconds``): the floor
the teacher's share cannot go under.

    python bench/step_profile.py                                   # the default run's data
    python bench/step_profile.py --data FOLDER --image-size 64 --json out.json
    python bench/step_profile.py --data FOLDER --image-size 96 --device cuda   # is the GPU starved of data?

``--compare spread_power=0.5,n_random=1`` instead times whole
training steps (the teacher and the students, one batch) of the ``spread``
recipe as named and with each ``TrainConfig`` field
changed as given (one change per item), interleaved in rounds in one
process, and prints each one's milliseconds per step and its ratio to
``spread``'s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="fashion-mnist", help="data source as for 'lightnas run --data'")
    ap.add_argument("--image-size", type=int, default=0)
    ap.add_argument("--supernet", default="mobilenet")
    ap.add_argument("--epochs", type=int, default=1, help="epochs timed (the recipe is chosen for the run's length)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto, as for 'lightnas run --device'")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="", help="write the figures there too")
    ap.add_argument("--compare", default="", help="time steps with these TrainConfig changes instead (a=1,b=2)")
    args = ap.parse_args()

    import dataclasses

    from lightnas.artefacts import TrainJob
    from lightnas.config import RunConfig
    from lightnas.context import load_data, supernet_config
    from lightnas.runfolder import with_supernet_defaults
    from lightnas.tensors import setup_torch
    from lightnas.train.plain import standalone_train_seconds
    from lightnas.train.trainer import SupernetTrainer

    setup_torch(args.threads)
    explicit = {"data.source": args.data, "supernet.name": args.supernet, "seed": args.seed}
    if args.image_size:
        explicit["data.image_size"] = args.image_size
    cfg = RunConfig().replace(with_supernet_defaults(explicit))
    data = load_data(cfg)
    job = TrainJob(
        cfg.supernet.name, supernet_config(cfg, data), cfg.train, cfg.seed, threads=args.threads, device=args.device
    )
    if args.compare:
        job = dataclasses.replace(job, train=dataclasses.replace(job.train, recipe="spread"))
        return compare_settings(SupernetTrainer(job, data), ["", *args.compare.split(",")], args.json)
    trainer = SupernetTrainer(job, data)
    run_epochs = trainer.cfg.epochs  # the run's length decides the recipe; the bench times the first epochs
    trainer.cfg = dataclasses.replace(trainer.cfg, epochs=min(args.epochs, run_epochs))
    trainer.sections.on = True
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        trainer.run(Path(tmp) / "supernet.pt", resume=False, progress=False)
    wall = time.perf_counter() - t0
    epochs, steps = trainer.cfg.epochs, trainer.cfg.epochs * trainer.steps_per_epoch
    seconds = dict(trainer.sections.seconds)

    # the largest sub-network's plain module alone: the run's one-by-one timing of a model, per step
    net = trainer.net
    plain_ms = (
        1e3
        * standalone_train_seconds(
            net, net.space.largest(), data, trainer.cfg, 5, args.threads, device=str(trainer.device)
        )
        / steps
    )
    per_step = {k: 1e3 * v / steps for k, v in seconds.items() if k not in ("calibration", "validation", "checkpoint")}
    result = {
        "data": data.name,
        "input_shape": list(data.input_shape),
        "supernet": args.supernet,
        "recipe": trainer.chosen or trainer.cfg.recipe,
        "threads": args.threads,
        "device": str(trainer.device),
        "epochs_timed": epochs,
        "steps_timed": steps,
        "wall_seconds": round(wall, 2),
        "section_seconds": {k: round(v, 3) for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])},
        "untimed_seconds": round(wall - sum(seconds.values()), 3),
        "per_step_ms": {k: round(v, 2) for k, v in sorted(per_step.items(), key=lambda kv: -kv[1])},
        "largest_plain_step_ms": round(plain_ms, 2),
        "teacher_over_plain": round(per_step.get("teacher", 0.0) / plain_ms, 3),
    }
    print(f"{args.supernet} on {data.name} {tuple(data.input_shape)}, {result['recipe']}, {args.threads} threads:")
    print(f"{epochs} epoch(s), {steps} steps, {wall:.1f} s")
    for k, v in result["section_seconds"].items():
        print(f"  {k:<12} {v:8.2f} s  {100 * v / wall:5.1f}%")
    print(f"  {'(untimed)':<12} {result['untimed_seconds']:8.2f} s")
    print("per step: " + ", ".join(f"{k} {v:.1f} ms" for k, v in result["per_step_ms"].items()))
    print(f"the largest's plain step alone: {plain_ms:.1f} ms (teacher / plain {result['teacher_over_plain']:.2f}x)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


def compare_settings(trainer: Any, changes: list[str], out: str, rounds: int = 8, per_round: int = 5) -> int:
    """Milliseconds per training step with each of ``changes`` (``field=value``
    of ``TrainConfig``; "": the trainer's own settings, shown as ``spread``) made, interleaved."""
    import dataclasses

    import numpy as np
    from fidelity import field_value

    base = trainer.cfg
    setups = {}
    for change in changes:
        name, _, value = change.partition("=")
        trainer.cfg = dataclasses.replace(base, **{name: field_value(name, value)}) if name else base
        setups[change or "spread"] = (trainer.cfg, trainer._recipe())
    x = trainer.x_train[: base.batch_size].contiguous(memory_format=trainer.memory_format)
    y = trainer.y_train[: base.batch_size]
    rng = np.random.default_rng(0)
    seconds = dict.fromkeys(setups, 0.0)
    for _ in range(rounds):
        for name, (cfg, recipe) in setups.items():
            trainer.cfg, trainer.recipe = cfg, recipe
            students = [recipe.students(0, rng) for _ in range(per_round)]
            t0 = time.perf_counter()
            for s in students:
                trainer.step(x, y, s)
            seconds[name] += time.perf_counter() - t0
    ms = {k: 1e3 * v / (rounds * per_round) for k, v in seconds.items()}
    for k, v in ms.items():
        print(f"{k}: {v:.1f} ms a step ({v / ms['spread']:.2f}x)")
    if out:
        Path(out).write_text(json.dumps({"ms_per_step": {k: round(v, 1) for k, v in ms.items()}}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
