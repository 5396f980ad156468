"""Run folders under faults: kill -9 and a full disk at points spread over a run, two writers, a lost Ray node.

The job is ``lightnas run --data digits --epochs 2 --budget 12 --max-export
3 --latency lut``. A reference run of it, left alone, measures its latency
table once; every trial starts from a folder holding only the reference's
``config.json`` and ``lut.json`` and runs ``--resume`` (which trains,
searches and exports from scratch against that table), so that its search is
a deterministic function of the trained weights and can be compared with the
reference's exactly:

- **kill**: the job is killed with SIGKILL at ``--kills`` instants spread
  evenly over an uninterrupted trial's wall time (data loading, training epochs,
  between and inside evaluations, export of each model, report), then
  ``--resume`` is run until it exits 0 (``landed``: the job was still
  running when the signal came);
- **full disk**: the folder lies on a 96 MB tmpfs mounted for the trial
  (root only; skipped otherwise) that is filled at ``--full-disk`` such
  instants: the job must stop with one line on stderr (no traceback); the
  filler is removed and ``--resume`` finishes;
- **two writers**: a second job is started on the folder 1-8 s after the
  first: it must exit 2 with one line naming the first's process, and the
  first must finish as if alone;
- **ray** (when Ray is installed): ``--executor ray --workers 2``, the
  raylet killed with SIGKILL after the first evaluations: the driver must
  end within 120 s with one line, and ``--resume`` must finish the budget.

A trial passes when its folder *equals* the reference: the same
super-network weights (allclose), the same evaluated architectures with the
same metrics (measured times aside), the same exported models with the same
cards (measured latencies and times aside), and no evaluation stored before
the fault lost or changed (the store refuses a repeated one).

    python bench/faults.py --kills 30 --full-disk 10 --writers 20 --ray 10 --json bench/results/faults.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

JOB = ["--data", "digits", "--epochs", "2", "--budget", "12", "--max-export", "3", "--latency", "lut", "--quiet"]
MEASURED = {"latency", "latency_ms", "latency_iqr_ms", "exported", "seconds", "verification", "files", "onnx_bytes"}


def lightnas(*args: str) -> list[str]:
    return [sys.executable, "-m", "lightnas.cli", *args]


def seed(ref: Path, out: Path) -> Path:
    """``out`` holding the reference's configuration and latency table only:
    a run folder whose ``--resume`` trains, searches and exports from scratch
    against the same table, so that its search is the reference's."""
    out.mkdir(parents=True)
    for name in ("config.json", "lut.json"):
        shutil.copy(ref / name, out / name)
    return out


