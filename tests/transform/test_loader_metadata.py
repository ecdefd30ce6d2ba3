"""The loader's metadata columns drive the transform: rows it soft-deleted
(`_sdc_deleted_at`) vanish from every mart, incremental marts pick up renamed
boards and columns for cards that did not change, and source freshness is
checked on `_sdc_batched_at` with configurable thresholds."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def pipeline(sandbox_factory, pipeline_factory):
    sandbox = sandbox_factory(seed=31, cards=120)
    sandbox.mutate(move=40, seed=3)
    pipeline = pipeline_factory(sandbox)
    pipeline.sync_and_build()
    return pipeline


def test_rows_soft_deleted_by_the_loader_leave_the_marts(pipeline) -> None:
    card = pipeline.rows(
        """
        select card_id, board_id, status
        from kaiten_site.cards
        where card_id in (select card_id from kaiten_site.card_column_durations)
        order by card_id
        limit 1
        """
    )[0]
    board_before = pipeline.rows(
        "select card_count from kaiten_site.boards where board_id = %s", (card["board_id"],)
    )[0]["card_count"]

    # What target-postgres does to a row a full-table sync no longer sees.
    pipeline.execute(
        "update kaiten.cards set _sdc_deleted_at = now() where id = %s", (card["card_id"],)
    )
    pipeline.dbt("build")

    assert not pipeline.rows(
        "select 1 from kaiten_site.cards where card_id = %s", (card["card_id"],)
    )
    assert not pipeline.rows(
        "select 1 from kaiten_site.card_column_durations where card_id = %s", (card["card_id"],)
    )
    board_after = pipeline.rows(
        "select card_count from kaiten_site.boards where board_id = %s", (card["board_id"],)
    )[0]["card_count"]
    assert board_after == board_before - 1


def test_renames_reach_cards_that_did_not_change(pipeline) -> None:
    """Only boards and columns changed: the incremental marts still show the new names."""
    board = pipeline.rows(
        "select board_id, count(*) as cards from kaiten_site.cards"
        " group by board_id order by cards desc limit 1"
    )[0]
    column = pipeline.rows(
        "select column_id from kaiten_site.card_column_durations"
        " group by column_id order by count(*) desc limit 1"
    )[0]
    pipeline.execute(
        "update kaiten.boards set title = 'Переименована 🚀' where id = %s", (board["board_id"],)
    )
    pipeline.execute(
        "update kaiten.columns set title = 'Новое имя' where id = %s", (column["column_id"],)
    )
    pipeline.dbt("build")

    titles = pipeline.rows(
        "select distinct board_title from kaiten_site.cards where board_id = %s",
        (board["board_id"],),
    )
    assert titles == [{"board_title": "Переименована 🚀"}]
    column_titles = pipeline.rows(
        "select distinct column_title from kaiten_site.card_column_durations where column_id = %s",
        (column["column_id"],),
    )
    assert column_titles == [{"column_title": "Новое имя"}]


def test_source_freshness_follows_the_loaders_batch_time(pipeline) -> None:
    # Just loaded: fresh.
    pipeline.dbt("source", "freshness")

    # Loaded 3 days ago: past the default error threshold (24 h) for cards...
    pipeline.execute("update kaiten.cards set _sdc_batched_at = now() - interval '3 days'")
    stale = pipeline.meltano_result("invoke", "dbt-postgres", "source", "freshness")
    assert stale.returncode != 0
    assert "kaiten.cards" in stale.stdout + stale.stderr

    # ...and fine again once the threshold is raised for a slower schedule.
    pipeline.dbt(
        "source",
        "freshness",
        "--vars",
        "{freshness_warn_after_hours: 96, freshness_error_after_hours: 100}",
    )
