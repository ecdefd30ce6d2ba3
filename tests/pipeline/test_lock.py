"""Two runs of the same job at once: the second is refused, the first finishes untouched."""

from __future__ import annotations

import json
import time

from pipeline_helpers import STATE_ID, assert_ok, card_bookmarks
from truth import assert_tables_equal_truth

from kaiten_state import sync_lock_held

REFUSAL = f"Another sync of '{STATE_ID}' is running"


def wait_for_lock(url: str, proc, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not sync_lock_held(url, STATE_ID):
        assert proc.poll() is None, (
            "the first run ended before it took the lock:\n" + proc.stderr.read()[-3000:]
        )
        assert time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.2)


def test_second_run_from_another_machine_is_refused(project_factory, sandbox, database_url):
    env = {
        "KAITEN_API_URL": sandbox.base_url,
        "KAITEN_API_TOKEN": sandbox.token,
        "DATABASE_URL": database_url,
        "TAP_KAITEN_REQUESTS_PER_SECOND": "1000",
    }
    # Two project directories = two machines: separate Meltano systemdbs, so Meltano's own
    # "already running" check (local to one systemdb) can't see the other run; only the
    # advisory lock in the shared database can.
    first_machine, second_machine = project_factory(**env), project_factory(**env)
    sandbox.configure(latency_ms=40)  # keeps the first run busy for a while

    first = first_machine.popen("run", "tap-kaiten", "target-postgres")
    try:
        wait_for_lock(database_url, first)
        second = second_machine.run("run", "tap-kaiten", "target-postgres", timeout=300)
        state_clear = second_machine.run(
            "state", "clear", "--force", STATE_ID,
            env={"MELTANO_STATE_BACKEND_LOCK_TIMEOUT_SECONDS": "1"},
        )  # fmt: skip
        _, first_err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()

    assert second.returncode != 0
    assert REFUSAL in second.stderr, second.stderr[-3000:]
    assert state_clear.returncode != 0
    assert "a sync of this job is probably running" in state_clear.stderr, state_clear.stderr[
        -3000:
    ]

    assert first.returncode == 0, first_err[-3000:]
    assert not sync_lock_held(database_url, STATE_ID), "the lock outlived the run"
    sandbox.configure(latency_ms=0)
    truth = sandbox.truth()
    assert_tables_equal_truth(database_url, truth)
    result = second_machine.run("state", "get", STATE_ID)
    assert_ok(result)
    bookmarks = card_bookmarks(json.loads(result.stdout.strip().splitlines()[-1])["singer_state"])
    assert bookmarks, "the first run's bookmarks are missing"


def test_lock_is_released_when_a_run_ends(project, database_url):
    assert_ok(project.run("run", "tap-kaiten", "target-postgres"))
    assert not sync_lock_held(database_url, STATE_ID)
    # and the next run of the same job goes ahead
    assert_ok(project.run("run", "tap-kaiten", "target-postgres"))
