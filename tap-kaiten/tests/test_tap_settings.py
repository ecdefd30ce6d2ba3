"""Settings: env fallbacks, normalisation, and one clear line for each bad value."""

from __future__ import annotations

import logging

import pytest
from kaiten_tap_helpers import base_config, run_cli

from tap_kaiten.tap import KaitenSettingsError, TapKaiten

TOKEN = "296a5709-99bc-49a7-96e0-c0a1b236091f"
URL = "https://my-studio.kaiten.ru"
MISSING = "Missing Kaiten API credentials: set KAITEN_API_URL and KAITEN_API_TOKEN"


@pytest.fixture(autouse=True)
def _no_kaiten_env(monkeypatch):
    for name in ("KAITEN_API_URL", "KAITEN_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def settings_error(**config) -> str:
    with pytest.raises(KaitenSettingsError) as info:
        TapKaiten(config=config)
    return str(info.value)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, MISSING),
        ({"api_url": URL}, MISSING),
        ({"api_token": TOKEN}, MISSING),
        ({"api_url": "", "api_token": TOKEN}, MISSING),
        (
            {"api_url": URL + "/api/latest", "api_token": TOKEN},
            "KAITEN_API_URL should NOT include /api/latest or any other path (found '/api/latest')",
        ),
        (
            {"api_url": URL + "/api/v1", "api_token": TOKEN},
            "KAITEN_API_URL should NOT include /api/latest or any other path (found '/api/v1')",
        ),
        (
            {"api_url": URL + "/boards?x=1", "api_token": TOKEN},
            "(found '/boards?x=1')",
        ),
        ({"api_url": "my-studio.kaiten.ru", "api_token": TOKEN}, "KAITEN_API_URL has no scheme"),
        (
            {"api_url": "http://my-studio.kaiten.ru", "api_token": TOKEN},
            "KAITEN_API_URL must use https:// (http is allowed only for localhost)",
        ),
        ({"api_url": "ftp://my-studio.kaiten.ru", "api_token": TOKEN}, "found 'ftp://'"),
        ({"api_url": "https://my studio.kaiten.ru", "api_token": TOKEN}, "invalid host"),
        ({"api_url": "https://-bad-.kaiten.ru", "api_token": TOKEN}, "invalid host"),
        ({"api_url": "https://", "api_token": TOKEN}, "invalid host"),
        ({"api_url": "https://user:pw@x.kaiten.ru", "api_token": TOKEN}, "invalid host"),
        (
            {"api_url": URL, "api_token": "Bearer " + TOKEN},
            "KAITEN_API_TOKEN starts with 'Bearer': remove the word",
        ),
        ({"api_url": URL, "api_token": TOKEN[:8] + " " + TOKEN[8:]}, "contains whitespace"),
        ({"api_url": URL, "api_token": TOKEN + "\n"}, "contains whitespace"),
        (
            {"api_url": URL, "api_token": TOKEN, "start_date": "yesterday"},
            "start_date is not a valid ISO 8601 date/time ('yesterday')",
        ),
        (
            {"api_url": URL, "api_token": TOKEN, "start_date": "2024-13-01"},
            "start_date is not a valid ISO 8601",
        ),
        (
            {"api_url": URL, "api_token": TOKEN, "requests_per_second": 0},
            "requests_per_second must be a number from 0.1 to 1000 (got 0)",
        ),
        (
            {"api_url": URL, "api_token": TOKEN, "requests_per_second": "fast"},
            "requests_per_second must be a number",
        ),
        (
            {"api_url": URL, "api_token": TOKEN, "lookback_minutes": -5},
            "lookback_minutes must be an integer from 0 to 43200 (got -5)",
        ),
        (
            {"api_url": URL, "api_token": TOKEN, "lookback_minutes": 1.5},
            "lookback_minutes must be an integer",
        ),
        (
            {"api_url": URL, "api_token": TOKEN, "request_timeout": 0},
            "request_timeout must be a number from 1 to 600",
        ),
        (
            {"api_url": URL, "api_token": TOKEN, "max_parallel_requests": 0},
            "max_parallel_requests must be an integer from 1 to 32 (got 0)",
        ),
        (
            {"api_url": URL, "api_token": TOKEN, "max_parallel_requests": 64},
            "max_parallel_requests must be an integer from 1 to 32 (got 64)",
        ),
        (
            {"api_url": URL, "api_token": TOKEN, "max_parallel_requests": 2.5},
            "max_parallel_requests must be an integer",
        ),
        ({"api_url": URL, "api_token": TOKEN, "space_ids": [1, -2]}, "space_ids must be a list"),
        ({"api_url": URL, "api_token": TOKEN, "space_ids": "1,2"}, "space_ids must be a list"),
        ({"api_url": URL, "api_token": TOKEN, "include_archived": "no"}, "include_archived"),
    ],
)
def test_bad_setting_is_rejected_with_a_message_saying_what_to_do(config, expected):
    message = settings_error(**config)
    assert expected in message
    assert TOKEN not in message


