"""Fixtures for the sync service tests (the harness itself is service_harness.py).

PostgreSQL and sandbox fixtures come from the plugins tests/conftest.py declares.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict
from service_harness import RunningService, service_env, start_service

from kaiten_local.postgres import create_database, drop_database


@pytest.fixture
def webhook_secret() -> str:
    return "test-" + secrets.token_urlsafe(24)


@pytest.fixture
def service_factory(
    fresh_database_url: str, tmp_path: Path, webhook_secret: str
) -> Iterator[Callable[..., RunningService]]:
    """start(secret=..., **env) -> a running service using fake_sync.py; all stopped at teardown."""
    started: list[RunningService] = []
    sentinel: Any = object()

    def start(secret: Any = sentinel, **overrides: str) -> RunningService:
        env = service_env(
            fresh_database_url,
            tmp_path,
            webhook_secret if secret is sentinel else secret,
            **overrides,
        )
        service = start_service(env, tmp_path / f"service-{len(started)}.log", fresh_database_url)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def service(service_factory: Callable[..., RunningService]) -> RunningService:
    """The service with a secret, fake runs of 0.3 s, debounce 0.3 s, longest wait 2 s."""
    return service_factory()


@pytest.fixture(scope="module")
def quiet_service(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """One service shared by a module's tests that must leave no trace (refused requests).

    Those tests assert that nothing was received and no run started, which
    also proves that the tests before them changed nothing.
    """
    database_url = create_database(postgres_url)
    root = tmp_path_factory.mktemp("quiet-service")
    env = service_env(database_url, root, "test-" + secrets.token_urlsafe(24))
    service = start_service(env, root / "service.log", database_url)
    yield service
    service.stop()
    drop_database(postgres_url, str(conninfo_to_dict(database_url)["dbname"]))


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser_page() -> Iterator[Any]:
    """A page in Debian's headless Chromium, driven by Playwright."""
    if not os.path.exists(CHROMIUM):
        message = "Debian's chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it: a skip there would hide a broken install step
        pytest.skip(message)
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        # Never a downloaded browser: the system one, at a fixed path.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 800}, locale="ru-RU")
        page.set_default_timeout(30_000)
        try:
            yield page
        finally:
            browser.close()
