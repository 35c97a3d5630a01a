"""Fixtures of the portal tests: a real control plane on 127.0.0.1 (random port, SQLite in a temp
dir) running jobs as local processes, and Debian's Chromium driven by Playwright (never downloaded).

Screenshots go to ``artifacts/portal/`` (gitignored), named after the test and the page.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from browser_support import shared_browser
from gpupool.core.capacity import POOL_LABEL
from gpupool.core.model import NodeSpec
from gpupool.service.app import create_app
from gpupool.service.db import Database
from gpupool.service.security import create_token
from gpupool.service.settings import ServiceSettings
from service.conftest import free_port
from service.executors import GI, ProcessExecutor, wait_until

CONFIG = Path(__file__).parent / "queues.yaml"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "portal"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}


def portal_nodes() -> list[NodeSpec]:
    """16 GPUs: two H100 nodes in pool `train`, two A100 nodes without a pool (shown as `default`)."""

    def node(name: str, gpu_type: str, pool: str | None) -> NodeSpec:
        labels = {"gpu-type": gpu_type}
        if pool:
            labels[POOL_LABEL] = pool
        return NodeSpec(name, {"gpu": 4000, "vcore": 64000, "memory": 512 * GI}, labels)

    return [
        node("h100-0", "H100", "train"),
        node("h100-1", "H100", "train"),
        node("a100-0", "A100", None),
        node("a100-1", "A100", None),
    ]


class PortalServer:
    def __init__(self, data_dir: Path, config: Path = CONFIG) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = ServiceSettings(
            data_dir=data_dir, config_path=config, port=self.port, tick_interval=0.1
        )
        self.executor = ProcessExecutor(data_dir / "jobs", portal_nodes())
        self.app = create_app(self.settings, self.executor)
        self.app.state.history.interval = 0.5  # a sample every half second: charts fill quickly
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> PortalServer:
        self._thread.start()
        wait_until(lambda: self._server.started or not self._thread.is_alive(), timeout=30)
        if not self._server.started:
            raise RuntimeError("the portal test server did not start")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self.executor.kill_all()

    @property
    def admin_token(self) -> str:
        return (self.data_dir / "admin.token").read_text().strip()

    def token(self, user: str, groups: tuple[str, ...] = (), admin: bool = False) -> str:
        db = Database(self.settings.db_url)
        try:
            return create_token(db, user, groups, admin)
        finally:
            db.close()

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"} if token != "" else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


@pytest.fixture
def portal(tmp_path) -> Iterator[PortalServer]:
    server = PortalServer(tmp_path / "data").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    with shared_browser() as b:
        yield b


@pytest.fixture(scope="session")
def artifacts() -> Path:
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


@pytest.fixture
def open_page(browser, request, artifacts):
    """``open_page(viewport=DESKTOP)``: a fresh browser context and page; closed after the test."""
    contexts = []

    def make(viewport: dict[str, int] | None = None):
        ctx = browser.new_context(viewport=viewport or DESKTOP)
        ctx.set_default_timeout(15_000)
        contexts.append(ctx)
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.js_errors = errors  # type: ignore[attr-defined]
        return page

    yield make
    for ctx in contexts:
        ctx.close()


def shot(page, name: str) -> Path:
    """Save a full-page screenshot under artifacts/portal/."""
    path = ARTIFACTS / (re.sub(r"[^A-Za-z0-9_.-]+", "-", name) + ".png")
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page, url: str, token: str, path: str = "/") -> None:
    """Sign in through the sign-in page and land on ``path``."""
    page.goto(url + path)
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#signout")
