"""/cards paging, clamping, filters, archived handling and ordering, as Kaiten does them."""

from __future__ import annotations

import random

import pytest

from kaiten_sandbox.testing import fetch_all

PINNED = {"order_by": "updated,id", "order_direction": "asc,asc"}


def cards_url(sandbox):
    return f"{sandbox.api_url}/cards"


def live(truth):
    return [c for c in truth["cards"] if c["condition"] == 1]


def test_default_limit_is_100_and_paging_ends_on_a_short_page(kaiten_sandbox, api):
    first = api.get(cards_url(kaiten_sandbox)).json()
    assert len(first) == 100
    rows = fetch_all(api, cards_url(kaiten_sandbox), PINNED)
    assert len(rows) % 100 != 0
    assert len(rows) == len(live(kaiten_sandbox.truth()))


def test_limit_above_100_is_clamped_not_rejected(kaiten_sandbox, api):
    response = api.get(cards_url(kaiten_sandbox), params={"limit": 1000})
    assert response.status_code == 200
    assert len(response.json()) == 100


def test_pages_are_bare_arrays_and_offset_skips_records(kaiten_sandbox, api):
    everything = [c["id"] for c in fetch_all(api, cards_url(kaiten_sandbox), PINNED)]
    page = api.get(cards_url(kaiten_sandbox), params={**PINNED, "limit": 7, "offset": 30}).json()
    assert isinstance(page, list)
    assert [c["id"] for c in page] == everything[30:37]


def test_list_items_omit_checklists_and_description_unless_requested(kaiten_sandbox, api):
    truth = {c["id"]: c for c in kaiten_sandbox.truth()["cards"]}
    plain = api.get(cards_url(kaiten_sandbox), params=PINNED).json()
    assert all("checklists" not in c and "description" not in c for c in plain)
    rich = api.get(
        cards_url(kaiten_sandbox), params={**PINNED, "additional_card_fields": "description"}
    ).json()
    for card in rich:
        expected = {k: v for k, v in truth[card["id"]].items() if k != "checklists"}
        assert card == expected


def test_archived_cards_are_excluded_unless_archived_true(kaiten_sandbox, api):
    truth = kaiten_sandbox.truth()
    url = cards_url(kaiten_sandbox)
    archived_ids = {c["id"] for c in truth["cards"] if c["condition"] == 2}
    assert archived_ids
    default = {c["id"] for c in fetch_all(api, url, PINNED)}
    assert default == {c["id"] for c in live(truth)}
    everything = {c["id"] for c in fetch_all(api, url, {**PINNED, "archived": "true"})}
    assert everything == {c["id"] for c in truth["cards"]}
    only_archived = fetch_all(api, url, {**PINNED, "archived": "true", "condition": 2})
    assert {c["id"] for c in only_archived} == archived_ids
    assert all(c["archived"] is True and c["condition"] == 2 for c in only_archived)
    assert fetch_all(api, url, {**PINNED, "condition": 2}) == []
    only_live = {
        c["id"] for c in fetch_all(api, url, {**PINNED, "archived": "true", "condition": 1})
    }
    assert only_live == default


