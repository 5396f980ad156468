import subprocess
import sys


def test_search_core_does_not_import_torch():
    code = (
        "import sys\n"
        "import lightnas, lightnas.space, lightnas.objectives, lightnas.store, lightnas.search, "
        "lightnas.predictors, lightnas.bench.nb201\n"
        "from lightnas.search import list_strategies; list_strategies()\n"
        "from lightnas.bench import nb201; nb201.run_search('pixel3', 'lightnas', 15, 0)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
