"""Fault injection: random 5xx, latency, dropped connections, empty bodies, paging shifts,
and scripted per-test faults."""

from __future__ import annotations

import pytest
import requests

from kaiten_sandbox.testing import fetch_all

PINNED = {"order_by": "updated,id", "order_direction": "asc,asc", "archived": "true"}


def test_fault_rate_one_answers_every_request_with_a_configured_5xx(kaiten_sandbox, api):
    kaiten_sandbox.configure(fault_rate=1.0)
    statuses = {api.get(f"{kaiten_sandbox.api_url}/cards").status_code for _ in range(30)}
    assert statuses <= {500, 502, 503}
    assert len(statuses) >= 2
    kaiten_sandbox.configure(fault_statuses=[503])
    assert api.get(f"{kaiten_sandbox.api_url}/tags").status_code == 503
    faults = kaiten_sandbox.stats()["faults_injected"]
    assert sum(faults.get(s, 0) for s in ("500", "502", "503")) == 31


def test_partial_fault_rate_mixes_failures_and_successes(kaiten_sandbox, api):
    kaiten_sandbox.configure(fault_rate=0.3)
    statuses = [api.get(f"{kaiten_sandbox.api_url}/users/current").status_code for _ in range(60)]
    assert 200 in statuses
    assert any(s >= 500 for s in statuses)


def test_faults_never_hit_control_endpoints(kaiten_sandbox):
    kaiten_sandbox.configure(fault_rate=1.0, drop_rate=1.0)
    assert requests.get(f"{kaiten_sandbox.base_url}/_sandbox/stats").status_code == 200
    response = requests.post(f"{kaiten_sandbox.base_url}/_sandbox/mutate", json={"update": 1})
    assert response.status_code == 200


def test_dropped_connection_closes_without_an_answer(kaiten_sandbox, api):
    kaiten_sandbox.configure(drop_rate=1.0)
    with pytest.raises(requests.exceptions.ConnectionError):
        api.get(f"{kaiten_sandbox.api_url}/cards")
    kaiten_sandbox.configure(drop_rate=0.0)
    assert api.get(f"{kaiten_sandbox.api_url}/cards").status_code == 200
    assert kaiten_sandbox.stats()["faults_injected"]["drop"] == 1


def test_latency_delays_answers(kaiten_sandbox, api):
    kaiten_sandbox.configure(latency_ms=250)
    response = api.get(f"{kaiten_sandbox.api_url}/users/current")
    assert response.status_code == 200
    assert response.elapsed.total_seconds() >= 0.25


def test_empty_body_on_list_endpoints_only(kaiten_sandbox, api):
    kaiten_sandbox.configure(empty_body_rate=1.0)
    card_id = kaiten_sandbox.truth()["cards"][0]["id"]
    for path in ("/cards", "/users", "/tags", "/spaces", f"/cards/{card_id}/comments"):
        response = api.get(f"{kaiten_sandbox.api_url}{path}")
        assert response.status_code == 200
        assert response.content == b""
    assert api.get(f"{kaiten_sandbox.api_url}/cards/{card_id}").json()["id"] == card_id
    assert api.get(f"{kaiten_sandbox.api_url}/users/current").json()["id"]


def test_mutations_while_paging_shift_offset_pages(kaiten_sandbox, api):
    kaiten_sandbox.configure(mutate_while_paging=5)
    before = {c["id"] for c in kaiten_sandbox.truth()["cards"]}
    rows = fetch_all(api, f"{kaiten_sandbox.api_url}/cards", PINNED)
    ids = [c["id"] for c in rows]
    # Cards updated between pages jump to the end: some are read twice, others skipped.
    assert len(ids) != len(set(ids)) or set(ids) != before
    assert kaiten_sandbox.stats()["faults_injected"]["mutate_while_paging"] >= 2
    assert {c["id"] for c in kaiten_sandbox.truth()["cards"]} == before


def test_no_mutation_on_the_first_page(kaiten_sandbox, api):
    kaiten_sandbox.configure(mutate_while_paging=5)
    before = kaiten_sandbox.truth()
    api.get(f"{kaiten_sandbox.api_url}/cards", params=PINNED)
    assert kaiten_sandbox.truth() == before


@pytest.mark.parametrize(
    "retry_after", ["0", "1", "Wed, 21 Oct 2015 07:28:00 GMT", None], ids=["0", "1", "date", "none"]
)
def test_scripted_429s_then_normal_answers(kaiten_sandbox, api, retry_after):
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    kaiten_sandbox.configure(inject=[{"count": 2, "status": 429, "headers": headers}])
    first = api.get(f"{kaiten_sandbox.api_url}/cards")
    second = api.get(f"{kaiten_sandbox.api_url}/cards")
    third = api.get(f"{kaiten_sandbox.api_url}/cards")
    assert [first.status_code, second.status_code, third.status_code] == [429, 429, 200]
    assert first.headers.get("Retry-After") == retry_after
    assert first.headers["Content-Type"].startswith("text/html")
    assert kaiten_sandbox.config["inject"] == []


def test_scripted_fault_can_target_one_path(kaiten_sandbox, api):
    kaiten_sandbox.configure(inject=[{"count": 1, "status": 500, "path": "/cards"}])
    assert api.get(f"{kaiten_sandbox.api_url}/users/current").status_code == 200
    failed = api.get(f"{kaiten_sandbox.api_url}/cards")
    assert failed.status_code == 500
    assert failed.json() == {"message": "Internal server error"}
    assert api.get(f"{kaiten_sandbox.api_url}/cards").status_code == 200


def test_scripted_drop_empty_body_and_custom_body(kaiten_sandbox, api):
    kaiten_sandbox.configure(
        inject=[
            {"count": 1, "drop": True},
            {"count": 1, "empty_body": True},
            {"count": 1, "status": 402, "body": '{"message": "Not in your tariff"}'},
            {"count": 1, "status": 403, "body": "Forbidden"},
        ]
    )
    with pytest.raises(requests.exceptions.ConnectionError):
        api.get(f"{kaiten_sandbox.api_url}/cards")
    empty = api.get(f"{kaiten_sandbox.api_url}/cards")
    assert (empty.status_code, empty.content) == (200, b"")
    paid = api.get(f"{kaiten_sandbox.api_url}/cards")
    assert paid.status_code == 402
    assert paid.text == '{"message": "Not in your tariff"}'
    assert paid.headers["Content-Type"].startswith("application/json")
    forbidden = api.get(f"{kaiten_sandbox.api_url}/cards")
    assert (forbidden.status_code, forbidden.text) == (403, "Forbidden")
    assert forbidden.headers["Content-Type"].startswith("text/plain")
    assert len(api.get(f"{kaiten_sandbox.api_url}/cards").json()) == 100


def test_faults_configured_at_start(kaiten_sandbox_factory):
    sandbox = kaiten_sandbox_factory(cards=10, fault_rate=1.0)
    response = requests.get(
        f"{sandbox.api_url}/cards", headers={"Authorization": f"Bearer {sandbox.token}"}
    )
    assert response.status_code in (500, 502, 503)


def test_scripted_headers_without_status_decorate_the_real_answer(kaiten_sandbox, api):
    kaiten_sandbox.configure(
        inject=[{"path": "/tags", "headers": {"X-RateLimit-Remaining": "0", "X-Extra": "1"}}]
    )
    response = api.get(f"{kaiten_sandbox.api_url}/tags")
    assert response.status_code == 200
    assert response.json() == kaiten_sandbox.truth("tags")["tags"][:100]
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert "X-Extra" not in api.get(f"{kaiten_sandbox.api_url}/tags").headers
