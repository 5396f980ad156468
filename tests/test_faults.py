"""Run folders under faults: one writer per folder, a store whose writer died
before SQLite checkpointed its log, a full disk, interrupts."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lightnas.cli import main, os_error
from lightnas.errors import LightnasError
from lightnas.lock import LOCK_FILE, writer_of, writing
from lightnas.store import Store, _quick_check

DIGITS = ["--data", "digits", "--epochs", "1", "--budget", "3", "--max-export", "1", "--quiet"]


def test_a_second_writer_is_refused_in_one_line_naming_the_first(tmp_path, capsys):
    out = tmp_path / "run"
    with writing(out):
        assert writer_of(out) is not None and str(os.getpid()) in writer_of(out)
        assert main(["run", "--out", str(out), *DIGITS]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and f"is being written by process {os.getpid()}" in err
        assert main(["train", str(out), "--data", "digits", "--quiet"]) == 2
        assert "is being written by" in capsys.readouterr().err
    assert writer_of(out) is None
    assert not out.exists()  # refused before anything was written: nothing left behind


def test_a_killed_writer_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "run"
    code = f"from lightnas.lock import writing\nwith writing({str(out)!r}):\n    print('held', flush=True)\n"
    code += "    import time; time.sleep(60)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    assert f"process {proc.pid}" in (writer_of(out) or "")
    with pytest.raises(LightnasError, match=f"process {proc.pid}"), writing(out):
        pass
    proc.kill()
    proc.wait()
    assert writer_of(out) is None
    with writing(out):
        assert (out / LOCK_FILE).exists()


def test_readers_work_beside_a_writer_and_say_so(finished_run, capsys):
    with writing(finished_run):
        assert main(["report", str(finished_run), "--quiet"]) == 0
        assert "is being written by" in capsys.readouterr().err
    assert main(["report", str(finished_run), "--quiet"]) == 0
    assert "is being written" not in capsys.readouterr().err


def test_a_store_whose_writer_died_before_a_checkpoint_opens(tmp_path):
    db = tmp_path / "lightnas.db"
    code = (
        "import os, signal\nfrom lightnas.store import Store\n"
        f"s = Store({str(db)!r})\n"
        "for i in range(40):\n    s.add('s', f'a{i}', {'x': i}, {'m': float(i)})\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=False)
    wal = Path(str(db) + "-wal")
    assert wal.exists() and wal.stat().st_size > 0  # the evaluations live in the log, not yet in the file
    _quick_check(db)
    with Store(db) as store:
        assert len(store.records("s")) == 40


def test_os_errors_are_one_sentence_without_class_names():
    full = os_error(OSError(errno.ENOSPC, "No space left on device", "/data/run/supernet.pt"))
    assert "no space left" in full and "/data/run/supernet.pt" in full and "OSError" not in full
    assert os_error(PermissionError(errno.EACCES, "Permission denied", "/x")) == "permission denied (/x)"
    import sqlite3

    assert "Error" not in os_error(sqlite3.OperationalError("database or disk is full"))


def test_a_failed_atomic_write_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    from lightnas import io

    target = tmp_path / "summary.json"
    target.write_text("old")

    def full(tmp: str) -> None:
        Path(tmp).write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(LightnasError, match="no space left to write .*summary.json"):
        io.atomic_write(target, full)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_torch_saving_onto_a_full_disk_is_the_same_one_line(tmp_path, monkeypatch):
    """torch.save names no errno when the disk fills ("unexpected pos"): the free space says it."""
    import shutil

    from lightnas import io

    def torch_full(tmp: str) -> None:
        Path(tmp).write_bytes(b"PK")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(io.shutil, "disk_usage", lambda p: usage._replace(free=4096))
    with pytest.raises(LightnasError, match=r"^no space left to write .*supernet.pt \(0.0 MB free"):
        io.atomic_write(tmp_path / "supernet.pt", torch_full)
    monkeypatch.setattr(io.shutil, "disk_usage", lambda p: usage._replace(free=2**30))
    with pytest.raises(RuntimeError, match="unexpected pos"):  # with space left it is not a full disk
        io.atomic_write(tmp_path / "supernet.pt", torch_full)


def test_sigterm_stops_a_run_in_one_line_and_it_resumes(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "lightnas.cli", "run", "--out", str(out), "--data", "digits", "--epochs", "3"]
    cmd += ["--budget", "4", "--max-export", "1"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "supernet.pt").exists() and time.time() < deadline:  # the first epoch is on disk
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    t0 = time.time()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and time.time() - t0 < 30
    assert "interrupted" in err, err[-500:]
    assert writer_of(out) is None
    assert main(["run", "--out", str(out), "--resume", "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["n_exported"] >= 1


@pytest.mark.slow
def test_kill_points_and_a_full_disk_resume_to_the_uninterrupted_run(tmp_path):
    """``bench/faults.py`` at a few points of each kind: every resumed folder
    equals the reference run's (weights, evaluations, exported cards)."""
    bench = Path(__file__).resolve().parents[1] / "bench" / "faults.py"
    report = tmp_path / "faults.json"
    cmd = [sys.executable, str(bench), "--kills", "4", "--full-disk", "2", "--writers", "2", "--ray", "0"]
    subprocess.run([*cmd, "--json", str(report)], check=True, timeout=3600)
    results = json.loads(report.read_text())
    for kind in ("kill", "full_disk", "two_writers"):
        if kind in results:  # the full-disk trials need root to mount a tmpfs
            assert results[kind]["passed"] == results[kind]["of"], results[kind]["trials"]
