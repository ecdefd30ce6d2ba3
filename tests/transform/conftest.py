"""Fixtures for the dbt transform tests: a sandbox workspace synced into a real
PostgreSQL by the real pipeline (`meltano run tap-kaiten target-postgres
dbt-postgres:build`), then the marts read back and compared with the truth.

Each Meltano project is a throw-away directory (meltano.yml copied, plugin
venvs linked from the repo's .meltano/) so a developer's .env, system db and
state never leak in.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from kaiten_local.postgres import create_database, drop_database
from kaiten_local.project import ScratchProject, scratch_project
from kaiten_sandbox import Sandbox

# The PostgreSQL and sandbox fixtures come from the root tests/conftest.py.

MARTS = ("spaces", "boards", "board_columns", "cards", "card_column_durations", "sync_status")


@dataclass
class Pipeline:
    """One Meltano project wired to one sandbox and one database."""

    project: ScratchProject
    database_url: str

    def meltano_result(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """Run meltano in this project; the caller judges the outcome."""
        return self.project.run(*args, timeout=timeout)

    def meltano(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """Run meltano in this project and require success."""
        result = self.meltano_result(*args, timeout=timeout)
        assert result.returncode == 0, (
            f"meltano {' '.join(args)} exited {result.returncode}\n"
            f"--- stdout (tail)\n{result.stdout[-4000:]}\n"
            f"--- stderr (tail)\n{result.stderr[-6000:]}"
        )
        return result

    def sync_and_build(self, *extra: str) -> subprocess.CompletedProcess[str]:
        """Extract, load and `dbt build` (models, schema tests and unit tests)."""
        return self.meltano("run", *extra, "tap-kaiten", "target-postgres", "dbt-postgres:build")

    def dbt(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.meltano("invoke", "dbt-postgres", *args)

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with psycopg.connect(self.database_url, row_factory=dict_row) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        with psycopg.connect(self.database_url) as conn:
            conn.execute(sql, params)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pipeline_factory(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[Sandbox], Pipeline]]:
    """Make pipelines, each with its own fresh database, all dropped afterwards."""
    databases: list[str] = []

    def make(sandbox: Sandbox) -> Pipeline:
        url = create_database(postgres_url)
        databases.append(str(conninfo_to_dict(url)["dbname"]))
        root = scratch_project(tmp_path_factory.mktemp("meltano") / "project")
        env = {
            "KAITEN_API_URL": sandbox.base_url,
            "KAITEN_API_TOKEN": sandbox.token,
            "DATABASE_URL": url,
            # The sandbox is local and unthrottled.
            "TAP_KAITEN_REQUESTS_PER_SECOND": "1000",
            # dbt writes its logs into transform/ (shared) unless told otherwise.
            "DBT_LOG_PATH": str(root / ".meltano" / "dbt-logs"),
        }
        return Pipeline(project=ScratchProject(root, env), database_url=url)

    yield make
    for name in databases:
        drop_database(postgres_url, name)


@pytest.fixture(scope="module")
def sandbox_factory() -> Iterator[Callable[..., Sandbox]]:
    """Module-scoped sandboxes (one sync is shared by every test of a module)."""
    started: list[Sandbox] = []

    def make(**kwargs: Any) -> Sandbox:
        sandbox = Sandbox(**{"rate_limit": 0, **kwargs}).start(port=0)
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()
