import subprocess
import sys


def _without_torch(code: str) -> None:
    """Run ``code`` in a fresh interpreter and check that it never imported torch."""
    check = "\nimport sys\nassert 'torch' not in sys.modules, 'torch was imported'\n"
    res = subprocess.run([sys.executable, "-c", code + check], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr


def test_search_core_does_not_import_torch():
    _without_torch(
        "import lightnas, lightnas.space, lightnas.objectives, lightnas.store, lightnas.search, "
        "lightnas.predictors, lightnas.bench.nb201\n"
        "from lightnas.search import list_strategies; list_strategies()\n"
        "from lightnas.bench import nb201; nb201.run_search('pixel3', 'lightnas', 15, 0)"
    )


def test_the_command_line_parser_and_the_artefact_types_do_not_import_torch():
    """``lightnas --help``, argument errors and reading a finished run's figures start without torch."""
    _without_torch(
        "from lightnas.cli import build_parser; build_parser()\n"
        "import lightnas.artefacts, lightnas.checks, lightnas.pipeline, lightnas.reporting.run"
    )
