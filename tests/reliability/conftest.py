"""Fixtures of the reliability suite: one sandbox, one fresh database, throw-away projects.

Everything runs for real: `meltano run` subprocesses, the sandbox over HTTP on 127.0.0.1,
a real PostgreSQL. The pipeline suite's project factory is reused (reliability_kit).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from reliability_kit import discover_catalog, run_tap_from, use_catalog

from kaiten_local.project import ScratchProject, scratch_project


@pytest.fixture(scope="session")
def tap_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tap's catalog, discovered once for the whole suite (see use_catalog)."""
    return discover_catalog(tmp_path_factory.mktemp("catalog"))


@pytest.fixture
def project_factory(tmp_path: Path, tap_catalog: Path) -> Callable[..., ScratchProject]:
    counter = iter(range(100))

    def make(**env: str) -> ScratchProject:
        root = scratch_project(tmp_path / f"project{next(counter)}")
        use_catalog(root, tap_catalog)
        # Mutation checks (and runs pinned to a known tap): a directory holding another
        # copy of the tap_kaiten package, used instead of the installed one.
        if source := os.environ.get("RELIABILITY_TAP_SOURCE"):
            run_tap_from(root, Path(source))
        defaults = {"DBT_LOG_PATH": str(root / ".meltano" / "dbt-logs")}
        # Mutation checks of settings, e.g. TARGET_POSTGRES_HARD_DELETE=true: the scrubbed
        # test environment would drop them otherwise. "NAME=value;NAME=value".
        overrides = dict(
            item.split("=", 1)
            for item in os.environ.get("RELIABILITY_PLUGIN_ENV", "").split(";")
            if "=" in item
        )
        return ScratchProject(root, defaults | env | overrides)

    return make


@pytest.fixture
def database_url(fresh_database_url: str) -> str:
    return fresh_database_url


def pipeline_env(sandbox, database_url: str, **extra: str) -> dict[str, str]:
    return {
        "KAITEN_API_URL": sandbox.base_url,
        "KAITEN_API_TOKEN": sandbox.token,
        "DATABASE_URL": database_url,
        # The sandbox is local: no client-side throttling unless a test sets a limit.
        "TAP_KAITEN_REQUESTS_PER_SECOND": "1000",
    } | extra


@pytest.fixture
def make_pipeline(project_factory, database_url):
    def make(sandbox, **extra: str) -> ScratchProject:
        return project_factory(**pipeline_env(sandbox, database_url, **extra))

    return make
