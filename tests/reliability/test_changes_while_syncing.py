"""Changes while syncing: cards created, updated, moved and archived while the tap pages,
and tie groups of one `updated` millisecond that straddle a page boundary."""

from __future__ import annotations

import threading

from reliability_kit import (
    EL,
    Background,
    assert_ok,
    assert_tables_equal_truth,
    committed_bookmarks,
    duplicate_keys,
    finish_within_card_budget,
    run_with_card_request_budget,
    wait_until,
    why_it_failed,
)

# /cards requests a run may make while a writer changes cards all along (about 5 are
# needed): a run that reads what changed after its start never ends, and fails on this
# instead of a timeout.
CHASING_BUDGET = 30


def test_cards_changed_while_the_tap_pages_are_all_loaded_by_the_next_run(
    kaiten_sandbox_factory, make_pipeline, database_url
):
    """Mutations land between pages (the sandbox's mutate_while_paging and a writer thread);
    a 150-card group shares one millisecond across page boundaries (page size 100). After
    the run, the bookmark never skips a card; after the next run the tables equal the truth.

    Mutation tried (tests/reliability/README.md): no `updated_before` upper bound in
    CardsStream.get_url_params: the run chases the writer's edits and fails on the /cards
    request budget (it used to hang until the 600 s timeout).
    """
    sandbox = kaiten_sandbox_factory(seed=41, cards=600, rate_limit=0)
    project = make_pipeline(sandbox)
    assert_ok(project.run("run", *EL))

    # Two tie groups wider than a page, both after the bookmark: one of live cards and,
    # through archiving in one call, more cards sharing fresh milliseconds.
    sandbox.mutate(seed=1, touch_same_ms=150)
    sandbox.mutate(seed=2, update=120)
    sandbox.configure(mutate_while_paging=True, latency_ms=15)
    stop = threading.Event()
    rounds = []

    def writer() -> None:
        seed = 100
        while not stop.wait(0.05):
            seed += 1
            rounds.append(
                sandbox.mutate(seed=seed, create=1, update=3, move=2, archive=1, touch_same_ms=3)
            )

    run = Background(project, "run", *EL, sandbox=sandbox)
    thread = threading.Thread(target=writer, daemon=True)
    # start writing once the tap is reading cards, so changes land mid-paging
    wait_until(
        lambda: sandbox.stats()["requests_by_path"].get("/api/latest/cards", 0) > 0, run, 300
    )
    thread.start()
    try:
        code, _, err = finish_within_card_budget(run, sandbox, CHASING_BUDGET)
    finally:
        stop.set()
        thread.join()
    sandbox.configure(mutate_while_paging=False, latency_ms=0)
    assert code == 0, err[-3000:]
    assert len(rounds) >= 3, "the writer never got to change anything mid-run"
    assert not duplicate_keys(database_url)

    assert_ok(project.run("run", *EL))
    truth = sandbox.truth()
    assert_tables_equal_truth(database_url, truth)
    newest = {}
    for card in truth["cards"]:
        newest[card["condition"]] = max(newest.get(card["condition"], ""), card["updated"])
    assert committed_bookmarks(database_url) == newest


def test_tie_group_on_the_bookmark_is_not_skipped_by_the_next_run(
    kaiten_sandbox_factory, make_pipeline, database_url
):
    """Cards that share the bookmark's millisecond but were not loaded yet (a bulk edit
    stamped in the same ms) are picked up: the bookmark keeps (updated, id), not just updated.

    Mutations tried (RELIABILITY_TAP_SOURCE, tests/reliability/README.md): a tie group
    re-asked instead of walked by offset (the SDK stops the run: "Loop detected in
    pagination"); re-anchored on the next millisecond (pages in circles: fails on the
    /cards request budget in seconds); re-anchored past it (fails naming the missing ids).
    """
    sandbox = kaiten_sandbox_factory(seed=42, cards=300, rate_limit=0)
    project = make_pipeline(sandbox)
    # Pages of 100 overlapping by 10 take 4 requests for 300 cards, plus one per partition
    # to see the end: 20 is generous, and a tap paging in circles passes it at once.
    budget = 20
    sandbox.mutate(seed=7, touch_same_ms=250)  # one ms holds most cards: several pages
    code, _, err = run_with_card_request_budget(project, sandbox, budget, "run", *EL)
    assert code == 0, why_it_failed(err)
    assert_tables_equal_truth(database_url, sandbox.truth())
    sandbox.mutate(seed=8, touch_same_ms=40, update=10)
    code, _, err = run_with_card_request_budget(project, sandbox, budget, "run", *EL)
    assert code == 0, why_it_failed(err)
    assert_tables_equal_truth(database_url, sandbox.truth())
