"""The hand-written hostile cases (bad data, bad options, a tampered finished
run), judged by :func:`lightnas_dev.hostile.check`."""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lightnas_dev.hostile import (
    FAST,
    Case,
    bytes_file,
    checkpoint_db,
    data_case,
    edit_card,
    edit_checkpoint,
    first_model,
    good_arrays,
    make_dir,
    npz_file,
    option_case,
    overwrite_db_page,
    run_case,
    set_json,
    truncated,
    write_file,
    write_idx,
    write_images,
    write_npz,
)


def _data_cases() -> Iterator[Case]:
    g = good_arrays()
    x, y = g["x"], g["y"]
    yield data_case("zero-byte npz", bytes_file("d.npz", b""), "cannot read")
    yield data_case("npy renamed npz", lambda s: _npy_as_npz(s), "cannot read")
    yield data_case("random bytes npz", bytes_file("d.npz", bytes(range(256)) * 8), "cannot read")
    yield data_case("truncated npz", lambda s: truncated(write_npz(s / "d.npz", **g), 0.5), "")
    yield data_case("dev null", lambda s: "/dev/null", "")
    yield data_case("missing path", lambda s: s / "nothere.npz", "does not exist")
    yield data_case("text file", bytes_file("d.txt", b"hello"), ".npz")
    yield data_case("unknown name", lambda s: "imagenet", "unknown dataset")
    yield data_case("npz without y", npz_file("d.npz", x=x), "'x' and 'y'")
    yield data_case("npz without x", npz_file("d.npz", y=y), "'x' and 'y'")
    yield data_case("labels shorter", npz_file("d.npz", x=x, y=y[:-3]), "")
    yield data_case("1-d images", npz_file("d.npz", x=x.reshape(-1), y=y), "")
    yield data_case("5-d images", npz_file("d.npz", x=x[:, None, None, :, :], y=y), "")
    yield data_case("negative label", npz_file("d.npz", x=x, y=np.where(y == 0, -1, y)), "")
    yield data_case("label 10^9", npz_file("d.npz", x=x, y=np.where(y == 0, 10**9, y)), "")
    yield data_case("float labels", npz_file("d.npz", x=x, y=y + 0.5), "")
    yield data_case("string labels", npz_file("d.npz", x=x, y=np.array([str(v) for v in y])), "")
    yield data_case("object array", bytes_file("d.npz", _pickled_npz()), "")
    yield data_case("nan images", npz_file("d.npz", x=np.full(x.shape, np.nan), y=y), "")
    yield data_case("one class", npz_file("d.npz", x=x, y=np.zeros_like(y)), "")
    yield data_case("two images", npz_file("d.npz", x=x[:2], y=y[:2]), "")
    yield data_case("empty arrays", npz_file("d.npz", x=x[:0], y=y[:0]), "")
    yield data_case("1x1 images", npz_file("d.npz", x=x[:, :1, :1], y=y), "")
    yield data_case("huge image side", npz_file("d.npz", x=np.zeros((4, 1, 1, 70000), np.uint8), y=y[:4]), "")
    yield data_case("x_val without y_val", npz_file("d.npz", x=x, y=y, x_val=x), "come together")
    yield data_case("val of other size", npz_file("d.npz", x=x, y=y, x_val=x[:, :4, :4], y_val=y), "")
    yield data_case("empty folder", lambda s: make_dir(s / "imgs"), "one subfolder per class")
    yield data_case("one class folder", lambda s: write_images(s / "imgs", classes=1), "one subfolder per class")
    yield data_case("class without images", lambda s: _empty_class(s), "no PNG")
    yield data_case("corrupt png", lambda s: _corrupt_png(s), "cannot read image")
    yield data_case("png bomb", lambda s: _png_bomb(s), "cannot read image")
    yield data_case("mixed sizes", lambda s: _mixed_sizes(s), expect="ok")  # brought to one size
    yield data_case("grey and colour", lambda s: _grey_and_colour(s), expect="ok")  # converted to RGB
    yield data_case("truncated jpeg", lambda s: _broken_file(s, "cut.jpg", "truncate"), "cut.jpg")
    yield data_case("1-pixel image", lambda s: _broken_file(s, "dot.png", "pixel"), "dot.png: 1x1 pixels is too small")
    yield data_case("text named .jpg", lambda s: _broken_file(s, "note.jpg", "text"), "cannot read image")
    yield data_case("idx truncated", lambda s: _idx_truncated(s), "")
    yield data_case("idx bad magic", lambda s: _idx_magic(s), "")
    yield data_case("idx labels missing", lambda s: _idx_without(s, "train-labels-idx1-ubyte"), "")
    yield data_case("idx test missing", lambda s: _idx_without(s, "t10k-images-idx3-ubyte"), "")
    yield data_case("idx corrupt gzip", lambda s: _idx_bad_gzip(s), "")
    yield data_case("idx count lies", lambda s: _idx_count_lies(s), "")


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


