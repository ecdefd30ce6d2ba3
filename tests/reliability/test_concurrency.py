"""Concurrency: two `kaiten-sync` runs started together; one runs, the other is refused."""

from __future__ import annotations

import json

import pytest
from reliability_kit import (
    STATE_ID,
    Background,
    assert_ok,
    assert_tables_equal_truth,
    card_bookmarks,
    committed_bookmarks,
    duplicate_keys,
    finish,
    why_it_failed,
)

from kaiten_state import sync_lock_held

REFUSALS = (f"Another sync of '{STATE_ID}' is running", "already running")


@pytest.mark.parametrize("machines", [1, 2], ids=["same-project", "two-machines"])
def test_two_syncs_started_together_one_runs_the_other_is_refused(
    kaiten_sandbox_factory, make_pipeline, database_url, machines
):
    """Both start in the same instant (two projects = two machines sharing the database).
    Exactly one exits 0; the other exits non-zero with one clear line; the state and the
    tables afterwards are those of one complete run.

    Mutation tried (tests/reliability/README.md): without the advisory lock in kaiten_state
    the two-machines case fails ("... both runs went ahead ..."); the same-project case
    still passes, refused by Meltano's own running-job check.
    """
    sandbox = kaiten_sandbox_factory(seed=81, cards=200, rate_limit=0)
    first = make_pipeline(sandbox)
    second = first if machines == 1 else make_pipeline(sandbox)
    # a first sync, so both contenders find state and run incrementally
    assert_ok(first.run("run", "tap-kaiten", "target-postgres"))
    sandbox.mutate(seed=9, update=30, move=10)
    sandbox.configure(latency_ms=30)  # each run lasts long enough to overlap the other

    runs = [Background(first, "run", "kaiten-sync"), Background(second, "run", "kaiten-sync")]
    results = [finish(run, timeout=900) for run in runs]
    sandbox.configure(latency_ms=0)

    codes = [code for code, _, _ in results]
    refused = [r for r in results if any(text in r[2] for text in REFUSALS)]
    assert refused, (
        f"neither run was refused (exit codes {codes}): both went ahead\n"
        + "\n---\n".join(why_it_failed(err) for _, _, err in results)
    )
    assert len(refused) == 1, f"both runs were refused (exit codes {codes})"
    [(refused_code, _, refused_err)] = refused
    [(ran_code, _, ran_err)] = [r for r in results if r is not refused[0]]
    assert refused_code != 0, "the refused run exited 0"
    assert ran_code == 0, "the run that went ahead failed:\n" + why_it_failed(ran_err)
    assert "Traceback" not in refused_err, refused_err[-3000:]
    assert not sync_lock_held(database_url, STATE_ID), "the lock outlived both runs"

    truth = sandbox.truth()
    assert_tables_equal_truth(database_url, truth)
    assert not duplicate_keys(database_url)
    newest: dict[int, str] = {}
    for card in truth["cards"]:
        newest[card["condition"]] = max(newest.get(card["condition"], ""), card["updated"])
    assert committed_bookmarks(database_url) == newest
    state = first.run("state", "get", STATE_ID)
    assert_ok(state)
    assert card_bookmarks(json.loads(state.stdout.strip().splitlines()[-1])["singer_state"]) == (
        newest
    )
