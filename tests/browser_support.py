"""One Debian Chromium, driven by Playwright, for every test of the process that needs a browser.

Playwright's sync API runs one instance per thread: a second ``sync_playwright()`` while the
first runs fails ("using Playwright Sync API inside the asyncio loop"). So the portal's
session fixture and the live notebook test's module fixture share this one, counted: the first
user starts it, the last one to leave stops it, whatever order pytest runs them in.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("GPUPOOL_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

_users = 0
_running: tuple[Any, Any] | None = None  # (the sync_playwright context, the browser)


@contextlib.contextmanager
def shared_browser() -> Iterator[Any]:
    """The process's Chromium (started on first use, stopped when its last user leaves)."""
    global _users, _running
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM} (Debian: apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; .ci/run must install it", pytrace=False)
        # Justified skip: a developer's machine may lack Debian's chromium; CI installs it
        # (.ci/run) and fails above instead of skipping, so CI never skips these.
        pytest.skip(message)
    if _running is None:
        from playwright import sync_api  # a pinned dev dependency: never skipped for want of it

        manager = sync_api.sync_playwright()
        pw = manager.__enter__()
        try:
            _running = (manager, pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS))
        except BaseException:
            manager.__exit__(None, None, None)
            raise
    _users += 1
    try:
        yield _running[1]
    finally:
        _users -= 1
        if _users == 0 and _running is not None:
            manager, browser = _running
            _running = None
            try:
                browser.close()
            finally:
                manager.__exit__(None, None, None)