def test_validation_happens_before_any_request(kaiten_sandbox):
    with pytest.raises(KaitenSettingsError):
        TapKaiten(config=base_config(kaiten_sandbox, api_token="Bearer " + kaiten_sandbox.token))
    assert kaiten_sandbox.stats()["requests_total"] == 0


def test_standalone_reads_kaiten_api_url_and_token_from_the_environment(monkeypatch):
    monkeypatch.setenv("KAITEN_API_URL", URL)
    monkeypatch.setenv("KAITEN_API_TOKEN", TOKEN)
    tap = TapKaiten(config={})
    assert tap.config["api_url"] == URL
    assert tap.config["api_token"] == TOKEN


def test_explicit_settings_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("KAITEN_API_URL", "https://other.kaiten.ru")
    tap = TapKaiten(config={"api_url": URL, "api_token": TOKEN})
    assert tap.config["api_url"] == URL


def test_trailing_slash_and_whitespace_are_removed_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        tap = TapKaiten(config={"api_url": f"  {URL}/ ", "api_token": TOKEN})
    assert tap.config["api_url"] == URL
    assert "surrounding whitespace" in caplog.text
    assert "trailing slash" in caplog.text


def test_http_is_accepted_for_localhost_only():
    for host in ("http://localhost:8080", "http://127.0.0.1:9"):
        assert TapKaiten(config={"api_url": host, "api_token": TOKEN}).config["api_url"] == host


def test_token_that_is_not_a_uuid_only_warns(caplog):
    with caplog.at_level(logging.WARNING):
        TapKaiten(config={"api_url": URL, "api_token": "abc123"})
    assert "does not look like a Kaiten token" in caplog.text
    assert "abc123" not in caplog.text


@pytest.mark.parametrize(
    ("config", "env", "expected"),
    [
        ({}, {}, MISSING),
        (
            {"api_url": URL + "/api/latest", "api_token": TOKEN},
            {},
            "KAITEN_API_URL should NOT include /api/latest",
        ),
        ({"api_url": URL, "api_token": "Bearer " + TOKEN}, {}, "remove the word"),
        ({"api_url": URL, "api_token": TOKEN, "start_date": "2024-02-30"}, {}, "start_date"),
        (
            {"api_url": URL, "api_token": TOKEN, "max_parallel_requests": 0},
            {},
            "max_parallel_requests must be an integer from 1 to 32",
        ),
        (None, {"KAITEN_API_URL": URL + "/api/v1", "KAITEN_API_TOKEN": TOKEN}, "'/api/v1'"),
    ],
)
def test_cli_prints_one_line_and_exits_1_without_traceback(tmp_path, config, env, expected):
    process = run_cli([], config=config, tmp_path=tmp_path, env=env)
    assert process.returncode == 1
    lines = process.stderr.strip().splitlines()
    assert expected in lines[-1]
    assert "Traceback" not in process.stderr
    assert TOKEN not in process.stderr + process.stdout
    assert process.stdout == ""


def test_cli_reads_tap_kaiten_env_vars_with_config_env(tmp_path, kaiten_sandbox):
    env = {
        "TAP_KAITEN_API_URL": kaiten_sandbox.base_url,
        "TAP_KAITEN_API_TOKEN": kaiten_sandbox.token,
    }
    process = run_cli(["--config=ENV", "--test=schema"], tmp_path=tmp_path, env=env)
    assert process.returncode == 0, process.stderr
    assert '"type":"SCHEMA"' in process.stdout.replace(" ", "")
