"""Mutations change the workspace realistically and the ground truth follows them."""

from __future__ import annotations

import email.utils
import time

import pytest
import requests

from kaiten_sandbox import Sandbox
from kaiten_sandbox.testing import fetch_all

ALL = {"order_by": "updated,id", "order_direction": "asc,asc", "archived": "true"}


def cards_by_id(sandbox):
    return {c["id"]: c for c in sandbox.truth()["cards"]}


def max_updated(cards):
    return max(c["updated"] for c in cards.values())


def test_create_adds_fresh_cards_newer_than_everything(kaiten_sandbox, api):
    before = cards_by_id(kaiten_sandbox)
    created = kaiten_sandbox.mutate(create=3)["created"]
    after = cards_by_id(kaiten_sandbox)
    assert len(created) == 3
    assert set(after) == set(before) | set(created)
    for cid in created:
        card = api.get(f"{kaiten_sandbox.api_url}/cards/{cid}").json()
        assert card == after[cid]
        assert card["created"] == card["updated"] > max_updated(before)
        assert card["version"] == 1
        history = api.get(f"{kaiten_sandbox.api_url}/cards/{cid}/location-history").json()
        assert len(history) == 1


def test_update_bumps_updated_and_version_only_on_chosen_cards(kaiten_sandbox):
    before = cards_by_id(kaiten_sandbox)
    updated = set(kaiten_sandbox.mutate(update=5)["updated"])
    after = cards_by_id(kaiten_sandbox)
    assert len(updated) == 5
    for cid, card in after.items():
        if cid in updated:
            assert card["version"] == before[cid]["version"] + 1
            assert card["updated"] > max_updated(before)
        else:
            assert card == before[cid]


def test_move_changes_column_and_appends_location_history(kaiten_sandbox, api):
    before = cards_by_id(kaiten_sandbox)
    history_before = kaiten_sandbox.truth()["card_location_history"]
    moved = kaiten_sandbox.mutate(move=8)["moved"]
    after = cards_by_id(kaiten_sandbox)
    history_after = kaiten_sandbox.truth()["card_location_history"]
    assert len(history_after) == len(history_before) + 8
    for cid in moved:
        card = after[cid]
        assert (card["board_id"], card["column_id"]) != (
            before[cid]["board_id"],
            before[cid]["column_id"],
        )
        assert card["column_changed_at"] == card["last_moved_at"] == card["updated"]
        assert card["column"]["id"] == card["column_id"]
        assert card["board"]["id"] == card["board_id"]
        last = api.get(f"{kaiten_sandbox.api_url}/cards/{cid}/location-history").json()[-1]
        assert last["changed"] == card["updated"]
        assert last["board_id"] == card["board_id"]
        assert card["column_id"] in (last["column_id"], last["subcolumn_id"])


def test_archive_and_unarchive_flip_condition_and_visibility(kaiten_sandbox, api):
    archived = kaiten_sandbox.mutate(archive=4)["archived"]
    default_ids = {c["id"] for c in fetch_all(api, f"{kaiten_sandbox.api_url}/cards")}
    cards = cards_by_id(kaiten_sandbox)
    for cid in archived:
        assert (cards[cid]["condition"], cards[cid]["archived"]) == (2, True)
        assert cid not in default_ids
    back = kaiten_sandbox.mutate(unarchive=2)["unarchived"]
    cards = cards_by_id(kaiten_sandbox)
    default_ids = {c["id"] for c in fetch_all(api, f"{kaiten_sandbox.api_url}/cards")}
    for cid in back:
        assert (cards[cid]["condition"], cards[cid]["archived"]) == (1, False)
        assert cid in default_ids


def test_delete_removes_cards_everywhere_and_lists_their_ids(kaiten_sandbox, api):
    deleted = kaiten_sandbox.mutate(delete=5)["deleted"]
    truth = kaiten_sandbox.truth()
    assert truth["deleted_card_ids"] == deleted
    gone = set(deleted)
    assert not gone & {c["id"] for c in truth["cards"]}
    assert not gone & {c["card_id"] for c in truth["card_comments"]}
    assert not gone & {h["card_id"] for h in truth["card_location_history"]}
    assert not gone & {i for c in truth["cards"] for i in c["parents_ids"] + c["children_ids"]}
    listed = {c["id"] for c in fetch_all(api, f"{kaiten_sandbox.api_url}/cards", ALL)}
    assert not gone & listed
    for cid in deleted:
        assert api.get(f"{kaiten_sandbox.api_url}/cards/{cid}").status_code == 404


