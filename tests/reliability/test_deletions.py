"""Deletions: a card Kaiten stops returning is soft-deleted by the next full sync, no sooner
wrongly, and archived cards are never taken for deleted."""

from __future__ import annotations

from reliability_kit import (
    EL,
    FULL_REFRESH,
    Background,
    assert_ok,
    assert_tables_equal_truth,
    finish,
    query,
    wait_until,
)

CHILDREN = ("card_location_history", "card_comments")


def wrongly_deleted(url: str, deleted: set[int]) -> list[tuple]:
    """Rows of cards that still exist but carry _sdc_deleted_at."""
    gone = list(deleted) or [-1]
    rows = query(
        url,
        "select 'cards', id from kaiten.cards where _sdc_deleted_at is not null and id <> all(%s)",
        (gone,),
    )
    for table in CHILDREN:
        if query(url, "select to_regclass(%s)", (f"kaiten.{table}",))[0][0] is None:
            continue
        rows += query(
            url,
            f"select '{table}', id from kaiten.{table} "
            "where _sdc_deleted_at is not null and card_id <> all(%s)",
            (gone,),
        )
    return rows


def test_deleted_cards_are_marked_by_the_next_full_sync_and_leave_the_marts(
    kaiten_sandbox_factory, make_pipeline, database_url
):
    """Deleted cards get _sdc_deleted_at from the next kaiten-full-sync (and leave the marts);
    archived cards don't; no live card is ever marked deleted, not even mid-run.

    Mutation tried (RELIABILITY_TAP_SOURCE): the cards' ACTIVATE_VERSION written before
    their records instead of after: the mid-run poll sees live cards marked deleted.
    """
    sandbox = kaiten_sandbox_factory(seed=21, cards=300, rate_limit=0)
    project = make_pipeline(sandbox)
    assert_ok(project.run("run", *EL))
    changes = sandbox.mutate(seed=3, delete=4, archive=6)
    deleted = set(changes["deleted"])
    assert deleted
    assert changes["archived"]

    sandbox.configure(latency_ms=10)  # a run long enough to be watched
    run = Background(project, "run", "--full-refresh", "kaiten-full-sync")
    seen_wrong: list[tuple] = []

    def watch() -> bool:
        seen_wrong.extend(wrongly_deleted(database_url, deleted))
        return False  # keep polling until the run ends

    wait_until(watch, run, timeout=600)
    code, _, err = finish(run)
    sandbox.configure(latency_ms=0)
    assert code == 0, err[-3000:]
    assert not seen_wrong, f"live rows marked deleted during the full sync: {seen_wrong[:5]}"

    truth = sandbox.truth()
    rows = dict(query(database_url, "select id, _sdc_deleted_at is not null from kaiten.cards"))
    assert {cid for cid in deleted if rows.get(cid)} == deleted, "deleted cards not marked"
    archived = {c["id"] for c in truth["cards"] if c["condition"] == 2}
    assert archived
    assert not {cid for cid in archived if rows.get(cid)}, "archived cards taken for deleted"
    assert_tables_equal_truth(database_url, truth, full=True)
    in_marts = {r[0] for r in query(database_url, "select card_id from kaiten_site.cards")}
    assert not deleted & in_marts, "deleted cards still in kaiten_site.cards"
    assert {c["id"] for c in truth["cards"]} <= in_marts


def test_syncs_with_nothing_deleted_delete_nothing(
    kaiten_sandbox_factory, make_pipeline, database_url
):
    """A full sync and an incremental run where nothing was deleted mark no row deleted,
    in any table (a per-card ACTIVATE_VERSION in an incremental run would wipe history).

    Mutation tried (RELIABILITY_TAP_SOURCE = tap a9bb5c0, the SDK's own ACTIVATE_VERSION at
    the start of every context): the incremental run marks 406 card_location_history
    rows of unchanged cards deleted; the test fails.
    """
    sandbox = kaiten_sandbox_factory(seed=22, cards=200, rate_limit=0)
    project = make_pipeline(sandbox)
    assert_ok(project.run("run", *EL))
    sandbox.mutate(seed=4, update=5, move=5, archive=3)
    assert_ok(project.run("run", *EL, env=FULL_REFRESH))
    sandbox.mutate(seed=5, update=5, move=5)
    assert_ok(project.run("run", *EL))

    for table in ("cards", "users", "tags", "boards", "columns", "lanes", *CHILDREN):
        marked = query(
            database_url,
            f"select count(*) from kaiten.{table} where _sdc_deleted_at is not null",
        )[0][0]
        assert marked == 0, f"{marked} rows of {table} marked deleted, none was"
    assert_tables_equal_truth(database_url, sandbox.truth())
