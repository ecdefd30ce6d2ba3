"""Second runs: incremental catch-up after changes, and the nightly full refresh."""

from __future__ import annotations

import json

from pipeline_helpers import (
    EL,
    STATE_ID,
    assert_ok,
    card_bookmarks,
    newest_update_by_condition,
    query,
)
from truth import assert_tables_equal_truth

from kaiten_local.project import ScratchProject

# One of every kind of change the API can show, bulk edits sharing a millisecond included.
CHANGES = {"create": 6, "update": 6, "move": 6, "archive": 4, "touch_same_ms": 5}


def db_now(url: str):
    """The database's UTC wall clock, comparable with the loader's _sdc_batched_at."""
    [(now,)] = query(url, "select (now() at time zone 'utc')::timestamp")
    return now


def reloaded_card_ids(url: str, since) -> set[int]:
    return {
        row[0]
        for row in query(url, "select id from kaiten.cards where _sdc_batched_at >= %s", (since,))
    }


def bookmarks(project: ScratchProject) -> dict[int, str]:
    result = project.run("state", "get", STATE_ID)
    assert_ok(result)
    return card_bookmarks(json.loads(result.stdout.strip().splitlines()[-1])["singer_state"])


def test_incremental_run_catches_up_and_reads_only_changed_cards(project, sandbox, database_url):
    assert_ok(project.run("run", *EL))
    before = bookmarks(project)
    cards_before = {card["id"]: card for card in sandbox.truth()["cards"]}

    changed = sandbox.mutate(**CHANGES)
    changed_ids = {cid for kind, ids in changed.items() if kind != "deleted" for cid in ids}
    assert len(changed["touched"]) == CHANGES["touch_same_ms"]
    second_started = db_now(database_url)
    assert_ok(project.run("run", *EL))

    truth = sandbox.truth()
    assert_tables_equal_truth(database_url, truth)
    assert bookmarks(project) == newest_update_by_condition(truth)

    reloaded = reloaded_card_ids(database_url, second_started)
    assert changed_ids <= reloaded, f"changed cards not re-read: {sorted(changed_ids - reloaded)}"
    # Inclusive updated_after re-reads the cards sitting exactly on the old bookmark; nothing else.
    on_boundary = {
        cid for cid, card in cards_before.items() if card["updated"] in set(before.values())
    }
    unexpected = reloaded - changed_ids - on_boundary
    assert not unexpected, f"unchanged cards were read again: {sorted(unexpected)[:10]}"


def test_full_refresh_rereads_everything_into_the_same_tables(project, sandbox, database_url):
    assert_ok(project.run("run", *EL))
    sandbox.mutate(**CHANGES)
    full_started = db_now(database_url)

    # What the nightly schedule sets for the kaiten-full-sync job (test_jobs.py checks that).
    assert_ok(project.run("run", *EL, env={"MELTANO_RUN_FULL_REFRESH": "true"}))

    truth = sandbox.truth()
    assert_tables_equal_truth(database_url, truth)
    assert reloaded_card_ids(database_url, full_started) == {card["id"] for card in truth["cards"]}
    assert bookmarks(project) == newest_update_by_condition(truth)