def test_touch_same_ms_gives_cards_one_identical_new_timestamp(kaiten_sandbox):
    before = cards_by_id(kaiten_sandbox)
    touched = kaiten_sandbox.mutate(touch_same_ms=7)["touched"]
    after = cards_by_id(kaiten_sandbox)
    stamps = {after[cid]["updated"] for cid in touched}
    assert len(touched) == 7
    assert len(stamps) == 1
    assert stamps.pop() > max_updated(before)


def test_updated_never_goes_backwards_across_mutations(kaiten_sandbox):
    previous = max_updated(cards_by_id(kaiten_sandbox))
    for _ in range(5):
        result = kaiten_sandbox.mutate(update=2, move=1, touch_same_ms=2)
        cards = cards_by_id(kaiten_sandbox)
        changed = result["updated"] + result["moved"] + result["touched"]
        assert min(cards[cid]["updated"] for cid in changed) >= previous
        previous = max_updated(cards)


def test_reported_ids_are_exactly_the_cards_that_changed(kaiten_sandbox):
    before = cards_by_id(kaiten_sandbox)
    result = kaiten_sandbox.mutate(
        create=2, update=3, move=3, archive=2, unarchive=1, delete=2, touch_same_ms=2
    )
    after = cards_by_id(kaiten_sandbox)
    changed = {cid for cid in after if cid in before and after[cid] != before[cid]}
    reported = {
        cid for key, ids in result.items() if key not in ("created", "deleted") for cid in ids
    }
    assert changed == reported - set(result["deleted"])
    assert set(after) - set(before) == set(result["created"])
    assert set(before) - set(after) == set(result["deleted"])


def test_http_mutate_matches_python_mutate_for_the_same_seed():
    with Sandbox(seed=5, cards=200) as one, Sandbox(seed=5, cards=200) as two:
        over_http = requests.post(
            f"{one.base_url}/_sandbox/mutate", json={"update": 4, "move": 2, "seed": 9}
        ).json()
        in_process = two.mutate(update=4, move=2, seed=9)
        assert over_http == in_process
        # Timestamps come from the wall clock; everything else must agree.
        clock = {"updated", "column_changed_at", "last_moved_at", "lane_changed_at",
                 "counters_recalculated_at", "first_moved_to_in_progress_at",
                 "last_moved_to_done_at", "completed_at", "blocked_at"}  # fmt: skip

        def strip(truth):
            return [{k: v for k, v in c.items() if k not in clock} for c in truth["cards"]]

        assert strip(one.truth()) == strip(two.truth())


def test_stats_count_requests_by_path_and_token_and_reset(kaiten_sandbox, api):
    kaiten_sandbox.reset_stats()
    api.get(f"{kaiten_sandbox.api_url}/cards")
    api.get(f"{kaiten_sandbox.api_url}/cards")
    requests.get(f"{kaiten_sandbox.api_url}/tags")
    stats = requests.get(f"{kaiten_sandbox.base_url}/_sandbox/stats").json()
    assert stats["requests_total"] == 3
    assert stats["requests_by_path"] == {"/api/latest/cards": 2, "/api/latest/tags": 1}
    assert stats["requests_by_token"] == {kaiten_sandbox.token: 2, "": 1}
    assert stats["responses_by_status"] == {"200": 2, "401": 1}
    requests.post(f"{kaiten_sandbox.base_url}/_sandbox/stats/reset")
    assert kaiten_sandbox.stats()["requests_total"] == 0


