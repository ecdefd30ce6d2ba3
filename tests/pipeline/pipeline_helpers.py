"""Helpers for the end-to-end tests: throw-away Meltano projects and database queries.

Each test gets its own Meltano project directory (meltano.yml copied, plugin venvs
linked from the repo's .meltano/), so a developer's .env, systemdb and state never
leak in, and two projects can act as two machines for the lock test.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

import psycopg

from kaiten_local.project import ScratchProject
from kaiten_sandbox import Sandbox

STATE_ID = "dev:tap-kaiten-to-target-postgres"
EL = ("tap-kaiten", "target-postgres")


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
    project: ScratchProject
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
