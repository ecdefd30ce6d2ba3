"""End-to-end fixtures: real `meltano run` subprocesses, the sandbox over HTTP, real PostgreSQL.

The PostgreSQL and sandbox fixtures come from the plugins the root tests/conftest.py loads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pipeline_helpers import EL, Synced, assert_ok
from psycopg.conninfo import conninfo_to_dict

from kaiten_local.postgres import create_database, drop_database
from kaiten_local.project import ScratchProject, scratch_project
from kaiten_sandbox import Sandbox


@pytest.fixture
def project_factory(tmp_path: Path) -> Callable[..., ScratchProject]:
    counter = iter(range(100))

    def make(**env: str) -> ScratchProject:
        root = scratch_project(tmp_path / f"project{next(counter)}")
        # dbt writes logs next to the project unless told otherwise; keep them per test.
        defaults = {"DBT_LOG_PATH": str(root / ".meltano" / "dbt-logs")}
        return ScratchProject(root, defaults | env)

    return make


@pytest.fixture
def database_url(fresh_database_url: str) -> str:
    return fresh_database_url


@pytest.fixture
def sandbox(kaiten_sandbox_factory):
    return kaiten_sandbox_factory(seed=7, cards=300, rate_limit=0)


@pytest.fixture
def project(project_factory, sandbox, database_url) -> ScratchProject:
    return project_factory(
        KAITEN_API_URL=sandbox.base_url,
        KAITEN_API_TOKEN=sandbox.token,
        DATABASE_URL=database_url,
        # The sandbox is local and unthrottled.
        TAP_KAITEN_REQUESTS_PER_SECOND="1000",
    )


@pytest.fixture(scope="module")
def module_database(postgres_url: str) -> Iterator[str]:
    url = create_database(postgres_url)
    yield url
    drop_database(postgres_url, str(conninfo_to_dict(url)["dbname"]))


@pytest.fixture(scope="module")
def synced(module_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synced]:
    """One sandbox workspace and one first `kaiten-sync` run, shared by read-only tests."""
    with Sandbox(seed=7, cards=300, rate_limit=0) as sandbox:
        root = scratch_project(tmp_path_factory.mktemp("synced") / "project")
        project = ScratchProject(
            root,
            {
                "KAITEN_API_URL": sandbox.base_url,
                "KAITEN_API_TOKEN": sandbox.token,
                "DATABASE_URL": module_database,
                "TAP_KAITEN_REQUESTS_PER_SECOND": "1000",
                "DBT_LOG_PATH": str(root / ".meltano" / "dbt-logs"),
            },
        )
        # Extract and load only: the dbt step has tests of its own (test_jobs.py, tests/transform).
        result = project.run("run", *EL)
        assert_ok(result)
        yield Synced(sandbox, project, module_database, result.stderr)
