"""`meltano run tap-kaiten target-postgres` for real: the sandbox over HTTP into PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json

from pipeline_helpers import (
    STATE_ID,
    Synced,
    assert_ok,
    card_bookmarks,
    newest_update_by_condition,
    query,
)
from truth import assert_tables_equal_truth


def test_first_run_loads_the_whole_workspace(synced: Synced) -> None:
    """Every card (live and archived) and every entity, every value as the API returns it."""
    truth = synced.sandbox.truth()
    assert any(card["condition"] == 2 for card in truth["cards"]), "workspace needs archived cards"
    assert_tables_equal_truth(synced.url, truth)


def test_bookmark_is_in_meltano_state_and_sync_metadata(synced: Synced) -> None:
    expected = newest_update_by_condition(synced.sandbox.truth())

    result = synced.project.run("state", "get", STATE_ID)
    assert_ok(result)
    state = json.loads(result.stdout.strip().splitlines()[-1])
    assert card_bookmarks(state["singer_state"]) == expected

    [(stored, updated_at)] = query(
        synced.url,
        "select completed_state, updated_at from kaiten.sync_metadata where state_id = %s",
        (STATE_ID,),
    )
    assert stored["singer_state"] == state["singer_state"]
    assert dt.datetime.now(dt.UTC) - updated_at < dt.timedelta(minutes=30)
    rows = query(
        synced.url,
        "select (partition ->> 'condition')::int, replication_key_value from kaiten.sync_streams"
        " where state_id = %s and stream = 'cards'",
        (STATE_ID,),
    )
    assert dict(rows) == expected


def test_state_list_shows_the_job(synced: Synced) -> None:
    result = synced.project.run("state", "list")
    assert_ok(result)
    assert STATE_ID in result.stdout.split()


def test_loader_session_is_utc(synced: Synced) -> None:
    """Timestamps land as UTC wall time: the API's Z-suffixed values, unshifted."""
    card = max(synced.sandbox.truth()["cards"], key=lambda c: c["id"])
    [(loaded,)] = query(synced.url, "select updated from kaiten.cards where id = %s", (card["id"],))
    expected = dt.datetime.fromisoformat(card["updated"]).replace(tzinfo=None)
    assert loaded.replace(tzinfo=None) == expected
