"""The project's own test kit, outside the wheel: the hostile-input battery
(:mod:`lightnas_dev.hostile`, :mod:`lightnas_dev.hostile_cases`) and the
headless-browser driver of the report tests (:mod:`lightnas_dev.browser`).
pytest finds it through ``pythonpath`` in ``pyproject.toml``; the bench
scripts put this folder on ``sys.path``. Plug-in authors need none of it:
their conformance suites are in :mod:`lightnas.testing`."""
