"""Crash and resume: SIGKILL the tap, the target or Meltano itself at random points.

After each kill the stored bookmark must not promise a card that is not committed, and a
normal rerun must leave the tables equal to the truth with every primary key once.
"""

from __future__ import annotations

import random
import signal
import time

import psutil
from reliability_kit import (
    EL,
    Background,
    assert_ok,
    assert_tables_equal_truth,
    bookmark_behind_committed_cards,
    committed_positions,
    duplicate_keys,
    finish,
    plugin_processes,
    query,
    stored_state,
    wait_until,
)

SEED = 20261204
TRIALS = 10
POINTS = ("mid_page", "batch_written", "state_saved")
# --force: after a trial that killed Meltano itself, its systemdb calls that run "running"
# for 5 minutes. The PostgreSQL advisory lock (kaiten_state) still keeps runs apart.
RUN = ("run", "--force", *EL)


def state_version(url: str) -> object:
    row = stored_state(url)
    return None if row is None else row.get("updated_at")


def rows_loaded_since(url: str, since) -> int:
    if query(url, "select to_regclass('kaiten.cards')")[0][0] is None:
        return 0
    return query(url, "select count(*) from kaiten.cards where _sdc_batched_at >= %s", (since,))[0][
        0
    ]


def kill_tree(run, victim: str) -> str:
    """SIGKILL one process of the run; returns what was killed."""
    procs = plugin_processes(run)
    target = procs.get(victim)
    if target is None:  # that plugin already ended: kill Meltano itself
        target, victim = psutil.Process(run.pid), "meltano"
    try:
        target.send_signal(signal.SIGKILL)
    except psutil.NoSuchProcess:
        return f"{victim} (already gone)"
    return victim


def test_randomized_sigkill_trials_lose_and_duplicate_nothing(
    kaiten_sandbox_factory, make_pipeline, database_url
):
    """Ten seeded trials: kill tap, target or Meltano mid-page, after a batch was written
    but before state was saved, or right after state was saved; then rerun normally.

    Mutation tried (tests/reliability/README.md): the tap moving its bookmark (`updated`,
    `last_id`) to a card before emitting it; a tap kill then leaves the stored position
    ahead of the table and a trial fails on "bookmark ahead of committed data".
    """
    rng = random.Random(SEED)
    sandbox = kaiten_sandbox_factory(seed=31, cards=200, rate_limit=0)
    # Small loader batches: rows reach the table long before the run's state does.
    project = make_pipeline(sandbox, TARGET_POSTGRES_BATCH_SIZE_ROWS="15")
    assert_ok(project.run("run", *EL))
    log = []

    for trial in range(TRIALS):
        point = POINTS[trial % len(POINTS)] if trial < len(POINTS) else rng.choice(POINTS)
        victim = rng.choice(("tap", "target"))
        trial_started = time.monotonic()
        sandbox.mutate(
            seed=trial,
            create=rng.randint(0, 8),
            update=rng.randint(5, 60),
            move=rng.randint(0, 20),
            archive=rng.randint(0, 5),
            touch_same_ms=rng.randint(0, 30),
        )
        before = sandbox.truth("cards")["cards"]
        sandbox.configure(latency_ms=rng.choice((2, 5, 10)))
        started = query(database_url, "select clock_timestamp()::timestamp")[0][0]
        state_before = state_version(database_url)
        cards_requests = sandbox.stats()["requests_by_path"].get("/api/latest/cards", 0)
        run = Background(project, *RUN)

        if point == "mid_page":
            # an incremental run may ask /cards only once per partition
            nth = rng.randint(1, 2)

            def trigger(nth=nth, base=cards_requests) -> bool:
                seen = sandbox.stats()["requests_by_path"].get("/api/latest/cards", 0)
                return seen - base >= nth

        elif point == "batch_written":

            def trigger(started=started, state_before=state_before) -> bool:
                return (
                    rows_loaded_since(database_url, started) > 0
                    and state_version(database_url) == state_before
                )

        else:

            def trigger(state_before=state_before) -> bool:
                return state_version(database_url) != state_before

        fired = wait_until(trigger, run, timeout=300)
        killed = kill_tree(run, victim) if fired else "nothing (run ended first)"
        code, _, _ = finish(run)
        log.append(
            f"trial {trial}: {point}, killed {killed}, exit {code} "
            f"({time.monotonic() - trial_started:.0f} s into the trial)"
        )
        sandbox.configure(latency_ms=0)

        behind = bookmark_behind_committed_cards(
            database_url, before, committed_positions(database_url)
        )
        assert not behind, f"{log[-1]}: bookmark ahead of committed data:\n" + "\n".join(behind[:5])
        assert not duplicate_keys(database_url), log[-1]

        if killed == "meltano":
            # Meltano's own record of the killed run says "running" until it goes stale
            # (5 min) unless it got to close it: an immediate plain rerun is then refused,
            # with a clear message.
            plain = project.run("run", *EL)
            if plain.returncode != 0:
                assert "is already running" in plain.stderr, f"{log[-1]}\n{plain.stderr[-3000:]}"
        rerun = project.run(*RUN)
        assert rerun.returncode == 0, f"{log[-1]}\n{rerun.stderr[-3000:]}"
        assert not duplicate_keys(database_url), log[-1]
        assert_tables_equal_truth(database_url, sandbox.truth())
        log[-1] += f", rerun done at {time.monotonic() - trial_started:.0f} s"

    # the trials really killed something at each kind of point
    killed_points = {line.split(",")[0].split(": ")[1] for line in log if "nothing" not in line}
    assert killed_points == set(POINTS), "\n".join(log)
    print("\n".join(log))  # shown with -s: what each trial did
