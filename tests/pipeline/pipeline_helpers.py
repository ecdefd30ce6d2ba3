"""Helpers for the end-to-end tests: throw-away Meltano projects and database queries.

Each test gets its own Meltano project directory (meltano.yml copied, plugin venvs
linked from the repo's .meltano/), so a developer's .env, systemdb and state never
leak in, and two projects can act as two machines for the lock test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from kaiten_local.project import scratch_project
from kaiten_sandbox import Sandbox

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
        self,
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 600,
        stdin: str | None = None,
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
            input=stdin,
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
    return scratch_project(root)


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"meltano exited {result.returncode}\n--- stderr (tail)\n{result.stderr[-6000:]}"
    )


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


@dataclass
class Synced:
    sandbox: Sandbox
    project: MeltanoProject
    url: str
    run_stderr: str


def newest_update_by_condition(truth: dict) -> dict[int, str]:
    newest: dict[int, str] = {}
    for card in truth["cards"]:
        newest[card["condition"]] = max(newest.get(card["condition"], ""), card["updated"])
    return newest


def card_bookmarks(singer_state: dict) -> dict[int, str]:
    """Cards' bookmark per condition partition (live 1, archived 2)."""
    cards = singer_state["bookmarks"]["cards"]
    return {
        part["context"]["condition"]: part["replication_key_value"]
        for part in cards["partitions"]
        if part.get("replication_key") == "updated"
    }