def test_request_log_times_each_request_and_its_answer(kaiten_sandbox, api):
    """What a test needs to check waits: when each request came, when and how it was
    answered, the Retry-After sent; a dropped request has no status."""
    kaiten_sandbox.configure(
        inject=[
            {"count": 1, "status": 429, "headers": {"Retry-After": "7"}, "path": "/tags"},
            {"count": 1, "drop": True, "path": "/users"},
        ]
    )
    kaiten_sandbox.reset_stats()
    started = time.time()
    assert api.get(f"{kaiten_sandbox.api_url}/tags").status_code == 429
    with pytest.raises(requests.exceptions.ConnectionError):
        api.get(f"{kaiten_sandbox.api_url}/users")
    assert api.get(f"{kaiten_sandbox.api_url}/tags").status_code == 200
    log = requests.get(f"{kaiten_sandbox.base_url}/_sandbox/requests").json()
    assert log == kaiten_sandbox.requests()
    assert [(e["path"], e["status"], e["retry_after"]) for e in log] == [
        ("/api/latest/tags", 429, "7"),
        ("/api/latest/users", None, None),
        ("/api/latest/tags", 200, None),
    ]
    assert started <= log[0]["at"] <= log[0]["answered_at"] <= log[1]["at"] <= log[2]["at"]
    assert log[1]["answered_at"] is None
    kaiten_sandbox.reset_stats()
    assert kaiten_sandbox.requests() == []


def test_scripted_retry_after_date_lies_ahead_when_served(kaiten_sandbox, api):
    kaiten_sandbox.configure(inject=[{"count": 1, "status": 429, "retry_after_date_in": 5}])
    response = api.get(f"{kaiten_sandbox.api_url}/tags")
    assert response.status_code == 429
    until = email.utils.parsedate_to_datetime(response.headers["Retry-After"]).timestamp()
    # HTTP dates have whole seconds: 4 to 5 s ahead
    assert 4 - 0.5 <= until - time.time() <= 5


def test_config_endpoint_reads_and_changes_settings(kaiten_sandbox):
    url = f"{kaiten_sandbox.base_url}/_sandbox/config"
    changed = requests.post(url, json={"updated_after": "strict", "rate_limit": 7}).json()
    assert changed["updated_after"] == "strict"
    assert requests.get(url).json() == changed == kaiten_sandbox.config


def test_state_can_be_limited_to_named_streams(kaiten_sandbox):
    full = kaiten_sandbox.truth()
    assert kaiten_sandbox.truth("cards", "deleted_card_ids") == {
        "cards": full["cards"],
        "deleted_card_ids": full["deleted_card_ids"],
    }
    url = f"{kaiten_sandbox.base_url}/_sandbox/state"
    assert requests.get(url, params={"streams": "users,tags"}).json() == {
        "users": full["users"],
        "tags": full["tags"],
    }
    bad = requests.get(url, params={"streams": "cards,widgets"})
    assert bad.status_code == 400
    assert "widgets" in bad.json()["message"]


def test_mutate_everything_at_once_on_a_tiny_workspace(kaiten_sandbox_factory):
    sandbox = kaiten_sandbox_factory(seed=3, cards=10)
    result = sandbox.mutate(update=4, move=4, archive=4, delete=10, touch_same_ms=10)
    truth = sandbox.truth("cards", "deleted_card_ids")
    assert len(truth["cards"]) + len(truth["deleted_card_ids"]) == 10
    assert set(result["touched"]).isdisjoint(result["deleted"])
    assert {c["id"] for c in truth["cards"]} >= set(result["touched"])


def test_board_card_lists_follow_moves_and_deletes(kaiten_sandbox, api):
    api.get(f"{kaiten_sandbox.api_url}/boards/{kaiten_sandbox.truth('boards')['boards'][0]['id']}")
    kaiten_sandbox.mutate(move=40, delete=10, create=5)
    truth = kaiten_sandbox.truth("boards", "cards")
    for board in truth["boards"]:
        cards = api.get(f"{kaiten_sandbox.api_url}/boards/{board['id']}").json()["cards"]
        expected = sorted(c["id"] for c in truth["cards"] if c["board_id"] == board["id"])
        assert [c["id"] for c in cards] == expected


def test_modifying_a_truth_answer_cannot_change_the_sandbox(kaiten_sandbox, api):
    pristine = api.get(f"{kaiten_sandbox.base_url}/_sandbox/state").json()
    scratch = kaiten_sandbox.truth()

    def scribble(value):
        if isinstance(value, dict):
            for key in list(value):
                scribble(value[key])
            value["scribbled"] = True
        elif isinstance(value, list):
            for item in value:
                scribble(item)
            value.append("scribbled")

    scribble(scratch)
    assert kaiten_sandbox.truth() == pristine
    assert api.get(f"{kaiten_sandbox.base_url}/_sandbox/state").json() == pristine
