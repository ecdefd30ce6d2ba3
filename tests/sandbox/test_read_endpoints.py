"""Every read endpoint answers exactly what the ground truth holds."""

from __future__ import annotations

import re

from kaiten_sandbox.testing import fetch_all, session_for

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def test_spaces_list_embeds_short_boards_per_space_board_link(kaiten_sandbox, api):
    truth = kaiten_sandbox.truth()
    spaces = api.get(f"{kaiten_sandbox.api_url}/spaces").json()
    assert [{k: v for k, v in s.items() if k != "boards"} for s in spaces] == truth["spaces"]
    links = sorted([s["id"], b["id"]] for s in spaces for b in s["boards"])
    assert links == sorted(truth["space_boards"])


def test_some_board_is_placed_in_several_spaces(kaiten_sandbox_factory, api):
    sandbox = kaiten_sandbox_factory(seed=42, cards=20_000)
    spaces = api.get(
        f"{sandbox.api_url}/spaces", headers={"Authorization": f"Bearer {sandbox.token}"}
    ).json()
    board_ids = [b["id"] for s in spaces for b in s["boards"]]
    assert len(board_ids) > len(set(board_ids))


def test_spaces_nest_through_parent_uid_and_path(kaiten_sandbox):
    truth = kaiten_sandbox.truth()
    uids = {s["uid"]: s for s in truth["spaces"]}
    children = [s for s in truth["spaces"] if s["parent_entity_uid"]]
    assert children
    for child in children:
        parent = uids[child["parent_entity_uid"]]
        assert child["path"] == f"{parent['path']}.{child['id']}"


def test_single_space_has_no_boards_and_space_boards_are_full_boards(kaiten_sandbox, api):
    truth = kaiten_sandbox.truth()
    space = truth["spaces"][0]
    answer = api.get(f"{kaiten_sandbox.api_url}/spaces/{space['id']}").json()
    assert answer == space
    boards = api.get(f"{kaiten_sandbox.api_url}/spaces/{space['id']}/boards").json()
    expected = [b for b in truth["boards"] if [space["id"], b["id"]] in truth["space_boards"]]
    assert boards == expected


def test_board_embeds_columns_lanes_and_all_its_cards_including_archived(kaiten_sandbox, api):
    truth = kaiten_sandbox.truth()
    for board in truth["boards"]:
        answer = api.get(f"{kaiten_sandbox.api_url}/boards/{board['id']}").json()
        cards = answer.pop("cards")
        assert answer == board
        expected = {c["id"] for c in truth["cards"] if c["board_id"] == board["id"]}
        assert {c["id"] for c in cards} == expected
    assert any(c["archived"] for c in truth["cards"])


def test_columns_nest_subcolumns_and_lanes_match_truth(kaiten_sandbox, api):
    truth = kaiten_sandbox.truth()
    columns, lanes = [], []
    for board in truth["boards"]:
        columns += api.get(f"{kaiten_sandbox.api_url}/boards/{board['id']}/columns").json()
        lanes += api.get(f"{kaiten_sandbox.api_url}/boards/{board['id']}/lanes").json()
    assert columns == truth["columns"]
    assert lanes == truth["lanes"]
    with_subs = [c for c in columns if c["subcolumns"]]
    assert with_subs
    for column in with_subs:
        assert all(s["column_id"] == column["id"] for s in column["subcolumns"])
        subs = api.get(f"{kaiten_sandbox.api_url}/columns/{column['id']}/subcolumns").json()
        assert subs == column["subcolumns"]


def test_card_in_subcolumn_carries_parent_column(kaiten_sandbox):
    cards = kaiten_sandbox.truth()["cards"]
    nested = [c for c in cards if c["column"]["column_id"] is not None]
    assert nested
    for card in nested:
        assert card["column"]["parent"]["id"] == card["column"]["column_id"]


