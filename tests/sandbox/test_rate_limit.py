"""Per-token sliding-window rate limiting with Kaiten's headers and 429 shape."""

from __future__ import annotations

import time

import requests

from kaiten_sandbox.testing import session_for

OTHER_TOKEN = "11111111-2222-4333-8444-555555555555"


def burst_until_429(session, url, attempts=50):
    """Fire requests back to back; return (statuses, first 429 response)."""
    statuses = []
    for _ in range(attempts):
        response = session.get(url)
        statuses.append(response.status_code)
        if response.status_code == 429:
            return statuses, response
    return statuses, None


def test_every_api_response_carries_rate_limit_headers(kaiten_sandbox, api):
    kaiten_sandbox.configure(rate_limit=50)
    for path in ("/users/current", "/cards", "/nope", "/cards/abc"):
        response = api.get(f"{kaiten_sandbox.api_url}{path}")
        assert response.headers["x-ratelimit-limit"] == "50"
        assert 0 <= int(response.headers["x-ratelimit-remaining"]) < 50
        reset = int(response.headers["x-ratelimit-reset"])
        assert time.time() - 1 <= reset <= time.time() + 2


def test_remaining_counts_down_within_the_window(kaiten_sandbox, api):
    kaiten_sandbox.configure(rate_limit=50)
    remaining = [
        int(api.get(f"{kaiten_sandbox.api_url}/users/current").headers["x-ratelimit-remaining"])
        for _ in range(3)
    ]
    assert remaining[0] > remaining[1] > remaining[2]


def test_burst_over_the_limit_gets_429_html_with_retry_after(kaiten_sandbox, api):
    kaiten_sandbox.configure(rate_limit=3)
    statuses, limited = burst_until_429(api, f"{kaiten_sandbox.api_url}/users/current")
    assert limited is not None, statuses
    assert statuses[:3] == [200, 200, 200]
    assert limited.headers["Retry-After"] == "1"
    assert limited.headers["Content-Type"].startswith("text/html")
    assert "Too many requests, please try again later." in limited.text
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert kaiten_sandbox.stats()["rate_limited"] == 1


def test_limit_is_per_token(kaiten_sandbox, api):
    kaiten_sandbox.configure(rate_limit=2, extra_tokens=[OTHER_TOKEN])
    _, limited = burst_until_429(api, f"{kaiten_sandbox.api_url}/users/current")
    assert limited is not None
    with session_for(kaiten_sandbox, OTHER_TOKEN) as other:
        assert other.get(f"{kaiten_sandbox.api_url}/users/current").status_code == 200


def test_waiting_retry_after_lets_the_client_in_again(kaiten_sandbox, api):
    kaiten_sandbox.configure(rate_limit=2)
    _, limited = burst_until_429(api, f"{kaiten_sandbox.api_url}/users/current")
    assert limited is not None
    time.sleep(float(limited.headers["Retry-After"]) + 0.05)
    assert api.get(f"{kaiten_sandbox.api_url}/users/current").status_code == 200


def test_zero_turns_limiting_off(kaiten_sandbox, api):
    kaiten_sandbox.configure(rate_limit=0)
    statuses, limited = burst_until_429(api, f"{kaiten_sandbox.api_url}/users/current", 40)
    assert limited is None
    assert set(statuses) == {200}
    assert "x-ratelimit-limit" not in api.get(f"{kaiten_sandbox.api_url}/tags").headers


def test_control_endpoints_are_never_rate_limited(kaiten_sandbox):
    kaiten_sandbox.configure(rate_limit=1)
    for _ in range(10):
        assert requests.get(f"{kaiten_sandbox.base_url}/_sandbox/stats").status_code == 200


def test_stats_report_the_peak_request_rate(kaiten_sandbox, api):
    kaiten_sandbox.reset_stats()
    for _ in range(6):
        api.get(f"{kaiten_sandbox.api_url}/users/current")
    peak = kaiten_sandbox.stats()["max_requests_in_any_1s"]
    assert 1 <= peak <= 6
