"""Fixtures of the reliability suite: one sandbox, one fresh database, throw-away projects.

Everything runs for real: `meltano run` subprocesses, the sandbox over HTTP on 127.0.0.1,
a real PostgreSQL. The pipeline suite's project factory is reused (reliability_kit).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from reliability_kit import MeltanoProject, e2e


@pytest.fixture
def project_factory(tmp_path: Path) -> Callable[..., MeltanoProject]:
    counter = iter(range(100))

    def make(**env: str) -> MeltanoProject:
        root = e2e.make_project(tmp_path / f"project{next(counter)}")
        defaults = {"DBT_LOG_PATH": str(root / ".meltano" / "dbt-logs")}
        return MeltanoProject(root, defaults | env)

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
    def make(sandbox, **extra: str) -> MeltanoProject:
        return project_factory(**pipeline_env(sandbox, database_url, **extra))

    return make