def start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        lightnas("run", "--out", str(out), "--resume", "--quiet", *extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def resume(out: Path, tries: int = 3) -> tuple[int, str]:
    """``--resume`` until it exits 0 (a resumed run that is itself killed is not part of this bench)."""
    rc, err = 1, ""
    for _ in range(tries):
        res = subprocess.run(lightnas("run", "--out", str(out), "--resume", "--quiet"), capture_output=True, text=True)
        rc, err = res.returncode, res.stderr
        if rc == 0:
            break
    return rc, err.strip().splitlines()[-1] if err.strip() else ""


def evaluations(out: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """arch key -> (status, metrics without measured times) of the folder's store."""
    db = out / "lightnas.db"
    if not db.exists():
        return {}
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        rows = con.execute("SELECT arch_key, status, metrics FROM evaluations").fetchall()
        con.close()
    except sqlite3.Error:
        return {}
    return {k: (s, {m: v for m, v in json.loads(js).items() if m not in MEASURED}) for k, s, js in rows}


def cards(out: Path) -> dict[str, dict[str, Any]]:
    index = out / "models" / "index.json"
    if not index.exists():
        return {}
    ids = json.loads(index.read_text())["models"]
    loaded = {i: json.loads((out / "models" / i / "card.json").read_text()) for i in ids}
    return {i: {k: v for k, v in c.items() if k not in MEASURED} for i, c in loaded.items()}


def same_weights(a: Path, b: Path) -> bool:
    import torch

    sa = torch.load(a / "supernet.pt", weights_only=True)["state_dict"]
    sb = torch.load(b / "supernet.pt", weights_only=True)["state_dict"]
    return sa.keys() == sb.keys() and all(torch.allclose(sa[k], sb[k], rtol=1e-4, atol=1e-5) for k in sa)


def judge(ref: Path, out: Path, before: dict[str, tuple[str, dict]]) -> dict[str, Any]:
    """``equal`` or what differs, with the evaluations lost or changed and the number evaluated."""
    now, want = evaluations(out), evaluations(ref)
    lost = sum(1 for k, v in before.items() if now.get(k) != v)
    ok = [k for k, (s, _) in now.items() if s == "ok"]
    verdict = {"lost_or_changed": lost, "evaluated": len(ok)}
    if not (out / "supernet.pt").exists() or not same_weights(ref, out):
        return {**verdict, "verdict": "weights differ"}
    if lost or len(ok) != sum(1 for s, _ in want.values() if s == "ok"):
        return {**verdict, "verdict": "evaluations lost or budget not held"}
    if now == want and cards(out) == cards(ref):
        return {**verdict, "verdict": "equal"}
    return {**verdict, "verdict": "differs from the reference"}


def one_line(err: str) -> bool:
    """One ``lightnas: error:`` sentence: no traceback, and not the internal-error
    line (an exception lightnas did not turn into words names its class)."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    return len(lines) == 1 and "Traceback" not in err and "internal error" not in err


def kill_trial(ref: Path, out: Path, at: float) -> dict[str, Any]:
    proc = start(seed(ref, out))
    time.sleep(at)
    landed = proc.poll() is None  # the job was still running when it was killed
    kill(proc)
    before = evaluations(out)
    rc, last = resume(out)
    result = {"at_s": round(at, 1), "landed": landed, "resume_rc": rc, **({"error": last} if rc else {})}
    return {**result, **judge(ref, out, before)}


def full_disk_trial(ref: Path, root: Path, at: float) -> dict[str, Any]:
    mnt = root / "tmpfs"
    mnt.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(mnt)], check=True)
    try:
        out, filler = seed(ref, mnt / "run"), mnt / "filler"
        proc = start(out)
        time.sleep(at)
        landed = proc.poll() is None
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M"], capture_output=True)  # until the disk is full
        try:
            _, err = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            kill(proc)
            err = "did not stop"
        stopped = {"landed": landed, "rc": proc.returncode, "one_line": proc.returncode == 0 or one_line(err)}
        if proc.returncode:
            stopped["error"] = err.strip().splitlines()[-1][:200] if err.strip() else ""
        filler.unlink(missing_ok=True)
        before = evaluations(out)
        rc, last = resume(out)
        result = {"at_s": round(at, 1), **stopped, "resume_rc": rc, **judge(ref, out, before)}
        if rc:
            result["resume_error"] = last
        return result
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def writers_trial(ref: Path, out: Path, delay: float) -> dict[str, Any]:
    first = start(seed(ref, out))
    time.sleep(delay)
    second = subprocess.run(lightnas("run", "--out", str(out), "--resume", "--quiet"), capture_output=True, text=True)
    _, err = first.communicate()
    refused = second.returncode == 2 and one_line(second.stderr) and "is being written by process" in second.stderr
    return {
        "delay_s": round(delay, 1),
        "second_refused_in_one_line": refused,
        "first_rc": first.returncode,
        **judge(ref, out, {}),
    }


def ray_trial(ref: Path, out: Path) -> dict[str, Any]:
    proc = start(seed(ref, out), "--executor", "ray", "--workers", "2")
    while proc.poll() is None and sum(1 for s, _ in evaluations(out).values() if s == "ok") < 2:
        time.sleep(0.5)
    killed_at = time.perf_counter()
    subprocess.run(["pkill", "-9", "-f", "raylet"], check=False)
    try:
        _, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        kill(proc)
        err = ""
    ended_s = time.perf_counter() - killed_at
    subprocess.run(["ray", "stop", "--force"], capture_output=True, check=False)
    before = evaluations(out)
    rc, last = resume(out)
    return {
        "driver_ended_s": round(ended_s, 1),
        "driver_rc": proc.returncode,
        "one_line": proc.returncode == 0 or one_line(err),
        "resume_rc": rc,
        **judge(ref, out, before),
    }


def summary(trials: list[dict[str, Any]], good: Any) -> dict[str, Any]:
    return {"passed": sum(1 for t in trials if good(t)), "of": len(trials), "trials": trials}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--full-disk", type=int, default=10)
    ap.add_argument("--writers", type=int, default=20)
    ap.add_argument("--ray", type=int, default=10)
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    def save() -> None:
        """Write what is measured so far, so that a long bench that dies keeps its finished sections."""
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2) + "\n")

    resumed = lambda t: t["resume_rc"] == 0 and t["verdict"] == "equal"  # noqa: E731
    out: dict[str, Any] = {"job": " ".join(JOB)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ref = root / "ref"
        t0 = time.perf_counter()
        res = subprocess.run(lightnas("run", "--out", str(ref), *JOB), capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if res.returncode:
            print(f"reference run failed: {res.stderr.strip()[-300:]}", file=sys.stderr)
            return 1
        out["reference_wall_s"] = round(wall, 1)
        t0 = time.perf_counter()  # a trial's own length: it reuses the reference's latency table
        subprocess.run(lightnas("run", "--out", str(seed(ref, root / "timed")), "--resume", "--quiet"), check=True)
        wall = out["trial_wall_s"] = round(time.perf_counter() - t0, 1)
        at = [wall * (i + 0.5) / max(args.kills, 1) for i in range(args.kills)]
        out["kill"] = summary([kill_trial(ref, root / f"kill{i}", t) for i, t in enumerate(at)], resumed)
        landed = sum(t["landed"] for t in out["kill"]["trials"])
        print(f"kill -9: {out['kill']['passed']}/{out['kill']['of']} ({landed} while running)", file=sys.stderr)
        save()
        if args.full_disk and os.geteuid() == 0 and shutil.which("mount"):
            at = [wall * (i + 0.5) / args.full_disk for i in range(args.full_disk)]
            trials = [full_disk_trial(ref, root, t) for t in at]
            out["full_disk"] = summary(trials, lambda t: t["one_line"] and resumed(t))
            print(f"full disk: {out['full_disk']['passed']}/{out['full_disk']['of']}", file=sys.stderr)
            save()
        delays = [1 + 7 * i / max(args.writers - 1, 1) for i in range(args.writers)]
        trials = [writers_trial(ref, root / f"two{i}", d) for i, d in enumerate(delays)]
        out["two_writers"] = summary(
            trials, lambda t: t["second_refused_in_one_line"] and t["first_rc"] == 0 and t["verdict"] == "equal"
        )
        print(f"two writers: {out['two_writers']['passed']}/{out['two_writers']['of']}", file=sys.stderr)
        save()
        try:
            import ray  # noqa: F401
        except ImportError:
            args.ray = 0
        if args.ray:
            trials = [ray_trial(ref, root / f"ray{i}") for i in range(args.ray)]
            out["ray"] = summary(trials, lambda t: t["driver_ended_s"] <= 120 and t["one_line"] and resumed(t))
            print(f"ray node lost: {out['ray']['passed']}/{out['ray']['of']}", file=sys.stderr)
            save()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
