"""Starting, stopping and concurrent use of an in-process sandbox."""

from __future__ import annotations

import threading

import pytest
import requests

from kaiten_sandbox import Sandbox
from kaiten_sandbox.testing import fetch_all, session_for


def test_stop_closes_the_port_and_idle_keep_alive_connections():
    sandbox = Sandbox(cards=5).start()
    session = session_for(sandbox)
    url = f"{sandbox.api_url}/users/current"
    assert session.get(url).status_code == 200  # leaves a kept-alive connection open
    threads_before_stop = threading.active_count()
    sandbox.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(url)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url, timeout=5)
    assert threading.active_count() < threads_before_stop
    sandbox.stop()  # idempotent


def test_context_manager_serves_inside_and_stops_after():
    with Sandbox(cards=5) as sandbox:
        url = f"{sandbox.api_url}/users/current"
        assert session_for(sandbox).get(url).status_code == 200
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url, timeout=5)


def test_addresses_need_a_running_server():
    sandbox = Sandbox(cards=0)
    with pytest.raises(RuntimeError, match="start"):
        _ = sandbox.base_url


def test_factory_fixture_starts_independent_sandboxes(kaiten_sandbox_factory):
    one = kaiten_sandbox_factory(seed=1, cards=5, token="11111111-1111-4111-8111-111111111111")
    two = kaiten_sandbox_factory(seed=1, cards=5, token="22222222-2222-4222-8222-222222222222")
    assert one.port != two.port
    response = session_for(one, two.token).get(f"{one.api_url}/users/current")
    assert response.status_code == 401


def test_bad_constructor_arguments_raise_value_error():
    with pytest.raises(ValueError, match="cards"):
        Sandbox(cards=-1)
    with pytest.raises(ValueError, match="updated_after"):
        Sandbox(cards=1, updated_after="sometimes")
    with pytest.raises(ValueError, match="unknown config"):
        Sandbox(cards=1, rate_limt=5)
    with pytest.raises(ValueError, match="unknown mutate"):
        Sandbox(cards=1).mutate(updates=1)


def test_empty_workspace_accepts_created_cards(kaiten_sandbox_factory):
    sandbox = kaiten_sandbox_factory(cards=0)
    created = sandbox.mutate(create=3)["created"]
    with session_for(sandbox) as api:
        listed = [c["id"] for c in fetch_all(api, f"{sandbox.api_url}/cards")]
    assert sorted(listed) == sorted(created)


def test_concurrent_readers_and_writers_never_get_a_server_error(kaiten_sandbox_factory):
    sandbox = kaiten_sandbox_factory(cards=1000)
    statuses: list[int] = []
    failures: list[BaseException] = []

    def reader() -> None:
        try:
            with session_for(sandbox) as api:
                for offset in range(0, 1000, 100):
                    response = api.get(
                        f"{sandbox.api_url}/cards",
                        params={"offset": offset, "archived": "true", "order_by": "updated"},
                    )
                    statuses.append(response.status_code)
                    card_id = response.json()[0]["id"]
                    statuses.append(api.get(f"{sandbox.api_url}/cards/{card_id}").status_code)
        except BaseException as exc:  # surfaced below: a thread cannot fail the test itself
            failures.append(exc)

    def writer() -> None:
        try:
            for _ in range(10):
                sandbox.mutate(create=2, update=5, move=5, archive=2, unarchive=2, delete=1)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    threads.append(threading.Thread(target=writer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert set(statuses) <= {200, 404}  # a card may be deleted between list and detail
    assert sandbox.stats()["responses_by_status"].get("500", 0) == 0