def test_users_page_and_hide_inactive_unless_asked(kaiten_sandbox_factory):
    sandbox = kaiten_sandbox_factory(seed=42, cards=10_000)  # enough users for 2+ pages
    with session_for(sandbox) as api:
        truth = sandbox.truth("users")["users"]
        assert len(truth) > 100
        everyone = fetch_all(api, f"{sandbox.api_url}/users", {"include_inactive": "true"})
        assert everyone == truth
        active = fetch_all(api, f"{sandbox.api_url}/users")
        assert active == [u for u in truth if u["activated"]]
        assert len(active) < len(everyone)
        assert isinstance(truth[0]["settings"], dict)
        assert isinstance(truth[0]["permissions"], dict)


def test_current_user_is_the_token_owner(kaiten_sandbox, api):
    me = api.get(f"{kaiten_sandbox.api_url}/users/current").json()
    assert me == kaiten_sandbox.truth()["users"][0]


def test_tags_types_and_custom_properties_match_truth(kaiten_sandbox, api):
    truth = kaiten_sandbox.truth()
    assert fetch_all(api, f"{kaiten_sandbox.api_url}/tags") == truth["tags"]
    assert fetch_all(api, f"{kaiten_sandbox.api_url}/card-types") == truth["card_types"]
    props = fetch_all(
        api, f"{kaiten_sandbox.api_url}/company/custom-properties", {"include_values": "true"}
    )
    assert props == truth["custom_properties"]
    bare = api.get(f"{kaiten_sandbox.api_url}/company/custom-properties").json()
    assert all("values" not in p for p in bare)


def test_tags_only_lists_tags_that_sit_on_a_card(kaiten_sandbox):
    truth = kaiten_sandbox.truth()
    used = {t for c in truth["cards"] for t in c["tag_ids"]}
    assert {t["id"] for t in truth["tags"]} == used


def test_card_detail_equals_truth_and_includes_checklists(kaiten_sandbox, api):
    truth = kaiten_sandbox.truth()
    for card in truth["cards"][:40]:
        assert api.get(f"{kaiten_sandbox.api_url}/cards/{card['id']}").json() == card
    assert any(c["checklists"] for c in truth["cards"])
    assert any(c["files"] for c in truth["cards"])


def test_comments_and_location_history_per_card_match_truth(kaiten_sandbox, api):
    truth = kaiten_sandbox.truth()
    for card in truth["cards"][:60]:
        url = f"{kaiten_sandbox.api_url}/cards/{card['id']}"
        comments = api.get(f"{url}/comments").json()
        assert comments == [m for m in truth["card_comments"] if m["card_id"] == card["id"]]
        assert len(comments) == card["comments_total"]
        history = api.get(f"{url}/location-history").json()
        assert history == [h for h in truth["card_location_history"] if h["card_id"] == card["id"]]
        assert history, "every card has at least its creation entry"
        assert all(isinstance(h["id"], str) for h in history)


def test_v1_and_latest_prefixes_answer_the_same(kaiten_sandbox, api):
    for path in ("/spaces", "/cards?archived=true", "/users", "/tags"):
        latest = api.get(f"{kaiten_sandbox.base_url}/api/latest{path}")
        v1 = api.get(f"{kaiten_sandbox.base_url}/api/v1{path}")
        assert latest.status_code == v1.status_code == 200
        assert latest.content == v1.content


