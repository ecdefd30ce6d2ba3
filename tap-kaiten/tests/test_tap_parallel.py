"""Requests in flight together (max_parallel_requests): the same run as one at a time.

Every test runs the tap against the sandbox over HTTP with answers slowed down, so that
requests really overlap, and compares with the sandbox's truth and with a sequential run
(max_parallel_requests = 1).
"""

from __future__ import annotations

import copy
import typing as t

import pytest
from kaiten_tap_helpers import CollectingWriter, base_config, catalog_selecting, result_of, sync
from singer_sdk.exceptions import RetriableAPIError

from tap_kaiten.client import MAX_ATTEMPTS, KaitenStream
from tap_kaiten.tap import TapKaiten

if t.TYPE_CHECKING:
    from kaiten_sandbox import Sandbox
    from kaiten_tap_helpers import SyncResult


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr(KaitenStream, "retry_base_seconds", 0.01)
    monkeypatch.setattr(KaitenStream, "retry_cap_seconds", 0.05)


def comparable(messages: list[dict]) -> list[dict]:
    """Messages without what differs between any two runs (extraction time, sync start)."""
    out = []
    for message in messages:
        message = copy.deepcopy(message)
        message.pop("time_extracted", None)
        message.pop("version", None)
        if message["type"] == "STATE":
            cards = message["value"].get("bookmarks", {}).get("cards", {})
            cards.pop("replication_key_signpost", None)
            for partition in cards.get("partitions", []):
                partition.pop("replication_key_signpost", None)
        out.append(message)
    return out


def most_in_flight(log: list[dict]) -> int:
    """The most requests the sandbox was handling at one moment (arrival to answer)."""
    events = sorted(
        [(entry["at"], 1) for entry in log] + [(entry["answered_at"], -1) for entry in log],
        key=lambda event: (event[0], event[1]),
    )
    current = most = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


def requests_to(log: list[dict], suffix: str) -> list[str]:
    return [entry["path"] for entry in log if entry["path"].endswith(suffix)]


def sync_until_error(
    config: dict, streams: list[str] | None = None
) -> tuple[SyncResult, Exception]:
    writer = CollectingWriter()
    tap = TapKaiten(
        config=dict(config), catalog=catalog_selecting(config, streams), message_writer=writer
    )
    with pytest.raises(Exception) as raised:  # noqa: PT011  (compared with the sequential run)
        tap.sync_all()
    return result_of(writer.messages), raised.value


def truth_ids(sandbox: Sandbox, stream: str) -> list:
    return sorted(row["id"] for row in sandbox.truth(stream)[stream])


def test_parallel_run_emits_the_sequential_runs_messages_in_the_same_order(
    kaiten_sandbox_factory,
):
    # 250 live cards (three /cards pages, read ahead) and the archived ones; uneven answer
    # times so that answers come back out of order.
    sandbox = kaiten_sandbox_factory(seed=7, cards=300, rate_limit=0)
    sandbox.configure(
        latency_ms=3,
        inject=[{"count": 40, "path": "/location-history", "latency_ms": 25}],
    )
    parallel = sync(base_config(sandbox, max_parallel_requests=8))
    overlapped = most_in_flight(sandbox.requests())
    sandbox.configure(inject=[])
    sandbox.reset_stats()
    sequential = sync(base_config(sandbox, max_parallel_requests=1))

    assert overlapped > 1, "the parallel run never had two requests in flight"
    assert most_in_flight(sandbox.requests()) == 1, "max_parallel_requests=1 overlapped"
    assert comparable(parallel.messages) == comparable(sequential.messages)
    for stream in ("cards", "card_location_history", "card_comments"):
        assert sorted(parallel.ids(stream)) == truth_ids(sandbox, stream), stream
    truth_cards = {card["id"]: card for card in sandbox.truth("cards")["cards"]}
    for card in parallel.records["cards"]:
        assert card["checklists"] == truth_cards[card["id"]]["checklists"], card["id"]


