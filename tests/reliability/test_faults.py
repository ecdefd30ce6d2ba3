"""Faults during a full `meltano run`: errors, 429 bursts, slow answers, drops, empty bodies."""

from __future__ import annotations

import email.utils
import json
from typing import Any

from reliability_kit import (
    EL,
    STATE_ID,
    assert_ok,
    assert_tables_equal_truth,
    committed_bookmarks,
    duplicate_keys,
    query,
)

RATE_LIMIT = 40  # requests per second the tap is told to keep to (the sandbox measures it)
# The sandbox stamps times with time.time(), the tap sleeps on time.monotonic().
CLOCK_SLACK = 0.01
# Less than one slot at RATE_LIMIT (25 ms): room for a request already on its way when the
# 429 was answered, not for one sent after it.
IN_FLIGHT_GRACE = 0.02


def expected_wait(entry: dict[str, Any]) -> tuple[float, str]:
    """Earliest moment the next request may follow a 429, and the rule that says so.

    Seconds N: N (0 counts as 1, so a client can't hammer the API); an HTTP date: that
    moment, at least 1 s on; missing: a whole second, the length of Kaiten's sliding
    window (Kaiten itself always sends Retry-After with its 429s).
    """
    answered, header = entry["answered_at"], entry["retry_after"]
    if header is None:
        return answered + 1.0, "no Retry-After: at least 1 s"
    try:
        return answered + max(float(header), 1.0), f"Retry-After {header}"
    except ValueError:
        until = email.utils.parsedate_to_datetime(header).timestamp()
        return max(until, answered + 1.0), f"Retry-After {header} (date)"


def retry_after_ignored(log: list[dict[str, Any]]) -> list[str]:
    """429s followed by requests sooner than their Retry-After allows.

    Several requests may be in flight: one the tap sent before the 429 reached it can
    arrive just after the 429 was answered. Arrivals within IN_FLIGHT_GRACE of the answer
    are taken as those; the tap sends at most one request per slot (1 / RATE_LIMIT s),
    so a tap that ignored Retry-After would still show a request after the grace.
    """
    problems = []
    arrivals = sorted(log, key=lambda e: e["at"])
    for entry in log:
        if entry["status"] != 429:
            continue
        earliest, rule = expected_wait(entry)
        early = [
            e for e in arrivals
            if entry["answered_at"] + IN_FLIGHT_GRACE < e["at"] < earliest - CLOCK_SLACK
        ]  # fmt: skip
        if early:
            first = early[0]
            problems.append(
                f"429 on {entry['path']} ({rule}): {len(early)} request(s) sent before it "
                f"allowed, the first ({first['path']}) {first['at'] - entry['answered_at']:.3f} s "
                f"after it, {earliest - first['at']:.3f} s too soon"
            )
    return problems


def test_full_run_under_random_faults_equals_truth_within_the_rate_limit(
    kaiten_sandbox_factory, make_pipeline, database_url
):
    """10 % 500/502/503, 2 % dropped connections, 5 % empty 200 bodies, slow answers, and
    429 bursts with Retry-After as seconds, an HTTP date, 0 and missing: the run completes,
    every table equals the truth, no 1-second window ever held more than the limit, and
    no request followed a 429 sooner than its Retry-After said.

    Mutations tried (RELIABILITY_TAP_SOURCE, see tests/reliability/README.md): MAX_ATTEMPTS
    = 1 in the tap's client (the run fails on the first scripted 429); the client ignoring
    Retry-After (fails on "... request(s) sent before it allowed ... too soon").
    """
    sandbox = kaiten_sandbox_factory(seed=11, cards=150, rate_limit=RATE_LIMIT)
    project = make_pipeline(sandbox, TAP_KAITEN_REQUESTS_PER_SECOND=str(RATE_LIMIT))
    sandbox.configure(
        fault_rate=0.10,
        drop_rate=0.02,
        empty_body_rate=0.05,
        latency_ms=5,
        inject=[
            {"count": 3, "status": 429, "headers": {"Retry-After": "2"}, "path": "/cards"},
            # an HTTP date 3 s after the answer (2-3 s: dates have whole seconds)
            {"count": 2, "status": 429, "retry_after_date_in": 3, "path": "/users"},
            {"count": 2, "status": 429, "headers": {"Retry-After": "0"}, "path": "/tags"},
            {"count": 2, "status": 429, "path": "/card-types"},
            {"count": 1, "latency_ms": 1500, "path": "/spaces"},
        ],
    )
    sandbox.reset_stats()

    result = project.run("run", *EL)

    assert_ok(result)
    stats = sandbox.stats()
    log = sandbox.requests()
    sandbox.configure(fault_rate=0, drop_rate=0, empty_body_rate=0, latency_ms=0)
    assert_tables_equal_truth(database_url, sandbox.truth(), full=True)
    assert not duplicate_keys(database_url)
    by_status = stats["responses_by_status"]
    # the faults really happened: otherwise this test proves nothing
    assert sum(by_status.get(s, 0) for s in ("500", "502", "503")) >= 10, by_status
    assert sum(stats["faults_injected"].values()) >= 20, stats
    assert stats["max_requests_in_any_1s"] <= RATE_LIMIT, stats
    # every 429 was a scripted one: a 429 the tap caused itself would mean it ignored the
    # limit it was given (the sandbox enforces the same limit)
    assert stats["rate_limited"] == by_status["429"] == 9, stats
    served = [e["retry_after"] for e in log if e["status"] == 429]
    dated = [value for value in served if value and value.endswith("GMT")]
    assert len(dated) == 2, served
    assert sorted(set(served) - set(dated), key=str) == ["0", "2", None], served
    ignored = retry_after_ignored(log)
    assert not ignored, "Retry-After not obeyed:\n" + "\n".join(ignored)


