"""Render lightnas pages in a real browser: Playwright driving the system's
Chromium (Debian's ``chromium`` package). For tests and ``bench/report.py``;
needs the ``playwright`` Python package (the ``dev`` extra), not its browsers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RENDERED = "document.documentElement.dataset.rendered !== undefined"
READ_BACK = """() => ({
  rendered_ms: Number(document.documentElement.dataset.rendered),
  points: Number(document.documentElement.dataset.points),
  drawn: document.querySelectorAll('#front .scatterlayer path.point').length,
  errors: document.documentElement.dataset.errors || ''
})"""


def chromium_path() -> str | None:
    """The system's Chromium executable, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright ``Browser``); ImportError or
    FileNotFoundError when Playwright or Chromium is missing."""
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise FileNotFoundError("no chromium executable on PATH (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def render(browser: Any, page_file: Path, timeout_ms: int = 30000) -> dict[str, Any]:
    """Open ``page_file`` in a new tab and wait until every figure is drawn.
    Returns ``rendered_ms`` (navigation start to drawn, ms), ``points``
    (evaluations in the front figure's data), ``drawn`` (their markers in the
    DOM), ``errors`` (the page's own record of script errors), ``console``
    (uncaught errors and console errors seen by the browser) and ``page``."""
    page = browser.new_page()
    console: list[str] = []
    page.on("pageerror", lambda e: console.append(str(e)))
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.goto(Path(page_file).resolve().as_uri())
    page.wait_for_function(RENDERED, timeout=timeout_ms)
    info = page.evaluate(READ_BACK)
    info.update(console=console, page=page)
    return info
