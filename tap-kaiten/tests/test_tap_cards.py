"""Cards: ordering, windowing, ties, changes while paging, bookmarks and resume."""

from __future__ import annotations

import datetime
import time

import pytest
import requests
from kaiten_tap_helpers import CHILDREN, CollectingWriter, base_config, card_key, result_of, sync

from tap_kaiten.client import format_datetime, parse_datetime
from tap_kaiten.streams import CardsPage, CardsPaginator
from tap_kaiten.tap import TapKaiten

SEMANTICS = ["strict", "inclusive"]


def cards_state(result):
    return {"bookmarks": {"cards": result.final_state["bookmarks"]["cards"]}}


def settle(sandbox):
    """Let the wall clock pass the sandbox's newest `updated` stamp.

    Bulk mutations stamp consecutive milliseconds that can run ahead of the clock;
    a tap started before they pass rightly leaves those cards for its next run.
    """
    newest = max(parse_datetime(card["updated"]) for card in sandbox.truth()["cards"])
    ahead = (newest - datetime.datetime.now(datetime.UTC)).total_seconds()
    time.sleep(max(0.0, ahead) + 0.01)


def ms(timestamp: str) -> int:
    return int(parse_datetime(timestamp).timestamp() * 1000)


def assert_sorted_per_partition(cards):
    for condition in (1, 2):
        keys = [card_key(c) for c in cards if c["condition"] == condition]
        assert keys == sorted(keys)


# ------------------------------------------------------------------ request builders
def test_cards_requests_are_ordered_and_bounded_by_the_sync_start():
    tap = TapKaiten(config={"api_url": "https://x.kaiten.ru", "api_token": "t"})
    stream = tap.streams["cards"]
    anchor = ms("2024-07-25T07:37:34.816Z")
    live = stream.get_url_params({"condition": 1}, CardsPage(anchor, 0, None))
    assert live["order_by"] == "updated,id"
    assert live["order_direction"] == "asc,asc"
    assert live["condition"] == 1
    assert "archived" not in live
    assert live["updated_after"] == "2024-07-25T07:37:34.815Z"  # anchor ms included either way
    assert live["updated_before"] == format_datetime(stream.get_replication_key_signpost(None))
    assert live["limit"] == 100
    assert live["offset"] == 0
    archived = stream.get_url_params({"condition": 2}, CardsPage(None, 90, None))
    assert archived["condition"] == 2
    assert archived["archived"] == "true"
    assert archived["offset"] == 90
    assert "updated_after" not in archived


def test_partitions_follow_include_archived_and_space_ids():
    config = {"api_url": "https://x.kaiten.ru", "api_token": "t"}
    assert TapKaiten(config=config).streams["cards"].partitions == [
        {"condition": 1},
        {"condition": 2},
    ]
    narrow = TapKaiten(config={**config, "include_archived": False, "space_ids": [7, 9]})
    assert narrow.streams["cards"].partitions == [
        {"condition": 1, "space_id": 7},
        {"condition": 1, "space_id": 9},
    ]


def test_first_page_starts_at_the_bookmark_the_start_date_or_the_lookback():
    bookmark = "2025-03-01T10:00:00.500Z"
    state = {
        "bookmarks": {
            "cards": {
                "partitions": [
                    {
                        "context": {"condition": 1},
                        "replication_key": "updated",
                        "replication_key_value": bookmark,
                        "last_id": 123,
                    }
                ]
            }
        }
    }
    config = {"api_url": "https://x.kaiten.ru", "api_token": "t"}
    stream = TapKaiten(config=config, state=state).streams["cards"]
    assert stream.first_page({"condition": 1}) == CardsPage(ms(bookmark), 0, (ms(bookmark), 123))
    assert stream.first_page({"condition": 2}) == CardsPage(None, 0, None)

    later = TapKaiten(config={**config, "start_date": "2025-06-01"}, state=state)
    start = ms("2025-06-01T00:00:00Z")
    assert later.streams["cards"].first_page({"condition": 1}) == CardsPage(
        start, 0, (start - 1, 2**63)
    )

    lookback = TapKaiten(config={**config, "lookback_minutes": 30}, state=state)
    floor = ms(bookmark) - 30 * 60_000
    assert lookback.streams["cards"].first_page({"condition": 1}) == CardsPage(
        floor, 0, (floor - 1, 2**63)
    )


# ------------------------------------------------------------------ against the sandbox
@pytest.mark.parametrize("semantics", SEMANTICS)
def test_full_sync_reads_every_card_once_in_order(kaiten_sandbox_factory, semantics):
    sandbox = kaiten_sandbox_factory(seed=3, cards=400, updated_after=semantics)
    # 250 cards in one millisecond: more than a page, so a page boundary falls inside it.
    sandbox.mutate(touch_same_ms=250)
    settle(sandbox)
    result = sync(base_config(sandbox), streams=["cards"])
    ids = result.ids("cards")
    assert len(ids) == len(set(ids))
    assert set(ids) == {card["id"] for card in sandbox.truth()["cards"]}
    assert_sorted_per_partition(result.records["cards"])


