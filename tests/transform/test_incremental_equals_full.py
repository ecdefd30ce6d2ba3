"""An incremental sync followed by `dbt build` leaves the marts exactly as a full
sync into an empty database followed by `dbt build` does."""

from __future__ import annotations

from typing import Any

import pytest

# Columns that say when something was loaded or built, not what Kaiten holds.
LOAD_TIME_COLUMNS = {"loaded_at", "history_loaded_at", "built_at"}
COMPARED_MARTS = ("spaces", "boards", "board_columns", "cards", "card_column_durations")
KEYS = {
    "spaces": ("space_id",),
    "boards": ("board_id",),
    "board_columns": ("column_id",),
    "cards": ("card_id",),
    "card_column_durations": ("card_id", "column_id"),
}


def snapshot(pipeline, mart: str) -> dict[tuple, dict[str, Any]]:
    rows = pipeline.rows(f"select * from kaiten_site.{mart}")
    return {
        tuple(row[key] for key in KEYS[mart]): {
            column: value for column, value in row.items() if column not in LOAD_TIME_COLUMNS
        }
        for row in rows
    }


@pytest.fixture(scope="module")
def incremental_and_full(sandbox_factory, pipeline_factory):
    sandbox = sandbox_factory(seed=23, cards=300)
    incremental = pipeline_factory(sandbox)
    incremental.sync_and_build()
    before = snapshot(incremental, "card_column_durations")

    changed = sandbox.mutate(
        create=15, update=25, move=60, archive=12, unarchive=6, touch_same_ms=20, seed=5
    )
    # A second round moves some cards again (and maybe back), archives others.
    changed_again = sandbox.mutate(move=40, archive=5, seed=6)
    incremental.sync_and_build()

    full = pipeline_factory(sandbox)
    full.sync_and_build()
    return incremental, full, before, changed, changed_again


@pytest.mark.parametrize("mart", COMPARED_MARTS)
def test_incremental_sync_gives_the_same_mart_rows_as_a_full_sync(
    incremental_and_full, mart: str
) -> None:
    incremental, full, *_ = incremental_and_full
    got, expected = snapshot(incremental, mart), snapshot(full, mart)
    assert got.keys() == expected.keys()
    differing = [key for key in expected if got[key] != expected[key]]
    assert not differing, (
        f"{len(differing)} rows differ, e.g. {differing[0]}:\n"
        f"incremental {got[differing[0]]}\nfull        {expected[differing[0]]}"
    )


def test_the_changes_reached_the_marts(incremental_and_full) -> None:
    """Guards the comparison above: the second sync really changed the marts."""
    incremental, _, before, changed, changed_again = incremental_and_full
    after = snapshot(incremental, "card_column_durations")
    moved = set(changed["moved"]) | set(changed_again["moved"])
    assert {key for key in after if key not in before} & {(c, k) for c, k in after if c in moved}
    cards = {row["card_id"]: row for row in incremental.rows("select * from kaiten_site.cards")}
    assert set(changed["created"]) <= cards.keys()
    archived_now = (set(changed["archived"]) | set(changed_again["archived"])) - set(
        changed["unarchived"]
    )
    assert all(cards[card_id]["status"] == "archived" for card_id in archived_now)
