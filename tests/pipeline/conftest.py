"""End-to-end fixtures: real `meltano run` subprocesses, the sandbox over HTTP, real PostgreSQL.

Each test gets its own Meltano project directory (meltano.yml copied, plugin venvs
linked from the repo's .meltano/), so a developer's .env, systemdb and state never
leak in, and two projects can act as two machines for the lock test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from kaiten_local.postgres import ROOT, create_database, drop_database
from kaiten_sandbox import Sandbox

pytest_plugins = ["kaiten_local.pytest_plugin", "kaiten_sandbox.pytest_plugin"]

MELTANO = str(Path(sys.executable).parent / "meltano")
STATE_ID = "dev:tap-kaiten-to-target-postgres"
EL = ("tap-kaiten", "target-postgres")
# Whatever a developer exported must not steer the pipeline under test.
_SCRUBBED_PREFIXES = ("KAITEN_", "TAP_KAITEN", "TARGET_POSTGRES", "DBT_", "MELTANO_", "PG")
_SCRUBBED = {"DATABASE_URL", "TEST_DATABASE_URL"}


def base_env() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if key not in _SCRUBBED and not key.startswith(_SCRUBBED_PREFIXES)
    }


@dataclass
class MeltanoProject:
    """A throw-away Meltano project wired to one sandbox and one database."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        full_env = base_env() | self.env | (env or {})
        full_env = {k: v for k, v in full_env.items() if v is not None}
        return subprocess.run(
            [MELTANO, *args],
            cwd=self.root,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        full_env = base_env() | self.env | (env or {})
        full_env = {k: v for k, v in full_env.items() if v is not None}
        return subprocess.Popen(
            [MELTANO, *args],
            cwd=self.root,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def make_project(root: Path) -> Path:
    """A Meltano project in `root` sharing the repo's installed plugin venvs."""
    installed = ROOT / ".meltano"
    for kind in ("extractors", "loaders", "utilities"):
        if not (installed / kind).is_dir():
            pytest.fail(
                f"Meltano plugins are not installed ({installed / kind} missing): run make install"
            )
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "meltano.yml", root / "meltano.yml")
    for name in ("plugins", "transform", "tap-kaiten"):
        (root / name).symlink_to(ROOT / name)
    (root / ".meltano").mkdir()
    for kind in ("extractors", "loaders", "utilities"):
        (root / ".meltano" / kind).symlink_to(installed / kind)
    return root


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"meltano exited {result.returncode}\n--- stderr (tail)\n{result.stderr[-6000:]}"
    )


@pytest.fixture
def project_factory(tmp_path: Path) -> Callable[..., MeltanoProject]:
    counter = iter(range(100))

    def make(**env: str) -> MeltanoProject:
        root = make_project(tmp_path / f"project{next(counter)}")
        # dbt writes logs next to the project unless told otherwise; keep them per test.
        defaults = {"DBT_LOG_PATH": str(root / ".meltano" / "dbt-logs")}
        return MeltanoProject(root, defaults | env)

    return make


@pytest.fixture
def database_url(fresh_database_url: str) -> str:
    return fresh_database_url


@pytest.fixture
def sandbox(kaiten_sandbox_factory):
    return kaiten_sandbox_factory(seed=7, cards=300, rate_limit=0)


@pytest.fixture
def project(project_factory, sandbox, database_url) -> MeltanoProject:
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


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


@dataclass
class Synced:
    sandbox: Sandbox
    project: MeltanoProject
    url: str
    run_stderr: str


@pytest.fixture(scope="module")
def synced(module_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synced]:
    """One sandbox workspace and one first `kaiten-sync` run, shared by read-only tests."""
    with Sandbox(seed=7, cards=300, rate_limit=0) as sandbox:
        root = make_project(tmp_path_factory.mktemp("synced") / "project")
        project = MeltanoProject(
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
