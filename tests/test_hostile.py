"""Hostile inputs keep the promise (lightnas_dev.hostile): one line, exit 2,
nothing on disk changed; seeded random corruptions of every file lightnas reads."""

import contextlib
import io
import os
from pathlib import Path

import pytest

from lightnas.cli import main
from lightnas_dev.hostile import check, malformed_files
from lightnas_dev.hostile_cases import battery


def invoke(args: list[str], cwd: Path) -> tuple[int, str]:
    """``lightnas`` in this process (the whole CLI, error handling included)."""
    err, old = io.StringIO(), Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(args)
    finally:
        os.chdir(old)
    return rc, err.getvalue()


@pytest.fixture(scope="module")
def finished(finished_run):
    return finished_run


RUN_FOLDER = [c for c in battery() if c.needs_run and "finetune" not in c.name and "resume a" not in c.name]


@pytest.mark.parametrize("case", RUN_FOLDER, ids=[c.name for c in RUN_FOLDER])
def test_tampered_run_folder(case, finished, tmp_path):
    outcome = check(case, tmp_path, invoke, finished)
    assert outcome.passed, (outcome.why, outcome.message)


GENERATED = malformed_files(seed=1, per_kind=2)


@pytest.mark.parametrize("case", GENERATED, ids=[c.name for c in GENERATED])
def test_generated_malformed_files(case, finished, tmp_path):
    outcome = check(case, tmp_path, invoke, finished)
    assert outcome.passed, (outcome.why, outcome.message)


def test_a_broken_promise_is_detected(tmp_path):
    """The judge itself can fail: a command that writes on failure, or prints a traceback."""
    from lightnas_dev.hostile import Case

    def writes_then_fails(args, cwd):
        (cwd / "leftover").write_text("x")
        return 2, "lightnas: error: bad\n"

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert not check(Case("w", lambda s: []), tmp_path / "a", writes_then_fails).passed
    traceback = lambda args, cwd: (1, "Traceback (most recent call last):\n  boom\n")  # noqa: E731
    assert not check(Case("t", lambda s: []), tmp_path / "b", traceback).passed