def _broken_file(s: Path, name: str, how: str) -> Path:
    """An image folder with one file that cannot be read: a JPEG cut short, a
    1x1 image, or text with an image's name."""
    from PIL import Image

    write_images(s / "imgs", size=16)
    path = s / "imgs" / "class1" / name
    if how == "truncate":
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path, "JPEG")
        truncated(path, 0.4)
    elif how == "pixel":
        Image.new("L", (1, 1)).save(path)
    else:
        path.write_text("not an image")
    return s / "imgs"


def _grey_and_colour(s: Path) -> Path:
    write_images(s / "imgs")
    write_images(s / "other", classes=1, per_class=1, mode="RGB")
    shutil.move(s / "other" / "class0" / "0.png", s / "imgs" / "class1" / "rgb.png")
    return s / "imgs"


def _idx_truncated(s: Path) -> Path:
    d = write_idx(s / "idx")
    truncated(d / "train-images-idx3-ubyte", 0.6)
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
    truncated(d / "train-images-idx3-ubyte.gz", 0.5)
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
        ("zero-cost on a super-network", ["--strategy", "zero-cost"], "zero-cost proxies"),
    ]
    for name, options, needle in bad:
        yield option_case(name, options, needle)
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


def _quantize_cases() -> Iterator[Case]:
    q = ["--quantize", "int8"]
    bad = [
        ("unknown precision", ["--quantize", "int4"], "unknown precision"),
        ("int8 in PyTorch eager", [*q, "--backend", "torch"], "ONNX Runtime on the CPU"),
        ("int8 on a GPU target", [*q, "--target", "cuda"], ""),
        ("calibration set too large", [*q, "--calib-images", "1000000"], "calib-images"),
        ("calibration set empty", [*q, "--calib-images", "0"], "calib-images"),
        ("unknown calibration method", [*q, "--calib-method", "guess"], "calib-method"),
        ("batch 0", ["--batch", "0"], "batch"),
    ]
    for name, options, needle in bad:
        yield option_case(name, options, needle)
    qat = ["finetune", "RUN", "--arch", "FIRST", "--epochs", "1", "--qat"]
    yield run_case("qat of a float32 model", lambda run: None, qat, "float32 throughout")


def _nb201_cases() -> Iterator[Case]:
    yield Case("nb201 unknown device", lambda s: ["bench", "nb201", "--device", "toaster"], "error", "unknown")
    for name, devices, needle in (
        ("nb201 device listed twice", "pixel3,pixel3", "twice"),
        ("nb201 one unknown of several", "pixel3,toaster", "unknown"),
        ("nb201 empty device in list", "pixel3,", "unknown"),
    ):
        yield Case(name, lambda s, d=devices: ["bench", "nb201", "--device", d, "--budget", "5"], "error", needle)
    yield Case(
        "nb201 objective with several devices",
        lambda s: ["bench", "nb201", "--device", "pixel3,raspi4", "--objective", "params:min"],
        "error",
        "cannot be combined",
    )


def _file_out(s: Path, tail: str = "") -> list[str]:
    (s / "f").write_text("precious")
    return ["run", "--data", "digits", "--out", f"f{tail}", *FAST]


def _foreign_out(s: Path, extra: list[str]) -> list[str]:
    (s / "mine").mkdir()
    (s / "mine" / "thesis.txt").write_text("precious")
    return ["run", "--data", "digits", "--out", "mine", *FAST, *extra]