@pytest.mark.parametrize("semantics", SEMANTICS)
def test_incremental_run_reads_exactly_the_changed_cards(kaiten_sandbox_factory, semantics):
    sandbox = kaiten_sandbox_factory(seed=5, cards=300, updated_after=semantics)
    first = sync(base_config(sandbox), streams=["cards"])
    changed = sandbox.mutate(touch_same_ms=130, update=7, move=5, archive=4, unarchive=3)
    settle(sandbox)
    second = sync(base_config(sandbox), state=cards_state(first), streams=["cards"])
    expected = {card_id for ids in changed.values() for card_id in ids}
    assert sorted(second.ids("cards")) == sorted(expected)
    truth = {card["id"]: card for card in sandbox.truth()["cards"]}
    for card in second.records["cards"]:
        assert card["version"] == truth[card["id"]]["version"]
        assert card["condition"] == truth[card["id"]]["condition"]


@pytest.mark.parametrize("semantics", SEMANTICS)
def test_run_with_nothing_changed_costs_one_cards_request_per_partition(
    kaiten_sandbox_factory, semantics
):
    sandbox = kaiten_sandbox_factory(seed=5, cards=300, updated_after=semantics)
    first = sync(base_config(sandbox), streams=["cards"])
    sandbox.reset_stats()
    second = sync(base_config(sandbox), state=cards_state(first), streams=["cards"])
    assert second.records["cards"] == []
    assert sandbox.stats()["requests_by_path"]["/api/latest/cards"] == 2
    assert cards_state(second) == cards_state(first)


class MutatingWriter(CollectingWriter):
    """Edits cards in the sandbox while the tap is between two /cards pages."""

    def __init__(self, sandbox, every: int) -> None:
        super().__init__()
        self.sandbox, self.every, self.cards_seen = sandbox, every, 0

    def write_message(self, message):
        super().write_message(message)
        if self.messages[-1]["type"] == "RECORD" and self.messages[-1]["stream"] == "cards":
            self.cards_seen += 1
            if self.cards_seen % self.every == 0:
                self.sandbox.mutate(update=3, move=2, archive=1, unarchive=1, create=1, delete=1)


@pytest.mark.parametrize("semantics", SEMANTICS)
def test_cards_changed_while_paging_are_never_lost(kaiten_sandbox_factory, semantics):
    sandbox = kaiten_sandbox_factory(seed=9, cards=500, updated_after=semantics)
    sandbox.mutate(touch_same_ms=220)  # offset paging inside a tie group, too
    settle(sandbox)
    sandbox.configure(mutate_while_paging=4)  # the sandbox edits cards on offset pages
    config = base_config(sandbox)
    writer = MutatingWriter(sandbox, every=60)
    tap = TapKaiten(
        config=config,
        catalog=_cards_only_catalog(config),
        message_writer=writer,
    )
    tap.sync_all()
    first = result_of(writer.messages)
    sandbox.configure(mutate_while_paging=0)
    settle(sandbox)
    second = sync(config, state=cards_state(first), streams=["cards"])

    truth = {card["id"]: card for card in sandbox.truth()["cards"]}
    latest = {card["id"]: card for card in first.records["cards"] + second.records["cards"]}
    # Every card that exists is read, in its current version and condition.
    assert set(truth) <= set(latest)
    for card_id, card in truth.items():
        assert latest[card_id]["version"] == card["version"], card_id
        assert latest[card_id]["condition"] == card["condition"], card_id


def _cards_only_catalog(config):
    from kaiten_tap_helpers import catalog_selecting

    return catalog_selecting(config, ["cards"])


def test_a_tie_group_page_that_shifted_is_dropped_and_read_again(kaiten_sandbox_factory):
    sandbox = kaiten_sandbox_factory(seed=2, cards=150, updated_after="strict")
    sandbox.mutate(touch_same_ms=130)
    settle(sandbox)
    newest = max(card["updated"] for card in sandbox.truth()["cards"])
    tie = sorted(c["id"] for c in sandbox.truth()["cards"] if c["updated"] == newest)
    anchor = ms(newest)
    seen = (anchor, tie[99])  # the last row of the tie group's first page
    stream = TapKaiten(config=base_config(sandbox)).streams["cards"]
    page = CardsPage(anchor, 90, seen, seen)
    stream._paginator = CardsPaginator(page, 100)
    params = stream.get_url_params({"condition": 1}, page)
    headers = {"Authorization": f"Bearer {sandbox.token}"}

    # Nothing moved: offset 90 holds the previous page's last row again.
    steady = requests.get(sandbox.api_url + "/cards", params=params, headers=headers, timeout=10)
    stream.validate_response(steady)
    assert [card["id"] for card in stream.parse_response(steady)] == tie[100:]
    assert not stream._paginator.has_more(steady)  # a short page: the end

    # 15 rows before us left the result set (edited meanwhile): the same offset now
    # starts past that row, so the page is dropped and read again from the cursor.
    shifted = requests.get(
        sandbox.api_url + "/cards", params={**params, "offset": 105}, headers=headers, timeout=10
    )
    stream.validate_response(shifted)
    assert list(stream.parse_response(shifted)) == []
    assert stream._paginator.has_more(shifted)
    assert stream._paginator.get_next(shifted) == CardsPage(anchor, 0, seen, None, 1)