@pytest.mark.parametrize(("mode", "keeps_bound"), [("inclusive", True), ("strict", False)])
def test_updated_after_semantics_are_switchable(kaiten_sandbox, api, mode, keeps_bound):
    kaiten_sandbox.configure(updated_after=mode)
    truth = kaiten_sandbox.truth()["cards"]
    bound = sorted(c["updated"] for c in truth)[len(truth) // 2]
    params = {**PINNED, "archived": "true", "updated_after": bound}
    got = {c["id"] for c in fetch_all(api, cards_url(kaiten_sandbox), params)}
    expected = {
        c["id"] for c in truth if c["updated"] > bound or (keeps_bound and c["updated"] == bound)
    }
    assert got == expected
    assert any(c["updated"] == bound for c in truth)


def test_date_filters_select_the_right_window(kaiten_sandbox, api):
    truth = kaiten_sandbox.truth()["cards"]
    stamps = sorted(c["updated"] for c in truth)
    low, high = stamps[50], stamps[200]
    params = {**PINNED, "archived": "true", "updated_after": low, "updated_before": high}
    got = {c["id"] for c in fetch_all(api, cards_url(kaiten_sandbox), params)}
    assert got == {c["id"] for c in truth if low <= c["updated"] < high}
    created = sorted(c["created"] for c in truth)[100]
    params = {**PINNED, "archived": "true", "created_after": created}
    got = {c["id"] for c in fetch_all(api, cards_url(kaiten_sandbox), params)}
    assert got == {c["id"] for c in truth if c["created"] >= created}
    params = {**PINNED, "archived": "true", "created_before": created}
    got = {c["id"] for c in fetch_all(api, cards_url(kaiten_sandbox), params)}
    assert got == {c["id"] for c in truth if c["created"] < created}


def test_date_filters_accept_offsets_and_plain_dates(kaiten_sandbox, api):
    url = cards_url(kaiten_sandbox)
    zulu = api.get(url, params={"updated_after": "2025-01-01T03:00:00.000Z", **PINNED}).json()
    moscow = api.get(url, params={"updated_after": "2025-01-01T06:00:00+03:00", **PINNED}).json()
    assert zulu == moscow
    assert api.get(url, params={"updated_after": "2025-01-01"}).status_code == 200


@pytest.mark.parametrize(
    ("param", "field"),
    [("board_id", "board_id"), ("column_id", "column_id"), ("lane_id", "lane_id"),
     ("type_id", "type_id"), ("owner_id", "owner_id")],
)  # fmt: skip
def test_id_filters_match_the_card_field(kaiten_sandbox, api, param, field):
    truth = kaiten_sandbox.truth()["cards"]
    value = truth[0][field]
    params = {**PINNED, "archived": "true", param: value}
    got = {c["id"] for c in fetch_all(api, cards_url(kaiten_sandbox), params)}
    assert got == {c["id"] for c in truth if c[field] == value}
    assert got


def test_space_id_filter_follows_board_placement(kaiten_sandbox, api):
    truth = kaiten_sandbox.truth()
    space_id = truth["spaces"][0]["id"]
    boards = {b for s, b in truth["space_boards"] if s == space_id}
    params = {**PINNED, "archived": "true", "space_id": space_id}
    got = {c["id"] for c in fetch_all(api, cards_url(kaiten_sandbox), params)}
    assert got == {c["id"] for c in truth["cards"] if c["board_id"] in boards}
    assert got


def test_list_filters_states_members_tags_query_external_id(kaiten_sandbox, api):
    truth = kaiten_sandbox.truth()["cards"]
    url = cards_url(kaiten_sandbox)
    base = {**PINNED, "archived": "true"}

    def ids(**params):
        return {c["id"] for c in fetch_all(api, url, {**base, **params})}

    assert ids(states="1,3") == {c["id"] for c in truth if c["state"] in (1, 3)}
    member = next(c["members"][0]["id"] for c in truth if c["members"])
    assert ids(member_ids=member) == {
        c["id"] for c in truth if member in {m["id"] for m in c["members"]}
    }
    tag = next(c["tag_ids"][0] for c in truth if c["tag_ids"])
    assert ids(tag_ids=tag) == {c["id"] for c in truth if tag in c["tag_ids"]}
    word = truth[0]["title"].split()[0]
    assert ids(query=word) == {c["id"] for c in truth if word.casefold() in c["title"].casefold()}
    external = next(c["external_id"] for c in truth if c["external_id"])
    assert ids(external_id=external) == {c["id"] for c in truth if c["external_id"] == external}
    excluded = truth[0]["board_id"]
    assert ids(exclude_board_ids=excluded) == {c["id"] for c in truth if c["board_id"] != excluded}


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_order_by_comma_lists_sort_by_position(kaiten_sandbox, api, direction):
    params = {"order_by": "updated,id", "order_direction": f"{direction},{direction}"}
    rows = fetch_all(api, cards_url(kaiten_sandbox), {**params, "archived": "true"})
    keys = [(c["updated"], c["id"]) for c in rows]
    assert keys == sorted(keys, reverse=direction == "desc")


def test_order_directions_apply_per_field(kaiten_sandbox, api):
    params = {"order_by": "board_id,id", "order_direction": "desc,asc", "archived": "true"}
    rows = fetch_all(api, cards_url(kaiten_sandbox), params)
    keys = [(-c["board_id"], c["id"]) for c in rows]
    assert keys == sorted(keys)


def test_default_order_is_not_updated_ascending(kaiten_sandbox, api):
    # Kaiten does not document its default order; clients must pin one. Ours is newest first.
    rows = fetch_all(api, cards_url(kaiten_sandbox))
    keys = [(c["created"], c["id"]) for c in rows]
    assert keys == sorted(keys, reverse=True)
    assert [c["updated"] for c in rows] != sorted(c["updated"] for c in rows)


def test_unknown_query_parameters_are_ignored(kaiten_sandbox, api):
    url = cards_url(kaiten_sandbox)
    plain = api.get(url, params=PINNED).json()
    noisy = api.get(url, params={**PINNED, "foo": "bar", "include_everything": "yes"}).json()
    assert noisy == plain


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "abc"},
        {"limit": "-1"},
        {"limit": "0"},
        {"offset": "-5"},
        {"offset": "x"},
        {"updated_after": "yesterday"},
        {"updated_before": "2024-13-45"},
        {"created_after": "2024-01-01T25:00:00Z"},
        {"board_id": "abc"},
        {"condition": "3"},
        {"states": "1,x"},
        {"order_by": "nonexistent"},
        {"order_by": "id", "order_direction": "sideways"},
    ],
)
def test_bad_parameters_get_400_with_a_json_message(kaiten_sandbox, api, params):
    response = api.get(cards_url(kaiten_sandbox), params=params)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"message"}
    name = next(iter(params)) if "order_direction" not in params else "order_direction"
    assert name in body["message"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize("path", ["/users", "/tags", "/card-types", "/company/custom-properties"])
def test_other_lists_validate_limit_too(kaiten_sandbox, api, path):
    response = api.get(f"{kaiten_sandbox.api_url}{path}", params={"limit": "many"})
    assert response.status_code == 400
    assert "limit" in response.json()["message"]


def test_custom_properties_page_with_limit_and_offset(kaiten_sandbox, api):
    truth = kaiten_sandbox.truth()["custom_properties"]
    url = f"{kaiten_sandbox.api_url}/company/custom-properties"
    page = api.get(url, params={"limit": 3, "offset": 3, "include_values": "true"}).json()
    assert page == truth[3:6]
    assert len(api.get(url, params={"limit": 900}).json()) == len(truth)


@pytest.mark.parametrize("mode", ["inclusive", "strict"])
def test_indexed_keyset_pages_equal_the_general_query_path(kaiten_sandbox, api, mode):
    # order_by=updated,id is answered from an (updated, id) index; adding a redundant
    # third key forces the filter-and-sort path. Both must give the same pages.
    kaiten_sandbox.configure(updated_after=mode)
    kaiten_sandbox.mutate(touch_same_ms=30, archive=5)
    cards = kaiten_sandbox.truth("cards")["cards"]
    stamps = sorted({c["updated"] for c in cards})
    rng = random.Random(5)
    url = cards_url(kaiten_sandbox)
    for _ in range(60):
        params = {"limit": rng.choice([1, 7, 100]), "offset": rng.choice([0, 0, 3, 150, 10_000])}
        if rng.random() < 0.7:
            params["updated_after"] = rng.choice(stamps)
        if rng.random() < 0.3:
            params["updated_before"] = rng.choice(stamps)
        if rng.random() < 0.5:
            params["archived"] = "true"
        if rng.random() < 0.4:
            params["condition"] = rng.choice([1, 2])
        if rng.random() < 0.3:
            params["board_id"] = rng.choice(cards)["board_id"]
        direction = rng.choice(["asc", "desc"])
        fast = api.get(
            url,
            params={
                **params,
                "order_by": "updated,id",
                "order_direction": f"{direction},{direction}",
            },
        )
        slow = api.get(
            url,
            params={
                **params,
                "order_by": "updated,id,version",
                "order_direction": f"{direction},{direction},asc",
            },
        )
        assert fast.status_code == slow.status_code == 200
        assert [c["id"] for c in fast.json()] == [c["id"] for c in slow.json()], params