def test_cards_carry_documented_fields_with_realistic_values(kaiten_sandbox_factory):
    cards = kaiten_sandbox_factory(seed=42, cards=3000).truth("cards")["cards"]
    documented = {
        "id", "uid", "title", "description", "state", "condition", "archived", "asap",
        "due_date", "due_date_time_present", "created", "updated", "board_id", "column_id",
        "lane_id", "sort_order", "fifo_order", "owner_id", "type_id", "updater_id", "version",
        "size", "size_unit", "size_text", "sprint_id", "external_id", "source", "key", "public",
        "blocked", "blocking_card", "last_moved_at", "lane_changed_at", "column_changed_at",
        "first_moved_to_in_progress_at", "last_moved_to_done_at", "completed_at",
        "completed_on_time", "planned_start", "planned_end", "comments_total",
        "comment_last_added_at", "time_spent_sum", "time_blocked_sum", "parents_ids",
        "children_ids", "tag_ids", "properties", "owner", "type", "board", "column", "lane",
        "members", "tags", "checklists", "files", "path_data",
    }  # fmt: skip
    for card in cards:
        assert documented <= set(card)
        assert TS.match(card["created"])
        assert TS.match(card["updated"])
        assert "space_id" not in card
        assert card["path_data"]["space"]["id"]
    assert len(cards[0]) >= 80
    values = [v for c in cards if c["properties"] for k, v in c["properties"].items()]
    assert all(
        re.fullmatch(r"id_\d+", k) for c in cards if c["properties"] for k in c["properties"]
    )
    assert any(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    assert any(isinstance(v, str) for v in values)
    assert any(isinstance(v, list) and all(isinstance(i, int) for i in v) for v in values)
    texts = " ".join(c["title"] + (c["description"] or "") for c in cards)
    for needle in ("ё", "🚀", '"', "«", "\n", "\u0000"):
        assert needle in texts, f"no {needle!r} anywhere in titles/descriptions"
    assert any(m["type"] == 2 for c in cards for m in c["members"])


def test_many_cards_share_one_updated_millisecond(kaiten_sandbox_factory):
    cards = kaiten_sandbox_factory(seed=42, cards=3000).truth("cards")["cards"]
    counts: dict[str, int] = {}
    for card in cards:
        counts[card["updated"]] = counts.get(card["updated"], 0) + 1
    assert max(counts.values()) >= 5
    assert sum(n for n in counts.values() if n > 1) > len(cards) // 10


def test_same_seed_same_workspace_other_seed_other_workspace(kaiten_sandbox_factory):
    first = kaiten_sandbox_factory(seed=7, cards=200)
    again = kaiten_sandbox_factory(seed=7, cards=200)
    other = kaiten_sandbox_factory(seed=8, cards=200)
    assert first.truth() == again.truth()
    assert first.token == again.token
    assert first.truth()["cards"] != other.truth()["cards"]


def test_empty_workspace_serves_empty_lists(kaiten_sandbox_factory):
    sandbox = kaiten_sandbox_factory(seed=1, cards=0)
    with session_for(sandbox) as api:
        assert api.get(f"{sandbox.api_url}/cards").json() == []
        assert api.get(f"{sandbox.api_url}/tags").json() == []
        assert api.get(f"{sandbox.api_url}/spaces").status_code == 200


def test_state_endpoint_equals_python_truth(kaiten_sandbox, api):
    kaiten_sandbox.mutate(update=3, delete=2)
    assert api.get(f"{kaiten_sandbox.base_url}/_sandbox/state").json() == kaiten_sandbox.truth()


def test_card_sub_resources_mirror_the_card(kaiten_sandbox_factory):
    sandbox = kaiten_sandbox_factory(seed=42, cards=2000)
    cards = {c["id"]: c for c in sandbox.truth("cards")["cards"]}
    parent = next(c for c in cards.values() if c["children_ids"])
    blocked = next(c for c in cards.values() if c["blockers"])
    tagged = next(c for c in cards.values() if c["tags"] and c["members"])
    with session_for(sandbox) as api:

        def get(card, sub):
            response = api.get(f"{sandbox.api_url}/cards/{card['id']}/{sub}")
            assert response.status_code == 200
            return response.json()

        assert [c["id"] for c in get(parent, "children")] == parent["children_ids"]
        assert get(blocked, "blockers") == blocked["blockers"]
        assert get(tagged, "tags") == tagged["tags"]
        assert get(tagged, "members") == tagged["members"]
        assert get(tagged, "external-links") == []
        assert get(tagged, "time-logs") == []
        assert api.get(f"{sandbox.api_url}/cards/5/time-logs").status_code == 404
