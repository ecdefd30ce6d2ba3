"""HTTP behaviour against the sandbox: errors, retries, waits, paging edge cases."""

from __future__ import annotations

import email.utils
import json
import logging
import socket
import time

import pytest
from kaiten_tap_helpers import base_config, run_cli, stdout_result, sync
from singer_sdk.exceptions import RetriableAPIError

from tap_kaiten import client
from tap_kaiten.client import MAX_ATTEMPTS, KaitenAPIError, KaitenStream


@pytest.fixture
def fast_retries(monkeypatch):
    # Shorter exponential waits keep the suite quick; server-requested waits are unchanged.
    monkeypatch.setattr(KaitenStream, "retry_base_seconds", 0.01)
    monkeypatch.setattr(KaitenStream, "retry_cap_seconds", 0.05)


def requests_to(sandbox, suffix):
    by_path = sandbox.stats()["requests_by_path"]
    return sum(n for path, n in by_path.items() if path.endswith(suffix))


def inject(sandbox, **entry):
    sandbox.configure(inject=[entry])


# ------------------------------------------------------------------ fatal answers
def test_invalid_token_exits_1_with_the_401_message(kaiten_sandbox, tmp_path):
    wrong = "11111111-2222-3333-4444-555555555555"
    process = run_cli([], config=base_config(kaiten_sandbox, api_token=wrong), tmp_path=tmp_path)
    assert process.returncode == 1
    last_line = process.stderr.strip().splitlines()[-1]
    assert last_line.startswith("Kaiten API Error [401]: the token is invalid or expired")
    assert "without the word 'Bearer'" in last_line
    assert "Traceback" not in process.stderr
    assert wrong not in process.stderr + process.stdout
    assert kaiten_sandbox.stats()["requests_total"] == 1  # 401 is not retried


def test_connection_test_reports_a_bad_token_in_one_line(kaiten_sandbox, tmp_path):
    # `meltano config tap-kaiten test` runs `tap-kaiten --test`.
    wrong = "11111111-2222-3333-4444-555555555555"
    process = run_cli(
        ["--test=all"], config=base_config(kaiten_sandbox, api_token=wrong), tmp_path=tmp_path
    )
    assert process.returncode == 1
    assert process.stderr.strip().splitlines()[-1].startswith("Kaiten API Error [401]")
    assert "Traceback" not in process.stderr


def test_404_on_the_first_request_points_at_the_company_domain(kaiten_sandbox, tmp_path):
    inject(kaiten_sandbox, path="/api/latest", status=404, body="")
    process = run_cli([], config=base_config(kaiten_sandbox), tmp_path=tmp_path)
    assert process.returncode == 1
    assert process.stderr.strip().splitlines()[-1] == (
        "Kaiten API Error [404]: check the company domain in KAITEN_API_URL"
    )
    assert "Traceback" not in process.stderr


def test_unknown_host_fails_at_once_pointing_at_the_company_domain(tmp_path):
    config = {
        "api_url": "https://my-studio.kaiten.invalid",
        "api_token": "296a5709-99bc-49a7-96e0-c0a1b236091f",
    }
    process = run_cli([], config=config, tmp_path=tmp_path)
    assert process.returncode == 1
    assert process.stderr.strip().splitlines()[-1] == (
        "Kaiten API Error: the host my-studio.kaiten.invalid does not exist: "
        "check the company domain in KAITEN_API_URL"
    )
    assert "retrying in" not in process.stderr