def test_faults_beyond_the_retry_budget_fail_clearly_and_the_next_run_completes(
    kaiten_sandbox_factory, make_pipeline, database_url
):
    """Every retry of one card's history answered 503: the run stops with one clear line and
    a non-zero exit; the cards already loaded keep their bookmark; the next run finishes.

    Mutation tried (tests/reliability/README.md): the card child streams swallowing the
    exhausted-retry error: fails on "the run exited 0 ...".
    """
    sandbox = kaiten_sandbox_factory(seed=12, cards=300, rate_limit=0)
    project = make_pipeline(sandbox)
    assert_ok(project.run("run", *EL))
    first_marks = committed_bookmarks(database_url)

    changed = sandbox.mutate(seed=5, update=40)["updated"]
    cards = {c["id"]: c for c in sandbox.truth("cards")["cards"]}
    by_update = sorted(changed, key=lambda cid: (cards[cid]["updated"], cid))
    victim = by_update[len(by_update) // 2]  # half of the changed cards come before it
    # 8 attempts is the tap's budget; Retry-After 0 keeps each wait at the 1 s floor.
    sandbox.configure(
        inject=[
            {
                "count": 8,
                "status": 503,
                "headers": {"Retry-After": "0"},
                "path": f"/cards/{victim}/location-history",
            }
        ]
    )

    failed = project.run("run", *EL)

    assert failed.returncode != 0, (
        f"the run exited 0 although every attempt at card {victim}'s history failed: "
        "the exhausted retries were swallowed"
    )
    lines = [
        line for line in failed.stderr.splitlines() if "Kaiten API Error" in line or "503" in line
    ]
    assert lines, failed.stderr[-3000:]
    # progress before the failure is kept: the live bookmark moved past the first run's
    saved = committed_bookmarks(database_url)
    assert saved.get(1, "") > first_marks[1], (first_marks, saved)
    assert saved[1] < cards[victim]["updated"], "the bookmark passed a card that was never loaded"

    started = query(database_url, "select now()")[0][0]
    assert_ok(project.run("run", *EL))
    assert_tables_equal_truth(database_url, sandbox.truth())
    assert not duplicate_keys(database_url)
    reread = {
        r[0]
        for r in query(
            database_url,
            "select id from kaiten.cards where _sdc_batched_at >= %s",
            (started.replace(tzinfo=None),),
        )
    }
    before_victim = set(by_update[: len(by_update) // 2]) - {victim}
    # resumed from the saved state: the cards loaded before the failure are not read again
    assert (
        not (before_victim - {c for c in before_victim if cards[c]["updated"] >= saved[1]}) & reread
    )
    state = project.run("state", "get", STATE_ID)
    assert_ok(state)
    assert json.loads(state.stdout.strip().splitlines()[-1])["singer_state"]