def _run_folder_cases() -> Iterator[Case]:
    stages = {"report": ["report", "RUN"], "export": ["export", "RUN", "--quiet"], "search": ["search", "RUN"]}
    config_edits = {
        "config not json": write_file("config.json", b"{not json"),
        "config empty": write_file("config.json", b""),
        "config a list": write_file("config.json", b"[1, 2]"),
        "config epochs text": set_json("config.json", lambda d: d["train"].__setitem__("epochs", "abc")),
        "config unknown key": set_json("config.json", lambda d: d.__setitem__("colour", 1)),
        "config seed negative": set_json("config.json", lambda d: d.__setitem__("seed", -5)),
        "config strategy unknown": set_json("config.json", lambda d: d["search"].__setitem__("strategy", "magic")),
        "config section null": set_json("config.json", lambda d: d.__setitem__("train", None)),
        "config lr nan": set_json("config.json", lambda d: d["train"].__setitem__("lr", "NaN")),
        "config binary": write_file("config.json", b"\xff\xfe\x00garbage"),
    }
    for name, tamper in config_edits.items():
        yield run_case(name, tamper, stages["report"])
    checkpoint_edits = {
        "checkpoint truncated": lambda run: truncated(run / "supernet.pt", 0.5),
        "checkpoint random bytes": write_file("supernet.pt", bytes(range(256)) * 16),
        "checkpoint a pickle": write_file("supernet.pt", _evil_pickle()),
        "checkpoint without weights": edit_checkpoint(lambda st: st.pop("state_dict")),
        "checkpoint other format": edit_checkpoint(lambda st: st.__setitem__("format", "other")),
        "checkpoint other data": edit_checkpoint(lambda st: st["data"].__setitem__("splits", {"train": "0"})),
        "checkpoint other network": edit_checkpoint(lambda st: st["config"].__setitem__("n_classes", 3)),
        "checkpoint fewer epochs": edit_checkpoint(lambda st: st.__setitem__("epoch", 0)),
        "checkpoint missing": lambda run: (run / "supernet.pt").unlink(),
    }
    for name, tamper in checkpoint_edits.items():
        yield run_case(name, tamper, stages["search"])
    for page in (0, 1, 2, 3):
        yield run_case(f"database page {page} overwritten", overwrite_db_page(page), stages["report"], "damaged")
    yield run_case("database truncated", lambda run: _db_truncate(run), stages["report"], "damaged")
    yield run_case("database is text", write_file("lightnas.db", b"not a database" * 100), stages["report"], "damaged")
    card_edits = {
        "card not json": lambda run: (run / "models" / first_model(run) / "card.json").write_text("{"),
        "card id escapes": edit_card(lambda c: c.__setitem__("id", "../../escape")),
        "card arch garbage": edit_card(lambda c: c.__setitem__("arch", "garbage")),
        "card missing": lambda run: (run / "models" / first_model(run) / "card.json").unlink(),
    }
    for name, tamper in card_edits.items():
        yield run_case(name, tamper, ["finetune", "RUN", "--arch", "FIRST", "--epochs", "1"])
    yield run_case("index not json", write_file("models/index.json", b"]"), stages["report"], "cannot read")
    yield run_case(
        "index names a path",
        set_json("models/index.json", lambda d: d.__setitem__("models", ["../../etc"])),
        stages["report"],
        "",
    )
    yield run_case("finetune unknown arch", lambda run: None, ["finetune", "RUN", "--arch", "net-0123456789"])
    yield run_case("finetune malformed arch", lambda run: None, ["finetune", "RUN", "--arch", "s1d9-nonsense"])
    yield run_case("finetune epochs 0", lambda run: None, ["finetune", "RUN", "--arch", "FIRST", "--epochs", "0"])
    yield run_case("rerun without resume", lambda run: None, ["run", "--data", "digits", "--out", "RUN"])
    yield run_case("resume with other data", lambda run: None, ["run", "--out", "RUN", "--resume", "--data", "x.npz"])
    yield run_case("resume with other epochs", lambda run: None, ["train", "RUN", "--epochs", "5"], "epochs")
    yield run_case("resume with other seed", lambda run: None, ["run", "--out", "RUN", "--resume", "--seed", "3"])
    yield run_case("stage with bad option", lambda run: None, ["search", "RUN", "--budget", "0"], "budget")
    yield run_case("lut of another backend", lambda run: _foreign_lut(run), ["search", "RUN", "--latency", "lut"])
    yield from _report_cases()
    yield Case("report of a finished run", lambda s: ["report", "run"], "ok", needs_run=True)
    yield Case("resume a finished run", lambda s: ["run", "--out", "run", "--resume", "--quiet"], "ok", needs_run=True)


def _report_cases() -> Iterator[Case]:
    """compare and export-study on missing, damaged or foreign inputs and outputs."""
    yield Case("compare a missing run", lambda s: ["compare", "nothing", "--out", "c.html"], "error", "no lightnas run")
    yield run_case("compare into a folder", lambda run: None, ["compare", "RUN", "--out", "RUN"], "is a folder")
    yield run_case(
        "compare over a foreign file",
        lambda run: (run.parent / "notes.html").write_text("mine"),
        ["compare", "RUN", "--out", "notes.html"],
        "not a lightnas comparison",
    )
    yield run_case("compare a damaged store", overwrite_db_page(1), ["compare", "RUN", "--out", "c.html"], "damaged")
    yield run_case("study to a plain path", lambda run: None, ["export-study", "RUN", "--storage", "x.db"], "URL")
    yield run_case(
        "study into the run's store",
        lambda run: None,
        ["export-study", "RUN", "--storage", "sqlite:///run/lightnas.db"],
        "another program",
    )
    yield run_case(
        "study of a damaged checkpoint",
        write_file("supernet.pt", b"x" * 64),
        ["export-study", "RUN", "--storage", "sqlite:///s.db"],
    )
    yield run_case("unknown executor", lambda run: None, ["search", "RUN", "--executor", "slurm"], "executor")
    yield run_case(
        "no Ray workers", lambda run: None, ["search", "RUN", "--executor", "ray", "--workers", "0"], "workers"
    )
    yield run_case("unknown schedule", lambda run: None, ["search", "RUN", "--schedule", "eager"], "schedule")


def _db_truncate(run: Path) -> None:
    checkpoint_db(run / "lightnas.db")
    truncated(run / "lightnas.db", 0.4)


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
    return [*_data_cases(), *_option_cases(), *_quantize_cases(), *_nb201_cases(), *_run_folder_cases()]
