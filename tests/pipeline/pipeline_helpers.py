"""Helpers for the end-to-end tests: throw-away Meltano projects and database queries.

Each test gets its own Meltano project directory (meltano.yml copied, plugin venvs
linked from the repo's .meltano/), so a developer's .env, systemdb and state never
leak in, and two projects can act as two machines for the lock test.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg

from kaiten_local.project import MELTANO, ScratchProject, clean_environ, scratch_project
from kaiten_sandbox import Sandbox

STATE_ID = "dev:tap-kaiten-to-target-postgres"
EL = ("tap-kaiten", "target-postgres")

# A throw-away Meltano project wired to one sandbox and one database.
MeltanoProject = ScratchProject
base_env = clean_environ
__all__ = ["MELTANO", "MeltanoProject", "base_env"]


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
