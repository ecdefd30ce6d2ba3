"""A full sync compared with the sandbox's ground truth, stream by stream."""

from __future__ import annotations

import json

import pytest
from kaiten_tap_helpers import base_config, sync

from tap_kaiten.tap import TapKaiten


@pytest.fixture
def full_sync(kaiten_sandbox):
    result = sync(base_config(kaiten_sandbox))
    return result, kaiten_sandbox.truth(), kaiten_sandbox.stats()


def as_api(row):
    """A record with its `extra_fields` folded back: what the API sent."""
    extra = row.get("extra_fields") or {}
    return {**{key: value for key, value in row.items() if key != "extra_fields"}, **extra}


def by_id(rows):
    return {row["id"]: as_api(row) for row in rows}


def without(row, *keys):
    return {key: value for key, value in row.items() if key not in keys}


@pytest.mark.parametrize(
    "stream", ["spaces", "users", "tags", "card_types", "custom_properties", "lanes"]
)
def test_simple_streams_equal_the_api_objects(full_sync, stream):
    result, truth, _ = full_sync
    emitted = by_id(result.records[stream])
    assert len(emitted) == len(result.records[stream]), "duplicate rows"
    assert emitted == by_id(truth[stream])


def test_spaces_come_from_one_request_and_boards_from_one_per_space(full_sync):
    _, truth, stats = full_sync
    by_path = stats["requests_by_path"]
    assert by_path["/api/latest/spaces"] == 1
    space_requests = [p for p in by_path if p.startswith("/api/latest/spaces/")]
    assert all(p.endswith("/boards") and by_path[p] == 1 for p in space_requests)
    assert len(space_requests) <= len(truth["spaces"])
    # Columns and lanes came embedded in those answers: no request per board.
    assert not [p for p in by_path if p.endswith(("/columns", "/lanes"))]


def test_boards_are_deduplicated_full_and_keep_every_space(full_sync):
    result, truth, _ = full_sync
    boards = by_id(result.records["boards"])
    assert len(boards) == len(result.records["boards"])
    expected_spaces: dict[int, list[int]] = {}
    for space_id, board_id in truth["space_boards"]:
        expected_spaces.setdefault(board_id, []).append(space_id)
    assert any(len(spaces) > 1 for spaces in expected_spaces.values()), "no shared board"
    expected = {
        board["id"]: {
            **without(board, "columns", "lanes"),
            "space_ids": expected_spaces[board["id"]],
        }
        for board in truth["boards"]
    }
    assert {key: {**row, "space_ids": sorted(row["space_ids"])} for key, row in boards.items()} == {
        key: {**row, "space_ids": sorted(row["space_ids"])} for key, row in expected.items()
    }


def test_a_space_deleted_meanwhile_keeps_its_boards_in_short_form(kaiten_sandbox):
    truth = kaiten_sandbox.truth()
    space_id = truth["spaces"][0]["id"]
    only_here = {b for s, b in truth["space_boards"] if s == space_id} - {
        b for s, b in truth["space_boards"] if s != space_id
    }
    assert only_here
    kaiten_sandbox.configure(
        inject=[{"path": f"/spaces/{space_id}/boards", "status": 404, "body": ""}]
    )
    result = sync(base_config(kaiten_sandbox), streams=["boards"])
    boards = by_id(result.records["boards"])
    assert set(boards) == {board["id"] for board in truth["boards"]}
    for board_id in only_here:
        assert boards[board_id]["title"] == by_id(truth["boards"])[board_id]["title"]
        assert "email_key" not in boards[board_id]  # the short form from /spaces


def test_columns_and_lanes_are_requested_per_board_when_not_embedded(kaiten_sandbox):
    truth = kaiten_sandbox.truth()
    space_id = truth["spaces"][0]["id"]
    in_space = {b for s, b in truth["space_boards"] if s == space_id}
    short = [without(b, "columns", "lanes") for b in truth["boards"] if b["id"] in in_space]
    kaiten_sandbox.configure(
        inject=[{"path": f"/spaces/{space_id}/boards", "status": 200, "body": json.dumps(short)}]
    )
    result = sync(base_config(kaiten_sandbox), streams=["boards", "columns", "lanes"])
    by_path = kaiten_sandbox.stats()["requests_by_path"]
    assert {p for p in by_path if p.endswith("/columns")} == {
        f"/api/latest/boards/{b}/columns" for b in in_space
    }
    assert len(result.records["lanes"]) == len(truth["lanes"])
    assert len(result.records["columns"]) == sum(1 + len(c["subcolumns"]) for c in truth["columns"])