def test_requests_overlap_within_the_rate_limit_and_none_is_wasted(kaiten_sandbox_factory):
    # 40 ms answers at 50/s: one at a time this reaches ~20/s; together they keep the pace
    # without a single 429 from the limiting sandbox.
    sandbox = kaiten_sandbox_factory(seed=8, cards=150, rate_limit=50)
    sandbox.configure(latency_ms=40)
    sandbox.reset_stats()

    result = sync(base_config(sandbox, requests_per_second=50, max_parallel_requests=8))

    stats = sandbox.stats()
    log = sandbox.requests()
    assert most_in_flight(log) > 1
    assert stats["rate_limited"] == 0, stats["responses_by_status"]
    assert stats["max_requests_in_any_1s"] <= 50
    cards = sandbox.truth("cards")["cards"]
    assert sorted(result.ids("cards")) == sorted(card["id"] for card in cards)
    # Exactly the requests a sequential run makes: one history per card, comments and the
    # full card only where the card has some, each once.
    history = requests_to(log, "/location-history")
    comments = requests_to(log, "/comments")
    full_cards = [e["path"] for e in log if e["path"].rsplit("/", 1)[-1].isdigit()]
    assert len(history) == len(set(history)) == len(cards)
    assert len(comments) == len(set(comments)) == sum(1 for c in cards if c["comments_total"])
    assert len(full_cards) == len(set(full_cards)) == sum(1 for c in cards if c["checklists_total"])


def test_nothing_is_requested_for_a_deselected_child_stream(kaiten_sandbox_factory):
    sandbox = kaiten_sandbox_factory(seed=9, cards=150, rate_limit=0)
    sandbox.configure(latency_ms=2)
    config = base_config(sandbox, max_parallel_requests=8, include_checklists=False)

    result = sync(config, streams=["cards", "card_location_history"])

    log = sandbox.requests()
    assert not requests_to(log, "/comments")
    assert not [e for e in log if e["path"].rsplit("/", 1)[-1].isdigit()]
    assert len(requests_to(log, "/location-history")) == len(result.records["cards"]) == 150
    assert not result.records["card_comments"]


def test_a_child_request_failing_after_its_retries_fails_the_run_as_one_at_a_time(
    kaiten_sandbox_factory, fast_retries
):
    sandbox = kaiten_sandbox_factory(seed=10, cards=300, rate_limit=0)
    live = sorted(
        (c for c in sandbox.truth("cards")["cards"] if c["condition"] == 1),
        key=lambda c: (c["updated"], c["id"]),
    )
    victim = live[130]["id"]  # on the second page: read ahead while the first is handed on
    failing = {"count": 100, "status": 503, "path": f"/cards/{victim}/location-history"}
    outcomes = {}
    for parallel in (8, 1):
        sandbox.configure(latency_ms=2, inject=[failing])
        sandbox.reset_stats()
        result, error = sync_until_error(base_config(sandbox, max_parallel_requests=parallel))
        attempts = requests_to(sandbox.requests(), f"/cards/{victim}/location-history")
        outcomes[parallel] = (result, error, len(attempts))

    (parallel_result, parallel_error, parallel_attempts) = outcomes[8]
    (sequential_result, sequential_error, sequential_attempts) = outcomes[1]
    assert isinstance(parallel_error, RetriableAPIError)
    assert str(parallel_error) == str(sequential_error)
    assert parallel_attempts == sequential_attempts == MAX_ATTEMPTS
    assert comparable(parallel_result.messages) == comparable(sequential_result.messages)
    # The SDK reads a card's children before writing the card: the cards before it, only.
    assert parallel_result.ids("cards") == [card["id"] for card in live[:130]]


def test_a_card_deleted_meanwhile_has_no_children_and_the_run_goes_on(kaiten_sandbox_factory):
    sandbox = kaiten_sandbox_factory(seed=11, cards=200, rate_limit=0)
    cards = sandbox.truth("cards")["cards"]
    with_comments = [c["id"] for c in cards if c["comments_total"]]
    gone_history, gone_comments = cards[50]["id"], with_comments[-1]
    vanish = [
        {"count": 1, "status": 404, "body": "", "path": f"/cards/{gone_history}/location-history"},
        {"count": 1, "status": 404, "body": "", "path": f"/cards/{gone_comments}/comments"},
    ]
    runs = {}
    for parallel in (8, 1):
        sandbox.configure(latency_ms=2, inject=vanish)
        runs[parallel] = sync(base_config(sandbox, max_parallel_requests=parallel))

    assert comparable(runs[8].messages) == comparable(runs[1].messages)
    history = runs[8].records["card_location_history"]
    comments = runs[8].records["card_comments"]
    assert gone_history not in {row["card_id"] for row in history}
    assert gone_comments not in {row["card_id"] for row in comments}
    truth_history = sandbox.truth("card_location_history")["card_location_history"]
    expected = sorted(row["id"] for row in truth_history if row["card_id"] != gone_history)
    assert sorted(row["id"] for row in history) == expected
    assert len(runs[8].records["cards"]) == len(cards)