def test_refused_connection_before_any_answer_fails_after_one_quick_retry(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    config = {
        "api_url": f"http://127.0.0.1:{port}",
        "api_token": "296a5709-99bc-49a7-96e0-c0a1b236091f",
    }
    process = run_cli([], config=config, tmp_path=tmp_path)
    assert process.returncode == 1
    assert process.stderr.strip().splitlines()[-1] == (
        f"Kaiten API Error: cannot connect to 127.0.0.1:{port}: "
        "check KAITEN_API_URL and the network"
    )
    assert process.stderr.count("retrying in") == 1


def test_other_4xx_names_status_path_and_kaitens_message_without_retrying(kaiten_sandbox):
    body = json.dumps({"message": "Доступ к пространству запрещён"})
    inject(kaiten_sandbox, path="/card-types", status=403, body=body)
    with pytest.raises(KaitenAPIError) as info:
        sync(base_config(kaiten_sandbox), streams=["card_types"])
    assert str(info.value) == (
        "Kaiten API Error [403] on /api/latest/card-types: Доступ к пространству запрещён"
    )
    assert requests_to(kaiten_sandbox, "/card-types") == 1


def test_404_of_a_card_deleted_meanwhile_skips_its_sub_resource(kaiten_sandbox):
    inject(kaiten_sandbox, path="/location-history", status=404, body="")
    result = sync(base_config(kaiten_sandbox), streams=["cards", "card_location_history"])
    truth = kaiten_sandbox.truth()
    assert len(result.records["cards"]) == len(truth["cards"])
    # One card's history is missing, every other card's is complete.
    assert len({h["card_id"] for h in result.records["card_location_history"]}) == (
        len(truth["cards"]) - 1
    )


# ------------------------------------------------------------------ 429 and waits
def http_date_in(seconds: float) -> str:
    return email.utils.formatdate(time.time() + seconds, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "min_wait"),
    [
        ({"Retry-After": "2"}, 1.9),
        ({"Retry-After": "0"}, 0.9),  # 0 is taken as 1 second
        ({"Retry-After": "HTTP-DATE+3"}, 1.9),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "EPOCH+3"}, 1.9),
        ({}, 0.99),  # no hint at all: a whole sliding-window second, never less
    ],
    ids=[
        "retry-after-seconds",
        "retry-after-zero",
        "retry-after-http-date",
        "ratelimit-reset",
        "no-header",
    ],
)
def test_429_waits_as_the_server_asks_then_succeeds(kaiten_sandbox, headers, min_wait):
    now = time.time()
    resolved = {
        key: (
            http_date_in(3)
            if value == "HTTP-DATE+3"
            else str(int(now) + 3)
            if value == "EPOCH+3"
            else value
        )
        for key, value in headers.items()
    }
    inject(kaiten_sandbox, path="/users", status=429, headers=resolved)
    started = time.monotonic()
    result = sync(base_config(kaiten_sandbox), streams=["users"])
    waited = time.monotonic() - started
    assert waited >= min_wait
    assert len(result.records["users"]) == len(kaiten_sandbox.truth()["users"])
    assert requests_to(kaiten_sandbox, "/users") == 2


def test_exhausted_quota_on_a_success_pauses_the_next_request(kaiten_sandbox):
    reset = str(int(time.time()) + 2)
    inject(
        kaiten_sandbox,
        path="/card-types",
        status=200,
        body="[]",
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
    )
    started = time.monotonic()
    result = sync(base_config(kaiten_sandbox), streams=["card_types", "tags"])
    assert time.monotonic() - started >= 0.9  # the tags request waited for the reset
    assert len(result.records["tags"]) == len(kaiten_sandbox.truth()["tags"])


def test_client_limiter_keeps_a_full_sync_under_the_api_limit(kaiten_sandbox_factory):
    sandbox = kaiten_sandbox_factory(seed=4, cards=60, rate_limit=25)
    result = sync(base_config(sandbox, requests_per_second=25))
    stats = sandbox.stats()
    assert stats["rate_limited"] == 0
    assert stats["max_requests_in_any_1s"] <= 25
    assert stats["requests_total"] > 60  # many streams shared the one limiter
    assert len(result.records["cards"]) == 60


def test_a_request_held_up_on_its_way_costs_no_429(kaiten_sandbox_factory):
    # The server counts a request when it admits it: one held up 0.4 s before admission
    # lands among the next ones, and spacing by send time alone then puts 6 in a second.
    sandbox = kaiten_sandbox_factory(seed=4, cards=20, rate_limit=5)
    inject(sandbox, count=1, path="/cards", latency_ms=400)
    config = base_config(sandbox, requests_per_second=5, include_checklists=False)
    result = sync(config, streams=["cards", "card_location_history"])
    stats = sandbox.stats()
    assert stats["rate_limited"] == 0
    assert stats["max_requests_in_any_1s"] <= 5
    assert len(result.records["cards"]) == 20
    assert len(result.records["card_location_history"]) == len(
        sandbox.truth("card_location_history")["card_location_history"]
    )


def test_a_server_limit_below_the_setting_slows_the_tap_down(kaiten_sandbox_factory, caplog):
    sandbox = kaiten_sandbox_factory(seed=4, cards=20, rate_limit=10)
    with caplog.at_level(logging.WARNING):
        result = sync(base_config(sandbox, requests_per_second=200, include_checklists=False))
    assert "Kaiten allows 10 requests per second; slowing down from 200" in caplog.text
    assert sandbox.stats()["rate_limited"] == 0
    assert len(result.records["cards"]) == 20


# ------------------------------------------------------------------ retries
def test_5xx_is_retried_with_backoff(kaiten_sandbox, fast_retries):
    inject(kaiten_sandbox, path="/tags", status=503, count=2)
    result = sync(base_config(kaiten_sandbox), streams=["tags"])
    assert len(result.records["tags"]) == len(kaiten_sandbox.truth()["tags"])
    assert requests_to(kaiten_sandbox, "/tags") == 3


