"""The marts, built by the real pipeline from a sandbox workspace, hold what the
sandbox's ground truth says they must: names, counts, order, flow times and
column durations, card by card."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from itertools import pairwise
from typing import Any

import pytest
from expected_marts import (
    card_status,
    column_durations,
    column_types,
    custom_properties,
    flow_times,
    history_by_card,
    space_paths,
    ts,
)

STREAMS = {
    "spaces",
    "boards",
    "columns",
    "lanes",
    "cards",
    "users",
    "tags",
    "card_types",
    "custom_properties",
    "card_location_history",
    "card_comments",
}


@pytest.fixture(scope="module")
def synced(sandbox_factory, pipeline_factory):
    sandbox = sandbox_factory(seed=11, cards=400)
    # Give cards a real flow before the sync: moves (some cards several times, back
    # and forth), archiving and unarchiving, so the history has every case.
    for round_ in range(4):
        sandbox.mutate(move=120, archive=15, unarchive=5 if round_ else 0, seed=100 + round_)
    pipeline = pipeline_factory(sandbox)
    result = pipeline.sync_and_build()
    return pipeline, sandbox.truth(), result


@pytest.fixture(scope="module")
def truth(synced) -> dict[str, Any]:
    return synced[1]


@pytest.fixture(scope="module")
def pipeline(synced):
    return synced[0]


def by_id(rows: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    return {row[key]: row for row in rows}


def test_dbt_build_ran_models_schema_tests_and_unit_tests(synced) -> None:
    _, _, result = synced
    log = result.stdout + result.stderr
    assert "Completed successfully" in log
    for unit_test in (
        "flow_and_lead_cycle_times_from_the_history",
        "incremental_cards_rebuild_only_what_changed",
        "incremental_cards_rebuild_everything_when_names_change",
        "column_durations_sum_visits_and_stop_while_archived",
    ):
        assert re.search(rf"PASS \w+::{unit_test}\b", log), unit_test


def test_board_columns_in_display_order_with_titles_types_and_load(pipeline, truth) -> None:
    rows = pipeline.rows("select * from kaiten_site.board_columns order by board_id, display_order")
    got: dict[int, list[tuple]] = defaultdict(list)
    for row in rows:
        got[row["board_id"]].append(
            (row["column_id"], row["title"], row["column_type"], row["parent_column_id"])
        )
    type_names = {1: "queue", 2: "in_progress", 3: "done"}
    expected: dict[int, list[tuple]] = defaultdict(list)
    for column in sorted(truth["columns"], key=lambda c: (c["board_id"], c["sort_order"], c["id"])):
        expected[column["board_id"]].append(
            (column["id"], column["title"], type_names[column["type"]], None)
        )
        for sub in sorted(column["subcolumns"], key=lambda c: (c["sort_order"], c["id"])):
            expected[column["board_id"]].append(
                (sub["id"], sub["title"], type_names[sub["type"]], column["id"])
            )
    assert got == expected

    # Load: live cards per column, a subcolumn's cards counting for its column too.
    parent = {sub["id"]: c["id"] for c in truth["columns"] for sub in c["subcolumns"]}
    load: Counter[int] = Counter()
    for card in truth["cards"]:
        if card["condition"] == 2:
            continue
        load[card["column_id"]] += 1
        if card["column_id"] in parent:
            load[parent[card["column_id"]]] += 1
    limits = {c["id"]: c["wip_limit"] for c in truth["columns"]}
    limits |= {s["id"]: s["wip_limit"] for c in truth["columns"] for s in c["subcolumns"]}
    for row in rows:
        assert row["card_count"] == load[row["column_id"]], row["column_id"]
        limit = limits[row["column_id"]] or None
        assert row["wip_limit"] == limit
        assert row["is_over_wip_limit"] == (limit is not None and load[row["column_id"]] > limit)
    assert any(row["is_over_wip_limit"] for row in rows), "no column over its limit to check"


def test_cards_carry_names_status_tags_members_and_properties(pipeline, truth) -> None:
    rows = by_id(pipeline.rows("select * from kaiten_site.cards"), "card_id")
    assert set(rows) == {card["id"] for card in truth["cards"]}
    boards = {b["id"]: b for b in truth["boards"]}
    columns = {c["id"]: c for c in truth["columns"]}
    columns |= {s["id"]: s for c in truth["columns"] for s in c["subcolumns"]}
    lanes = {lane["id"]: lane for lane in truth["lanes"]}
    users = {u["id"]: u for u in truth["users"]}
    types = {t["id"]: t for t in truth["card_types"]}
    paths = space_paths(truth)
    for card in truth["cards"]:
        row = rows[card["id"]]
        column = columns[card["column_id"]]
        top = columns[column["column_id"]] if column["column_id"] else column
        expected = {
            "title": card["title"].replace("\x00", "\ufffd"),
            "board_title": boards[card["board_id"]]["title"],
            "space_id": card["path_data"]["space"]["id"],
            "space_path": paths[card["path_data"]["space"]["id"]],
            "column_id": top["id"],
            "column_title": top["title"],
            "subcolumn_id": column["id"] if column["column_id"] else None,
            "subcolumn_title": column["title"] if column["column_id"] else None,
            "lane_title": lanes[card["lane_id"]]["title"],
            "status": card_status(card),
            "owner_name": users[card["owner_id"]]["full_name"],
            "card_type_name": types[card["type_id"]]["name"],
            "tag_names": sorted(tag["name"] for tag in card["tags"]),
            "member_ids": sorted(member["id"] for member in card["members"]),
            "responsible_ids": sorted(m["id"] for m in card["members"] if m["type"] == 2),
            "custom_properties": custom_properties(card, truth),
            "created_at": ts(card["created"]),
            "due_at": ts(card["due_date"]),
        }
        actual = {key: row[key] for key in expected}
        actual["tag_names"] = sorted(actual["tag_names"])
        assert actual == expected, card["id"]
        overdue = (
            card["due_date"] is not None
            and ts(card["due_date"]) < dt.datetime.now(dt.UTC)
            and card["state"] != 3
            and card["condition"] != 2
        )
        assert row["is_overdue"] == overdue, card["id"]


def test_started_done_lead_and_cycle_times_follow_the_history(pipeline, truth) -> None:
    rows = by_id(pipeline.rows("select * from kaiten_site.cards"), "card_id")
    history = history_by_card(truth)
    types = column_types(truth)
    done_cards = 0
    for card in truth["cards"]:
        started, done = flow_times(card, history.get(card["id"], []), types)
        row = rows[card["id"]]
        assert (row["started_at"], row["done_at"]) == (started, done), card["id"]
        if done is None:
            assert row["lead_time_hours"] is None
            assert row["cycle_time_hours"] is None
            continue
        done_cards += 1
        lead = (done - ts(card["created"])).total_seconds() / 3600
        assert row["lead_time_hours"] == pytest.approx(lead, abs=1e-6)
        if started is not None:
            cycle = (done - started).total_seconds() / 3600
            assert row["cycle_time_hours"] == pytest.approx(cycle, abs=1e-6)
    assert done_cards > 20


def _durations(pipeline) -> dict[tuple[int, int], dict[str, Any]]:
    rows = pipeline.rows("select * from kaiten_site.card_column_durations")
    return {(row["card_id"], row["column_id"]): row for row in rows}


def test_column_durations_match_every_cards_history(pipeline, truth) -> None:
    got = _durations(pipeline)
    expected: dict[tuple[int, int], Any] = {}
    for card_id, entries in history_by_card(truth).items():
        for column_id, stay in column_durations(entries).items():
            expected[(card_id, column_id)] = stay
    assert set(got) == set(expected)
    for key, stay in expected.items():
        row = got[key]
        assert float(row["time_in_column_seconds"]) == pytest.approx(stay.seconds, abs=0.001), key
        assert row["visit_count"] == stay.visit_count, key
        assert row["first_entered_at"] == stay.first_entered_at, key
        assert row["last_left_at"] == stay.last_left_at, key
        assert row["current_visit_started_at"] == stay.current_visit_started_at, key
        assert row["is_current"] == (stay.current_visit_started_at is not None), key


def test_durations_of_a_card_moved_back_and_forth(pipeline, truth) -> None:
    """A card that left a column and came back: both visits summed, by hand."""
    history = history_by_card(truth)
    card_id, entries = next(
        (card_id, entries)
        for card_id, entries in sorted(history.items())
        if len(entries) >= 4
        and any(
            entries[i]["column_id"] == entries[j]["column_id"] != entries[i + 1]["column_id"]
            for i in range(len(entries) - 1)
            for j in range(i + 2, len(entries))
        )
        and all(e["condition"] == 1 for e in entries)
    )
    # Worked out from the raw entries only: each entry lasts until the next one.
    spent: Counter[int] = Counter()
    visits: Counter[int] = Counter()
    for previous, entry in zip([None, *entries], entries, strict=False):
        if previous is None or previous["column_id"] != entry["column_id"]:
            visits[entry["column_id"]] += 1
    current_column = entries[-1]["column_id"]
    trailing_start = len(entries) - 1
    while trailing_start > 0 and entries[trailing_start - 1]["column_id"] == current_column:
        trailing_start -= 1
    for entry, following in pairwise(entries[: trailing_start + 1]):
        spent[entry["column_id"]] += (
            ts(following["changed"]) - ts(entry["changed"])
        ).total_seconds()
    got = {column: row for (card, column), row in _durations(pipeline).items() if card == card_id}
    assert set(got) == set(visits)
    revisited = [column for column, count in visits.items() if count > 1]
    assert revisited
    for column_id, row in got.items():
        assert row["visit_count"] == visits[column_id]
        assert float(row["time_in_column_seconds"]) == pytest.approx(spent[column_id], abs=0.001)
        assert row["is_current"] == (column_id == current_column)
    assert got[current_column]["current_visit_started_at"] == ts(entries[trailing_start]["changed"])


def test_spaces_and_boards_have_paths_placements_and_card_counts(pipeline, truth) -> None:
    spaces = by_id(pipeline.rows("select * from kaiten_site.spaces"), "space_id")
    boards = by_id(pipeline.rows("select * from kaiten_site.boards"), "board_id")
    paths = space_paths(truth)
    assert {sid: row["space_path"] for sid, row in spaces.items()} == paths
    assert any(" / " in path for path in paths.values()), "the workspace should nest spaces"

    placements: dict[int, set[int]] = defaultdict(set)
    for space_id, board_id in truth["space_boards"]:
        placements[board_id].add(space_id)
    counts: dict[tuple[str, int], Counter[str]] = defaultdict(Counter)
    for card in truth["cards"]:
        kind = "archived" if card["condition"] == 2 else "done" if card["state"] == 3 else "open"
        counts[("board", card["board_id"])][kind] += 1
        counts[("space", card["path_data"]["space"]["id"])][kind] += 1
    for board in truth["boards"]:
        row = boards[board["id"]]
        assert row["title"] == board["title"]
        assert row["space_id"] == board["space_id"]
        assert row["space_path"] == paths[board["space_id"]]
        assert row["space_ids"][0] == board["space_id"]
        assert set(row["space_ids"]) == placements[board["id"]]
        expected = counts[("board", board["id"])]
        assert (row["open_card_count"], row["done_card_count"], row["archived_card_count"]) == (
            expected["open"],
            expected["done"],
            expected["archived"],
        ), board["id"]
    assert any(len(row["space_ids"]) > 1 for row in boards.values())
    for space in truth["spaces"]:
        row = spaces[space["id"]]
        expected = counts[("space", space["id"])]
        assert (row["open_card_count"], row["done_card_count"], row["archived_card_count"]) == (
            expected["open"],
            expected["done"],
            expected["archived"],
        ), space["id"]
        assert row["board_count"] == sum(1 for s, _ in truth["space_boards"] if s == space["id"])


def test_sync_status_shows_each_streams_bookmark_from_sync_metadata(pipeline) -> None:
    rows = by_id(pipeline.rows("select * from kaiten_site.sync_status"), "stream_name")
    assert set(rows) == STREAMS
    state = pipeline.rows("select state_id, completed_state, updated_at from kaiten.sync_metadata")
    assert len(state) == 1
    bookmark = state[0]["completed_state"]["singer_state"]["bookmarks"]["cards"]
    values = [p["replication_key_value"] for p in bookmark.get("partitions", [])] or [
        bookmark["replication_key_value"]
    ]
    cards = rows["cards"]
    assert cards["state_id"] == state[0]["state_id"]
    assert cards["replication_key"] == "updated"
    assert cards["bookmark_value"] == max(values)
    assert cards["bookmark_at"] == ts(max(values))
    assert cards["bookmark_written_at"] == state[0]["updated_at"]
    for name, row in rows.items():
        assert row["last_loaded_at"] is not None, name