class CrashingWriter(CollectingWriter):
    """Fails like a killed process when asked to write the n-th card."""

    def __init__(self, crash_at: int) -> None:
        super().__init__()
        self.crash_at, self.cards = crash_at, 0

    def write_message(self, message):
        as_dict = message.to_dict()
        if as_dict["type"] == "RECORD" and as_dict["stream"] == "cards":
            self.cards += 1
            if self.cards == self.crash_at:
                raise KeyboardInterrupt
        super().write_message(message)


@pytest.mark.parametrize("semantics", SEMANTICS)
def test_crashed_run_resumes_after_the_last_emitted_card(kaiten_sandbox_factory, semantics):
    sandbox = kaiten_sandbox_factory(seed=11, cards=300, updated_after=semantics)
    sandbox.mutate(touch_same_ms=150)
    settle(sandbox)
    config = base_config(sandbox)
    writer = CrashingWriter(crash_at=170)
    # Children selected, as in a Meltano run: their syncs write the STATE we resume from.
    tap = TapKaiten(config=config, message_writer=writer)
    with pytest.raises(KeyboardInterrupt):
        tap.sync_all()
    crashed = result_of(writer.messages)
    assert len(crashed.records["cards"]) == 169
    # A read cut short tells the target nothing about deletions.
    assert not [
        m
        for m in crashed.messages
        if m["type"] == "ACTIVATE_VERSION" and m["stream"] in ("cards", *CHILDREN)
    ]
    resumed = sync(config, state=crashed.final_state, streams=["cards", *CHILDREN])

    first_ids, second_ids = crashed.ids("cards"), resumed.ids("cards")
    assert not set(first_ids) & set(second_ids)  # nothing emitted twice
    assert set(first_ids) | set(second_ids) == {card["id"] for card in sandbox.truth()["cards"]}
    # Children follow their cards: history for exactly the cards emitted in each run.
    assert {h["card_id"] for h in resumed.records["card_location_history"]} == set(second_ids)


def test_lookback_rereads_cards_updated_shortly_before_the_bookmark(kaiten_sandbox_factory):
    sandbox = kaiten_sandbox_factory(seed=5, cards=300)
    first = sync(base_config(sandbox), streams=["cards"])
    second = sync(
        base_config(sandbox, lookback_minutes=60 * 24 * 10),
        state=cards_state(first),
        streams=["cards"],
    )
    bookmarks = {
        p["context"]["condition"]: ms(p["replication_key_value"])
        for p in cards_state(first)["bookmarks"]["cards"]["partitions"]
    }
    expected = {
        card["id"]
        for card in sandbox.truth()["cards"]
        if ms(card["updated"]) >= bookmarks[card["condition"]] - 10 * 86_400_000
    }
    assert len(expected) > 2
    assert set(second.ids("cards")) == expected
    assert_sorted_per_partition(second.records["cards"])


def test_start_date_is_a_floor_for_cards(kaiten_sandbox):
    start = "2026-01-15T00:00:00Z"
    result = sync(base_config(kaiten_sandbox, start_date=start), streams=["cards"])
    expected = {
        card["id"]
        for card in kaiten_sandbox.truth()["cards"]
        if parse_datetime(card["updated"]) >= parse_datetime(start)
    }
    assert 0 < len(expected) < 300
    assert set(result.ids("cards")) == expected


def test_space_ids_limit_cards_to_those_spaces(kaiten_sandbox):
    truth = kaiten_sandbox.truth()
    space_id = truth["spaces"][0]["id"]
    boards = {b for s, b in truth["space_boards"] if s == space_id}
    result = sync(base_config(kaiten_sandbox, space_ids=[space_id]), streams=["cards"])
    expected = {card["id"] for card in truth["cards"] if card["board_id"] in boards}
    assert 0 < len(expected) < len(truth["cards"])
    assert set(result.ids("cards")) == expected


def test_include_archived_false_reads_live_cards_only(kaiten_sandbox):
    result = sync(base_config(kaiten_sandbox, include_archived=False), streams=["cards"])
    live = {card["id"] for card in kaiten_sandbox.truth()["cards"] if card["condition"] == 1}
    assert set(result.ids("cards")) == live


def test_sync_upper_bound_leaves_cards_edited_after_the_start_for_the_next_run(
    kaiten_sandbox,
):
    config = base_config(kaiten_sandbox)
    writer = CollectingWriter()
    tap = TapKaiten(config=config, catalog=_cards_only_catalog(config), message_writer=writer)
    started = datetime.datetime.now(datetime.UTC)
    touched = kaiten_sandbox.mutate(update=5)["updated"]  # after the tap's start
    tap.sync_all()
    first = result_of(writer.messages)
    settle(kaiten_sandbox)
    for card in first.records["cards"]:
        assert parse_datetime(card["updated"]) <= started + datetime.timedelta(seconds=1)
    assert not set(touched) & set(first.ids("cards"))
    second = sync(config, state=cards_state(first), streams=["cards"])
    assert sorted(second.ids("cards")) == sorted(touched)