def test_retries_are_bounded(kaiten_sandbox, fast_retries):
    inject(kaiten_sandbox, path="/tags", status=500, count=50)
    with pytest.raises(RetriableAPIError):
        sync(base_config(kaiten_sandbox), streams=["tags"])
    assert requests_to(kaiten_sandbox, "/tags") == MAX_ATTEMPTS


def test_timeouts_are_retried(kaiten_sandbox, fast_retries):
    inject(kaiten_sandbox, path="/tags", latency_ms=2500)
    result = sync(base_config(kaiten_sandbox, request_timeout=1), streams=["tags"])
    assert len(result.records["tags"]) == len(kaiten_sandbox.truth()["tags"])
    assert requests_to(kaiten_sandbox, "/tags") == 2


def test_dropped_connections_are_retried(kaiten_sandbox, fast_retries):
    inject(kaiten_sandbox, path="/cards", drop=True, count=2)
    result = sync(base_config(kaiten_sandbox), streams=["cards"])
    assert len(result.records["cards"]) == len(kaiten_sandbox.truth()["cards"])


def test_random_faults_do_not_lose_or_duplicate_records(kaiten_sandbox_factory, fast_retries):
    sandbox = kaiten_sandbox_factory(seed=8, cards=250)
    sandbox.configure(fault_rate=0.1, drop_rate=0.05)
    result = sync(base_config(sandbox), streams=["cards", "users"])
    truth = sandbox.truth()
    assert sorted(result.ids("cards")) == sorted(card["id"] for card in truth["cards"])
    assert sorted(result.ids("users")) == sorted(user["id"] for user in truth["users"])


# ------------------------------------------------------------------ paging edge cases
def test_an_empty_body_mid_paging_is_asked_again(kaiten_sandbox):
    # The second /cards page comes back 200 with no body once.
    inject(kaiten_sandbox, path="/cards", empty_body=True, count=1)
    kaiten_sandbox.reset_stats()
    result = sync(base_config(kaiten_sandbox), streams=["cards"])
    assert sorted(result.ids("cards")) == sorted(c["id"] for c in kaiten_sandbox.truth()["cards"])
    assert kaiten_sandbox.stats()["faults_injected"]["empty_body"] == 1


def test_an_empty_body_given_twice_means_an_empty_list(kaiten_sandbox):
    inject(kaiten_sandbox, path="/tags", empty_body=True, count=2)
    result = sync(base_config(kaiten_sandbox), streams=["tags"])
    assert result.records["tags"] == []
    assert requests_to(kaiten_sandbox, "/tags") == 2


def test_an_endpoint_repeating_the_same_page_is_detected(kaiten_sandbox, caplog):
    users = [{"id": 5000 + i, "full_name": f"User {i}"} for i in range(100)]
    body = json.dumps(users)
    inject(kaiten_sandbox, path="/users", status=200, body=body, count=5)
    with caplog.at_level(logging.WARNING):
        result = sync(base_config(kaiten_sandbox), streams=["users"])
    assert result.ids("users") == [user["id"] for user in users]
    assert requests_to(kaiten_sandbox, "/users") == 2
    assert "repeated the previous page" in caplog.text


def test_short_page_ends_paging(kaiten_sandbox):
    result = sync(base_config(kaiten_sandbox), streams=["users"])
    assert 0 < len(result.records["users"]) < 100
    # One short page, no extra "is there more?" request.
    assert requests_to(kaiten_sandbox, "/users") == 1


# ------------------------------------------------------------------ secrecy and progress
def test_token_never_appears_in_output_even_at_debug(kaiten_sandbox_factory, tmp_path):
    sandbox = kaiten_sandbox_factory(seed=1, cards=30)
    process = run_cli(
        [],
        config=base_config(sandbox),
        tmp_path=tmp_path,
        env={"TAP_KAITEN_LOGLEVEL": "DEBUG", "LOGLEVEL": "DEBUG"},
    )
    assert process.returncode == 0, process.stderr[-2000:]
    assert "DEBUG" in process.stderr
    assert sandbox.token not in process.stderr
    assert sandbox.token not in process.stdout  # records and state included
    assert len(stdout_result(process).records["cards"]) == 30


def test_progress_is_logged_with_records_and_requests(kaiten_sandbox, monkeypatch, caplog):
    monkeypatch.setattr(client, "PROGRESS_LOG_SECONDS", 0.0)
    with caplog.at_level(logging.INFO):
        sync(base_config(kaiten_sandbox, include_checklists=False), streams=["cards"])
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Progress cards")]
    assert lines
    cards_requests = requests_to(kaiten_sandbox, "/cards")
    assert lines[-1] == f"Progress cards: 300 records so far, {cards_requests} requests made"