def test_columns_are_flattened_with_subcolumns_pointing_at_their_parent(full_sync):
    result, truth, _ = full_sync
    expected = {}
    for column in truth["columns"]:
        expected[column["id"]] = without(column, "subcolumns")
        for sub in column["subcolumns"]:
            expected[sub["id"]] = sub
            assert sub["column_id"] == column["id"]
    assert any(row["column_id"] is not None for row in expected.values()), "no subcolumns"
    assert by_id(result.records["columns"]) == expected
    assert len(result.records["columns"]) == len(expected)


def test_cards_include_live_and_archived_exactly_as_the_api_returns_them(full_sync):
    result, truth, _ = full_sync
    cards = by_id(result.records["cards"])
    assert len(cards) == len(result.records["cards"])
    truth_cards = by_id(truth["cards"])
    assert set(cards) == set(truth_cards)
    assert {card["condition"] for card in cards.values()} == {1, 2}
    for card_id, card in cards.items():
        expected = truth_cards[card_id]
        assert without(card, "space_id") == expected
        assert card["space_id"] == expected["path_data"]["space"]["id"]


def test_checklists_are_read_only_for_cards_that_have_some(full_sync):
    _, truth, stats = full_sync
    with_checklists = {c["id"] for c in truth["cards"] if c["checklists_total"]}
    assert with_checklists
    detail_requests = {
        int(path.rsplit("/", 1)[1])
        for path in stats["requests_by_path"]
        if path.rsplit("/", 1)[1].isdigit() and "/cards/" in path
    }
    assert detail_requests == with_checklists


def test_include_checklists_false_saves_the_card_requests(kaiten_sandbox):
    result = sync(base_config(kaiten_sandbox, include_checklists=False), streams=["cards"])
    assert all("checklists" not in card for card in result.records["cards"])
    assert set(kaiten_sandbox.stats()["requests_by_path"]) == {"/api/latest/cards"}


def test_card_children_equal_the_api_sub_resources(full_sync):
    result, truth, _ = full_sync
    for stream in ("card_location_history", "card_comments"):
        assert by_id(result.records[stream]) == by_id(truth[stream])
        assert len(result.records[stream]) == len(truth[stream])


def test_comments_are_not_requested_for_cards_without_comments(full_sync):
    _, truth, stats = full_sync
    with_comments = sum(1 for card in truth["cards"] if card["comments_total"])
    comment_requests = sum(
        n for path, n in stats["requests_by_path"].items() if path.endswith("/comments")
    )
    assert comment_requests == with_comments


def test_child_streams_keep_no_per_card_state(full_sync):
    result, _, _ = full_sync
    bookmarks = result.final_state["bookmarks"]
    for stream in ("card_location_history", "card_comments", "columns", "lanes"):
        assert "partitions" not in bookmarks.get(stream, {})


def test_unknown_fields_are_kept_in_extra_fields(kaiten_sandbox):
    body = '[{"id": 1, "name": "Card", "brand_new": {"nested": [1, 2]}, "flag": true}]'
    kaiten_sandbox.configure(inject=[{"path": "/card-types", "status": 200, "body": body}])
    result = sync(base_config(kaiten_sandbox), streams=["card_types"])
    assert result.records["card_types"] == [
        {"id": 1, "name": "Card", "extra_fields": {"brand_new": {"nested": [1, 2]}, "flag": True}}
    ]


def test_schemas_store_arrays_of_objects_as_one_json_value():
    tap = TapKaiten(config={"api_url": "https://x.kaiten.ru", "api_token": "t"})
    cards = tap.streams["cards"].schema["properties"]
    for name in ("members", "tags", "checklists", "files", "blockers"):
        # No `items`: target-postgres makes jsonb, not jsonb[].
        assert cards[name]["type"] == ["array", "null"]
        assert "items" not in cards[name]
    assert cards["properties"]["type"] == ["object", "null"]
    assert cards["tag_ids"]["items"]["type"] == ["integer"]
    for name in ("created", "updated", "last_moved_at", "completed_at"):
        assert cards[name]["format"] == "date-time"


def test_every_stream_has_a_primary_key_and_a_catch_all_column():
    tap = TapKaiten(config={"api_url": "https://x.kaiten.ru", "api_token": "t"})
    assert sorted(tap.streams) == sorted(
        [
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
        ]
    )
    for stream in tap.streams.values():
        assert list(stream.primary_keys) == ["id"]
        assert "extra_fields" in stream.schema["properties"]
