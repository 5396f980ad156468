"""Hostile inputs and faults, and the promise each must keep.

A :class:`Case` prepares a sandbox folder (bad data, a tampered copy of a
finished run, a malformed option) and names the command to run there.
:func:`check` runs it and holds it to the promise of the README:

- an error is one line on stderr (``lightnas: error: ...``), exit status 2,
  names the problem (never "internal error"), and comes within
  :data:`MAX_ERROR_SECONDS` of the start when it does not depend on training;
- a failed command changes nothing on disk: every file in the sandbox (the run
  folder included) keeps its bytes, and no file appears;
- a command that succeeds touches nothing outside its run folder.

``bench/hostile.py`` runs every case of :func:`battery` in fresh processes;
the tests run :func:`malformed_files`, seeded random corruptions of every file
a user hands in or a run folder holds.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import sqlite3
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_ERROR_SECONDS = 10.0
FAST = ["--epochs", "1", "--budget", "2", "--max-export", "2", "--quiet"]
"""Options that keep a case that unexpectedly succeeds short."""

Invoke = Callable[[list[str], Path], tuple[int, str]]
"""Runs ``lightnas`` with these arguments in this folder; returns (exit status, stderr)."""


@dataclass(frozen=True)
class Case:
    """One hostile input. ``make(sandbox)`` prepares the sandbox (a copy of a
    finished run is at ``sandbox / "run"`` when ``needs_run``) and returns the
    command's arguments. ``expect`` is ``"error"`` (with ``needle`` in the
    message) or ``"ok"``."""

    name: str
    make: Callable[[Path], list[str]]
    expect: str = "error"
    needle: str = ""
    needs_run: bool = False


@dataclass(frozen=True)
class Outcome:
    case: str
    passed: bool
    why: str
    seconds: float
    message: str


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> sha1 of every file under ``folder`` (folders as ``dir``)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = "dir" if p.is_dir() else hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def check(case: Case, sandbox: Path, invoke: Invoke, finished_run: Path | None = None) -> Outcome:
    """Prepare ``case`` in the empty folder ``sandbox``, run it and judge it."""
    if case.needs_run:
        if finished_run is None:
            raise ValueError(f"{case.name} needs a finished run")
        shutil.copytree(finished_run, sandbox / "run")
    args = case.make(sandbox)
    before = snapshot(sandbox)
    t0 = time.perf_counter()
    rc, err = invoke(args, sandbox)
    seconds = time.perf_counter() - t0
    after = snapshot(sandbox)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    message = lines[-1] if lines else ""

    def outcome(passed: bool, why: str) -> Outcome:
        return Outcome(case.name, passed, why, round(seconds, 2), message)

    if case.expect == "ok" or (case.expect == "any" and rc == 0):
        if rc != 0:
            return outcome(False, f"exit {rc}, expected success")
        outside = {k for k in set(before) | set(after) if before.get(k) != after.get(k) and not _in_run(k, args)}
        return outcome(not outside, f"touched outside the run folder: {sorted(outside)[:3]}" if outside else "ok")
    if rc != 2:
        return outcome(False, f"exit {rc}, expected 2")
    if len(lines) != 1 or not message.startswith("lightnas: error:"):
        return outcome(False, f"{len(lines)} stderr lines, expected one 'lightnas: error:' line")
    if "internal error" in message:
        return outcome(False, "an internal error, not a named problem")
    if case.needle and case.needle not in message:
        return outcome(False, f"message lacks {case.needle!r}")
    if before != after:
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        return outcome(False, f"files changed by a failed command: {changed[:3]}")
    if seconds > MAX_ERROR_SECONDS:
        return outcome(False, f"error after {seconds:.1f} s")
    return outcome(True, "ok")


def _in_run(rel: str, args: list[str]) -> bool:
    folders = {a for a in args if not a.startswith("-")} | {"run", "out"}
    return rel.split("/")[0] in folders


# -- makers ------------------------------------------------------------------------------
def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def good_arrays(n: int = 40, shape: tuple[int, ...] = (8, 8), classes: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.integers(0, 256, (n, *shape), dtype=np.uint8), "y": np.arange(n) % classes}


def write_idx(folder: Path, n: int = 40, compress: bool = False) -> Path:
    """A small valid IDX folder (train and t10k images and labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        x = rng.integers(0, 256, (n, 8, 8), dtype=np.uint8)
        y = (np.arange(n) % 4).astype(np.uint8)
        files = {
            f"{prefix}-images-idx3-ubyte": struct.pack(">IIII", 0x803, n, 8, 8) + x.tobytes(),
            f"{prefix}-labels-idx1-ubyte": struct.pack(">II", 0x801, n) + y.tobytes(),
        }
        for name, raw in files.items():
            if compress:
                (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
    return folder


def write_images(folder: Path, classes: int = 2, per_class: int = 6, size: int = 8, mode: str = "L") -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        d = folder / f"class{c}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = (size, size) if mode == "L" else (size, size, 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(d / f"{i}.png")
    return folder


def _run(data: str | Path, *extra: str) -> list[str]:
    return ["run", "--data", str(data), "--out", "out", *FAST, *extra]


def _data_case(name: str, build: Callable[[Path], Path | str], needle: str = "", expect: str = "error") -> Case:
    return Case(name, lambda s: _run(build(s)), expect, needle)


def _option_case(name: str, options: list[str], needle: str = "", data: str = "digits") -> Case:
    return Case(name, lambda s: ["run", "--data", data, "--out", "out", *options], "error", needle)


def _run_case(name: str, tamper: Callable[[Path], None], command: list[str], needle: str = "") -> Case:
    def make(s: Path) -> list[str]:
        first = _first_model(s / "run") if "FIRST" in command else ""
        tamper(s / "run")
        return [{"RUN": "run", "FIRST": first}.get(c, c) for c in command]

    return Case(name, make, "error", needle, needs_run=True)


def _bytes(name: str, raw: bytes) -> Callable[[Path], Path]:
    def build(s: Path) -> Path:
        (s / name).write_bytes(raw)
        return s / name

    return build


def _npz(name: str, **arrays: np.ndarray) -> Callable[[Path], Path]:
    return lambda s: write_npz(s / name, **arrays)


def _data_cases() -> Iterator[Case]:
    g = good_arrays()
    x, y = g["x"], g["y"]
    yield _data_case("zero-byte npz", _bytes("d.npz", b""), "cannot read")
    yield _data_case("npy renamed npz", lambda s: _npy_as_npz(s), "cannot read")
    yield _data_case("random bytes npz", _bytes("d.npz", bytes(range(256)) * 8), "cannot read")
    yield _data_case("truncated npz", lambda s: _truncated(write_npz(s / "d.npz", **g), 0.5), "")
    yield _data_case("dev null", lambda s: "/dev/null", "")
    yield _data_case("missing path", lambda s: s / "nothere.npz", "does not exist")
    yield _data_case("text file", _bytes("d.txt", b"hello"), ".npz")
    yield _data_case("unknown name", lambda s: "imagenet", "unknown dataset")
    yield _data_case("npz without y", _npz("d.npz", x=x), "'x' and 'y'")
    yield _data_case("npz without x", _npz("d.npz", y=y), "'x' and 'y'")
    yield _data_case("labels shorter", _npz("d.npz", x=x, y=y[:-3]), "")
    yield _data_case("1-d images", _npz("d.npz", x=x.reshape(-1), y=y), "")
    yield _data_case("5-d images", _npz("d.npz", x=x[:, None, None, :, :], y=y), "")
    yield _data_case("negative label", _npz("d.npz", x=x, y=np.where(y == 0, -1, y)), "")
    yield _data_case("label 10^9", _npz("d.npz", x=x, y=np.where(y == 0, 10**9, y)), "")
    yield _data_case("float labels", _npz("d.npz", x=x, y=y + 0.5), "")
    yield _data_case("string labels", _npz("d.npz", x=x, y=np.array([str(v) for v in y])), "")
    yield _data_case("object array", _bytes("d.npz", _pickled_npz()), "")
    yield _data_case("nan images", _npz("d.npz", x=np.full(x.shape, np.nan), y=y), "")
    yield _data_case("one class", _npz("d.npz", x=x, y=np.zeros_like(y)), "")
    yield _data_case("two images", _npz("d.npz", x=x[:2], y=y[:2]), "")
    yield _data_case("empty arrays", _npz("d.npz", x=x[:0], y=y[:0]), "")
    yield _data_case("1x1 images", _npz("d.npz", x=x[:, :1, :1], y=y), "")
    yield _data_case("huge image side", _npz("d.npz", x=np.zeros((4, 1, 1, 70000), np.uint8), y=y[:4]), "")
    yield _data_case("x_val without y_val", _npz("d.npz", x=x, y=y, x_val=x), "come together")
    yield _data_case("val of other size", _npz("d.npz", x=x, y=y, x_val=x[:, :4, :4], y_val=y), "")
    yield _data_case("empty folder", lambda s: _mkdir(s / "imgs"), "one subfolder per class")
    yield _data_case("one class folder", lambda s: write_images(s / "imgs", classes=1), "one subfolder per class")
    yield _data_case("class without images", lambda s: _empty_class(s), "no PNG")
    yield _data_case("corrupt png", lambda s: _corrupt_png(s), "cannot read image")
    yield _data_case("png bomb", lambda s: _png_bomb(s), "cannot read image")
    yield _data_case("mixed sizes", lambda s: _mixed_sizes(s), "differs")
    yield _data_case("grey and colour", lambda s: _grey_and_colour(s), "mixes grey")
    yield _data_case("idx truncated", lambda s: _idx_truncated(s), "")
    yield _data_case("idx bad magic", lambda s: _idx_magic(s), "")
    yield _data_case("idx labels missing", lambda s: _idx_without(s, "train-labels-idx1-ubyte"), "")
    yield _data_case("idx test missing", lambda s: _idx_without(s, "t10k-images-idx3-ubyte"), "")
    yield _data_case("idx corrupt gzip", lambda s: _idx_bad_gzip(s), "")
    yield _data_case("idx count lies", lambda s: _idx_count_lies(s), "")


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _truncated(p: Path, keep: float) -> Path:
    raw = p.read_bytes()
    p.write_bytes(raw[: int(len(raw) * keep)])
    return p


def _npy_as_npz(s: Path) -> Path:
    with open(s / "d.npz", "wb") as f:
        np.save(f, np.zeros((4, 8, 8), np.uint8))
    return s / "d.npz"


def _pickled_npz() -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, x=np.array([{"a": 1}] * 4, dtype=object), y=np.arange(4))
    return buf.getvalue()


def _empty_class(s: Path) -> Path:
    write_images(s / "imgs")
    (s / "imgs" / "class9").mkdir()
    return s / "imgs"


def _corrupt_png(s: Path) -> Path:
    write_images(s / "imgs")
    (s / "imgs" / "class0" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return s / "imgs"


def _png_bomb(s: Path) -> Path:
    from PIL import Image

    write_images(s / "imgs")
    Image.new("1", (20000, 20000)).save(s / "imgs" / "class0" / "bomb.png")  # ~40 kB on disk, 400 MP
    return s / "imgs"


def _mixed_sizes(s: Path) -> Path:
    write_images(s / "imgs")
    write_images(s / "other", classes=1, per_class=1, size=12)
    shutil.move(s / "other" / "class0" / "0.png", s / "imgs" / "class1" / "big.png")
    return s / "imgs"


def _grey_and_colour(s: Path) -> Path:
    write_images(s / "imgs")
    write_images(s / "other", classes=1, per_class=1, mode="RGB")
    shutil.move(s / "other" / "class0" / "0.png", s / "imgs" / "class1" / "rgb.png")
    return s / "imgs"


def _idx_truncated(s: Path) -> Path:
    d = write_idx(s / "idx")
    _truncated(d / "train-images-idx3-ubyte", 0.6)
    return d


def _idx_magic(s: Path) -> Path:
    d = write_idx(s / "idx")
    raw = bytearray((d / "train-labels-idx1-ubyte").read_bytes())
    raw[:4] = b"\x00\x00\x0d\x01"
    (d / "train-labels-idx1-ubyte").write_bytes(bytes(raw))
    return d


def _idx_without(s: Path, name: str) -> Path:
    d = write_idx(s / "idx")
    (d / name).unlink()
    return d


def _idx_bad_gzip(s: Path) -> Path:
    d = write_idx(s / "idx", compress=True)
    _truncated(d / "train-images-idx3-ubyte.gz", 0.5)
    return d


def _idx_count_lies(s: Path) -> Path:
    d = write_idx(s / "idx")
    raw = bytearray((d / "t10k-labels-idx1-ubyte").read_bytes())
    raw[4:8] = struct.pack(">I", 10**9)
    (d / "t10k-labels-idx1-ubyte").write_bytes(bytes(raw))
    return d


def _option_cases() -> Iterator[Case]:
    bad = [
        ("seed -1", ["--seed", "-1"], "seed"),
        ("seed 10^23", ["--seed", "100000000000000000000000"], "seed"),
        ("seed text", ["--seed", "x"], "invalid int"),
        ("epochs 0", ["--epochs", "0"], "epochs"),
        ("epochs -3", ["--epochs", "-3"], "epochs"),
        ("epochs text", ["--epochs", "abc"], "invalid int"),
        ("batch 1", ["--batch-size", "1"], "batch size"),
        ("budget 0", ["--budget", "0"], "budget"),
        ("unknown recipe", ["--recipe", "magic"], "unknown recipe"),
        ("unknown strategy", ["--strategy", "magic"], "unknown strategy"),
        ("unknown backend", ["--backend", "magic"], "unknown latency backend"),
        ("unknown supernet", ["--supernet", "magic"], "unknown super-network"),
        ("unknown supernet option", ["--supernet-option", "colour=3"], "colour"),
        ("reserved supernet option", ["--supernet-option", "n_classes=3"], "n_classes"),
        ("malformed supernet option", ["--supernet-option", "width"], "malformed option"),
        ("malformed search option", ["--search-option", "=3"], "malformed option"),
        ("unknown search option", ["--search-option", "colour=3", "--epochs", "1"], "colour"),
        ("malformed constraint", ["--constraint", "latency_ms<<3"], "malformed constraint"),
        ("unknown metric", ["--constraint", "colour<=3"], "cannot constrain"),
        ("negative latency bound", ["--max-latency-ms", "-1"], "impossible"),
        ("latency 1e-9", ["--max-latency-ms", "1e-9"], "impossible"),
        ("accuracy 101", ["--constraint", "accuracy>=101"], "impossible"),
        ("params >= 1e12", ["--constraint", "params>=1e12"], "largest"),
        ("macs <= 1", ["--max-macs", "1"], "smallest"),
        ("nan bound", ["--max-params", "nan"], ""),
        ("inf bound", ["--constraint", "params<=inf"], ""),
        ("targets malformed", ["--targets", "fast"], "malformed --targets"),
        ("targets zero", ["--targets", "0"], "positive bound"),
        ("targets unknown metric", ["--targets", "colour:1,2"], "cost metric"),
        ("targets below smallest", ["--targets", "macs:1"], "smallest"),
        ("threads 0", ["--threads", "0"], "threads"),
        ("max-export 0", ["--max-export", "0"], "max-export"),
        ("latency mode", ["--latency", "guess"], "--latency"),
        ("device name", ["--device", "gpu"], "--device"),
        ("target auto", ["--target", "auto"], "--target"),
        ("resume and force", ["--resume", "--force"], "exclude each other"),
        ("resume empty folder", ["--resume"], "cannot resume"),
        ("unknown option", ["--colour", "red"], "unrecognized"),
    ]
    for name, options, needle in bad:
        yield _option_case(name, options, needle)
    yield Case("out is a file", lambda s: _file_out(s), "error", "")
    yield Case("out under a file", lambda s: _file_out(s, "/sub"), "error", "")
    yield Case("out in /proc", lambda s: ["run", "--data", "digits", "--out", "/proc/lightnas-run", *FAST], "error")
    yield Case("out holds other files", lambda s: _foreign_out(s, []), "error", "not a lightnas run")
    yield Case("force on a foreign folder", lambda s: _foreign_out(s, ["--force"]), "error", "not a lightnas run")
    yield Case("no command", lambda s: [], "error", "")
    yield Case("unknown command", lambda s: ["frobnicate"], "error", "invalid choice")
    yield Case("search without a run", lambda s: ["search", "nothing"], "error", "no lightnas run")
    yield Case("lut check missing", lambda s: ["lut", "check", "--lut", "none.json"], "error", "does not exist")
    yield Case("lut bad input shape", lambda s: ["lut", "build", "--input-shape", "1,28"], "error", "input-shape")
    yield Case("nb201 unknown device", lambda s: ["bench", "nb201", "--device", "toaster"], "error", "unknown")


def _file_out(s: Path, tail: str = "") -> list[str]:
    (s / "f").write_text("precious")
    return ["run", "--data", "digits", "--out", f"f{tail}", *FAST]


def _foreign_out(s: Path, extra: list[str]) -> list[str]:
    (s / "mine").mkdir()
    (s / "mine" / "thesis.txt").write_text("precious")
    return ["run", "--data", "digits", "--out", "mine", *FAST, *extra]


def _set_json(rel: str, edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def tamper(run: Path) -> None:
        d = json.loads((run / rel).read_text())
        edit(d)
        (run / rel).write_text(json.dumps(d))

    return tamper


def _write(rel: str, raw: bytes) -> Callable[[Path], None]:
    return lambda run: (run / rel).write_bytes(raw)


def _first_model(run: Path) -> str:
    return json.loads((run / "models" / "index.json").read_text())["models"][0]


def _card(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    return lambda run: _set_json(f"models/{_first_model(run)}/card.json", edit)(run)


def _checkpoint(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def tamper(run: Path) -> None:
        import torch

        state = torch.load(run / "supernet.pt", weights_only=True)
        edit(state)
        torch.save(state, run / "supernet.pt")

    return tamper


def _db_page(page: int) -> Callable[[Path], None]:
    def tamper(run: Path) -> None:
        _checkpoint_db(run / "lightnas.db")
        raw = bytearray((run / "lightnas.db").read_bytes())
        size = 4096
        start = min(page * size, max(len(raw) - size, 0))
        raw[start : start + size] = bytes(np.random.default_rng(page).integers(0, 256, size, dtype=np.uint8))
        (run / "lightnas.db").write_bytes(bytes(raw))

    return tamper


def _checkpoint_db(path: Path) -> None:
    """Fold the write-ahead log into the database file, so the file holds every page."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    for tail in ("-wal", "-shm"):
        Path(str(path) + tail).unlink(missing_ok=True)


def _run_folder_cases() -> Iterator[Case]:
    stages = {"report": ["report", "RUN"], "export": ["export", "RUN", "--quiet"], "search": ["search", "RUN"]}
    config_edits = {
        "config not json": _write("config.json", b"{not json"),
        "config empty": _write("config.json", b""),
        "config a list": _write("config.json", b"[1, 2]"),
        "config epochs text": _set_json("config.json", lambda d: d["train"].__setitem__("epochs", "abc")),
        "config unknown key": _set_json("config.json", lambda d: d.__setitem__("colour", 1)),
        "config seed negative": _set_json("config.json", lambda d: d.__setitem__("seed", -5)),
        "config strategy unknown": _set_json("config.json", lambda d: d["search"].__setitem__("strategy", "magic")),
        "config section null": _set_json("config.json", lambda d: d.__setitem__("train", None)),
        "config lr nan": _set_json("config.json", lambda d: d["train"].__setitem__("lr", "NaN")),
        "config binary": _write("config.json", b"\xff\xfe\x00garbage"),
    }
    for name, tamper in config_edits.items():
        yield _run_case(name, tamper, stages["report"])
    checkpoint_edits = {
        "checkpoint truncated": lambda run: _truncated(run / "supernet.pt", 0.5),
        "checkpoint random bytes": _write("supernet.pt", bytes(range(256)) * 16),
        "checkpoint a pickle": _write("supernet.pt", _evil_pickle()),
        "checkpoint without weights": _checkpoint(lambda st: st.pop("state_dict")),
        "checkpoint other format": _checkpoint(lambda st: st.__setitem__("format", "other")),
        "checkpoint other data": _checkpoint(lambda st: st["data"].__setitem__("splits", {"train": "0"})),
        "checkpoint other network": _checkpoint(lambda st: st["config"].__setitem__("n_classes", 3)),
        "checkpoint fewer epochs": _checkpoint(lambda st: st.__setitem__("epoch", 0)),
        "checkpoint missing": lambda run: (run / "supernet.pt").unlink(),
    }
    for name, tamper in checkpoint_edits.items():
        yield _run_case(name, tamper, stages["search"])
    for page in (0, 1, 2, 3):
        yield _run_case(f"database page {page} overwritten", _db_page(page), stages["report"], "damaged")
    yield _run_case("database truncated", lambda run: _db_truncate(run), stages["report"], "damaged")
    yield _run_case("database is text", _write("lightnas.db", b"not a database" * 100), stages["report"], "damaged")
    card_edits = {
        "card not json": lambda run: (run / "models" / _first_model(run) / "card.json").write_text("{"),
        "card id escapes": _card(lambda c: c.__setitem__("id", "../../escape")),
        "card arch garbage": _card(lambda c: c.__setitem__("arch", "garbage")),
        "card missing": lambda run: (run / "models" / _first_model(run) / "card.json").unlink(),
    }
    for name, tamper in card_edits.items():
        yield _run_case(name, tamper, ["finetune", "RUN", "--arch", "FIRST", "--epochs", "1"])
    yield _run_case("index not json", _write("models/index.json", b"]"), stages["report"], "cannot read")
    yield _run_case(
        "index names a path",
        _set_json("models/index.json", lambda d: d.__setitem__("models", ["../../etc"])),
        stages["report"],
        "",
    )
    yield _run_case("finetune unknown arch", lambda run: None, ["finetune", "RUN", "--arch", "net-0123456789"])
    yield _run_case("finetune malformed arch", lambda run: None, ["finetune", "RUN", "--arch", "s1d9-nonsense"])
    yield _run_case("finetune epochs 0", lambda run: None, ["finetune", "RUN", "--arch", "FIRST", "--epochs", "0"])
    yield _run_case("rerun without resume", lambda run: None, ["run", "--data", "digits", "--out", "RUN"])
    yield _run_case("resume with other data", lambda run: None, ["run", "--out", "RUN", "--resume", "--data", "x.npz"])
    yield _run_case("resume with other epochs", lambda run: None, ["train", "RUN", "--epochs", "5"], "epochs")
    yield _run_case("resume with other seed", lambda run: None, ["run", "--out", "RUN", "--resume", "--seed", "3"])
    yield _run_case("stage with bad option", lambda run: None, ["search", "RUN", "--budget", "0"], "budget")
    yield _run_case("lut of another backend", lambda run: _foreign_lut(run), ["search", "RUN", "--latency", "lut"])
    yield Case("report of a finished run", lambda s: ["report", "run"], "ok", needs_run=True)
    yield Case("resume a finished run", lambda s: ["run", "--out", "run", "--resume", "--quiet"], "ok", needs_run=True)


def _db_truncate(run: Path) -> None:
    _checkpoint_db(run / "lightnas.db")
    _truncated(run / "lightnas.db", 0.4)


def _evil_pickle() -> bytes:
    import pickle

    class Evil:
        def __reduce__(self) -> tuple:
            return (print, ("pwned",))

    return pickle.dumps({"format": "lightnas-supernet-2", "x": Evil()})


def _foreign_lut(run: Path) -> None:
    (run / "lut.json").write_text(json.dumps({"format": "lightnas-lut-1", "backend": "magic", "threads": 99}))


def battery() -> list[Case]:
    """Every hand-written hostile case: data, options and a tampered finished run."""
    return [*_data_cases(), *_option_cases(), *_run_folder_cases()]


# -- generated corruptions (property-style) ------------------------------------------------
def mutate(raw: bytes, rng: np.random.Generator) -> bytes:
    """One random corruption of a file's bytes: truncation, a flipped byte run,
    inserted garbage, or a zeroed stretch."""
    b = bytearray(raw)
    kind = int(rng.integers(4))
    at = int(rng.integers(0, max(len(b), 1)))
    if kind == 0:
        return bytes(b[:at])
    n = int(rng.integers(1, 64))
    if kind == 1:
        for i in range(at, min(at + n, len(b))):
            b[i] ^= int(rng.integers(1, 256))
    elif kind == 2:
        b[at:at] = bytes(rng.integers(0, 256, n, dtype=np.uint8))
    else:
        b[at : at + n] = bytes(len(b[at : at + n]))
    return bytes(b)


def malformed_files(seed: int, per_kind: int) -> list[Case]:
    """``per_kind`` seeded random corruptions of each kind of file lightnas
    reads: an .npz, an IDX folder, a PNG folder, ``config.json``, a
    ``card.json`` and ``lightnas.db``."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(per_kind):
        r = int(rng.integers(2**31))
        cases += [
            _data_case(f"npz #{i}", lambda s, r=r: _mutated(write_npz(s / "d.npz", **good_arrays()), r), expect="any"),
            _data_case(
                f"idx #{i}", lambda s, r=r: _mutated_in(write_idx(s / "idx", compress=r % 2 == 1), r), "", "any"
            ),
            _data_case(f"png #{i}", lambda s, r=r: _mutated_in(write_images(s / "imgs"), r), "", "any"),
            _run_case_any(f"config.json #{i}", "config.json", r, ["report", "RUN"]),
            _run_case_any(f"card.json #{i}", "CARD", r, ["report", "RUN"]),
            _run_case_any(f"lightnas.db #{i}", "lightnas.db", r, ["report", "RUN"]),
        ]
    return cases


def _mutated(path: Path, r: int) -> Path:
    path.write_bytes(mutate(path.read_bytes(), np.random.default_rng(r)))
    return path


def _mutated_in(folder: Path, r: int) -> Path:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    _mutated(files[r % len(files)], r)
    return folder


def _run_case_any(name: str, rel: str, r: int, command: list[str]) -> Case:
    def tamper(run: Path) -> None:
        path = run / "models" / _first_model(run) / "card.json" if rel == "CARD" else run / rel
        if rel == "lightnas.db":
            _checkpoint_db(path)
        _mutated(path, r)

    case = _run_case(name, tamper, command)
    return Case(case.name, case.make, "any", needs_run=True)
