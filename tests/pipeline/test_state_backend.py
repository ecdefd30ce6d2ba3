"""The kaiten.sync_metadata state backend, through `meltano state` and through its API."""

from __future__ import annotations

import json

import psycopg
import pytest
from meltano.core.state_store import MeltanoState
from pipeline_helpers import assert_ok, query

from kaiten_state.backend import LOCK_KEY_SQL, PostgresStateStoreManager, SyncLockedError

STATE_ID = "prod:tap-kaiten-to-target-postgres"
BOOKMARK = {
    "singer_state": {
        "bookmarks": {
            "cards": {
                "partitions": [
                    {"context": {"condition": 1}, "replication_key": "updated",
                     "replication_key_value": "2026-05-30T12:40:40.259Z"},
                    {"context": {"condition": 2}, "replication_key": "updated",
                     "replication_key_value": "2026-05-28T11:25:08.688Z"},
                ]
            },
            "users": {},
        }
    }
}  # fmt: skip


@pytest.fixture
def state_project(project_factory, database_url):
    return project_factory(DATABASE_URL=database_url)


def last_json_line(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_meltano_state_commands_use_sync_metadata(state_project, database_url):
    assert_ok(state_project.run("state", "set", "--force", STATE_ID, json.dumps(BOOKMARK)))
    [(completed, partial)] = query(
        database_url,
        "select completed_state, partial_state from kaiten.sync_metadata where state_id = %s",
        (STATE_ID,),
    )
    assert completed == BOOKMARK
    assert partial == {}

    got = state_project.run("state", "get", STATE_ID)
    assert_ok(got)
    assert last_json_line(got.stdout) == BOOKMARK

    listed = state_project.run("state", "list", "--pattern", "prod:*")
    assert_ok(listed)
    assert STATE_ID in listed.stdout.split()
    assert "prod" not in state_project.run("state", "list", "--pattern", "dev:*").stdout

    assert_ok(state_project.run("state", "clear", "--force", STATE_ID))
    assert query(database_url, "select count(*) from kaiten.sync_metadata") == [(0,)]


def test_sync_streams_view_shows_each_partition_bookmark(database_url):
    with PostgresStateStoreManager(uri=database_url) as manager:
        manager.set(MeltanoState(STATE_ID, completed_state=BOOKMARK))
    rows = query(
        database_url,
        "select stream, partition, replication_key_value from kaiten.sync_streams order by 1, 3",
    )
    assert rows == [
        ("cards", {"condition": 2}, "2026-05-28T11:25:08.688Z"),
        ("cards", {"condition": 1}, "2026-05-30T12:40:40.259Z"),
        ("users", None, None),
    ]


def test_partial_state_is_merged_onto_the_complete_state(database_url):
    progress = {"singer_state": {"bookmarks": {"tags": {"replication_key_value": "x"}}}}
    with PostgresStateStoreManager(uri=database_url) as manager:
        manager.update(MeltanoState(STATE_ID, completed_state=BOOKMARK))
        manager.update(MeltanoState(STATE_ID, partial_state=progress))
        state = manager.get(STATE_ID)
    assert state is not None
    assert state.completed_state == BOOKMARK
    assert state.partial_state == progress
    merged = json.loads(state.json_merged())
    assert merged["singer_state"]["bookmarks"]["tags"] == {"replication_key_value": "x"}
    assert (
        merged["singer_state"]["bookmarks"]["cards"]
        == BOOKMARK["singer_state"]["bookmarks"]["cards"]
    )


def test_equivalent_state_is_not_rewritten(database_url):
    """A run that fails before reading anything echoes the old state; updated_at must not move."""
    with PostgresStateStoreManager(uri=database_url) as manager:
        manager.update(MeltanoState(STATE_ID, completed_state=BOOKMARK))
        [(first_written,)] = query(database_url, "select updated_at from kaiten.sync_metadata")
        echoed = {
            "singer_state": {"bookmarks": {"cards": BOOKMARK["singer_state"]["bookmarks"]["cards"]}}
        }
        manager.update(MeltanoState(STATE_ID, completed_state=echoed))
        assert query(database_url, "select updated_at from kaiten.sync_metadata") == [
            (first_written,)
        ]
        newer = json.loads(json.dumps(BOOKMARK))
        newer["singer_state"]["bookmarks"]["users"] = {"replication_key_value": "y"}
        manager.update(MeltanoState(STATE_ID, completed_state=newer))
    [(stored, written)] = query(
        database_url, "select completed_state, updated_at from kaiten.sync_metadata"
    )
    assert stored == newer
    assert written > first_written


def test_writes_are_refused_while_a_run_holds_the_lock(state_project, database_url):
    with PostgresStateStoreManager(uri=database_url) as manager:
        manager.set(MeltanoState(STATE_ID, completed_state=BOOKMARK))
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute(f"select pg_advisory_lock({LOCK_KEY_SQL})", (STATE_ID,))
        refused = state_project.run(
            "state", "clear", "--force", STATE_ID,
            env={"MELTANO_STATE_BACKEND_LOCK_TIMEOUT_SECONDS": "1"},
        )  # fmt: skip
        with (
            PostgresStateStoreManager(uri=database_url, lock_timeout_seconds=1) as manager,
            pytest.raises(SyncLockedError, match="probably running"),
        ):
            manager.update(MeltanoState(STATE_ID, completed_state={"singer_state": {}}))
    assert refused.returncode != 0
    assert f"State '{STATE_ID}' is locked by" in refused.stderr
    # Neither write happened.
    assert query(database_url, "select completed_state from kaiten.sync_metadata") == [(BOOKMARK,)]


def test_glob_patterns_treat_like_wildcards_literally(database_url):
    with PostgresStateStoreManager(uri=database_url) as manager:
        for state_id in ("dev:a_b", "dev:axb", "dev:a%b"):
            manager.set(MeltanoState(state_id, completed_state={"singer_state": {}}))
        assert list(manager.get_state_ids("dev:a_b")) == ["dev:a_b"]
        assert list(manager.get_state_ids("dev:a%b")) == ["dev:a%b"]
        assert sorted(manager.get_state_ids("dev:a?b")) == ["dev:a%b", "dev:a_b", "dev:axb"]
        assert sorted(s.state_id for s in manager.get_all("dev:a*")) == [
            "dev:a%b",
            "dev:a_b",
            "dev:axb",
        ]
        assert manager.clear_all() == 3
        assert list(manager.get_state_ids()) == []


def test_unreachable_database_is_one_clear_line(project_factory):
    password = "Very-secret-9"
    project = project_factory(DATABASE_URL=f"postgresql://kaiten:{password}@127.0.0.1:9/kaiten")
    result = project.run("state", "list")
    assert result.returncode != 0
    assert "Cannot connect to PostgreSQL at DATABASE_URL (127.0.0.1:9/kaiten)" in result.stderr
    assert password not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_database_url_names_the_variable(project_factory):
    project = project_factory(DATABASE_URL="postgresql://u:p@host:notaport/db")
    result = project.run("state", "list")
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_orm_only_uri_parameter_is_named(project_factory):
    """Supabase URIs copied from a Prisma setup carry ?pgbouncer=true, which libpq rejects."""
    project = project_factory(DATABASE_URL="postgresql://u:Pw-123@127.0.0.1:9/db?pgbouncer=true")
    result = project.run("state", "list")
    assert result.returncode != 0
    assert (
        'DATABASE_URL is not a valid PostgreSQL URI (invalid URI query parameter: "pgbouncer")'
        in result.stderr
    )
    assert "Pw-123" not in result.stdout + result.stderr
