"""The sync service over real HTTP: auth, bad input, runs, debounce, status."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import requests
from service_harness import service_env

from kaiten_state.backend import DDL, LOCK_KEY_SQL

JSON = {"Content-Type": "application/json"}
ONE_MB = 1024 * 1024


def post_event(service, body, url=None, headers=JSON):
    payload = body if isinstance(body, bytes | str) else json.dumps(body)
    return service.http.post(
        url or service.webhook_url(), data=payload, headers=headers, timeout=10
    )


def assert_no_run_started(service):
    # Runs start synchronously (API) or from a pending hint (webhooks): with
    # neither a run nor a pending hint, nothing can start later either.
    status = service.status()
    assert status["runs"] == []
    assert status["current_run"] is None
    assert status["pending"] is None
    assert service.db_runs() == []


def test_healthz_answers_without_credentials(service):
    response = service.http.get(service.url("/healthz"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "sync_enabled": True, "run_going": False}


@pytest.mark.parametrize(
    "make_url",
    [
        pytest.param(
            lambda s: s.url("/api/webhooks/kaiten/not-the-secret"), id="wrong-secret-in-path"
        ),
        pytest.param(
            lambda s: s.url("/api/webhooks/kaiten?secret=not-the-secret"),
            id="wrong-secret-in-query",
        ),
        pytest.param(lambda s: s.url("/api/webhooks/kaiten"), id="no-secret"),
        pytest.param(lambda s: s.url(f"/api/webhooks/kaiten/{s.secret[:-1]}"), id="secret-prefix"),
        pytest.param(lambda s: s.url(f"/api/webhooks/kaiten/{s.secret}x"), id="secret-plus-a-char"),
    ],
)
def test_webhook_with_wrong_secret_is_an_ordinary_404_and_starts_nothing(quiet_service, make_url):
    unknown = quiet_service.http.post(
        quiet_service.url("/no/such/path"), json={"event": "card:update"}
    )
    response = post_event(
        quiet_service, {"event": "card:update", "data": {"id": 1}}, url=make_url(quiet_service)
    )
    assert response.status_code == 404
    # Indistinguishable from a URL that does not exist: nothing tells a prober it is close.
    assert response.content == unknown.content
    assert response.headers["content-type"] == unknown.headers["content-type"]
    assert quiet_service.status()["webhooks"]["received"] == 0
    assert_no_run_started(quiet_service)


def test_webhook_secret_is_accepted_in_the_query_string_too(service):
    response = post_event(
        service,
        {"event": "card:add", "data": {"id": 5}},
        url=service.url(f"/api/webhooks/kaiten?secret={service.secret}"),
    )
    assert response.status_code == 202
    assert response.json()["accepted"] == "card:add"


def test_wrong_secret_checked_before_the_body_so_a_bad_body_reveals_nothing(quiet_service):
    response = post_event(
        quiet_service,
        b"{not json",
        url=quiet_service.url("/api/webhooks/kaiten/nope"),
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        pytest.param(
            b'{"event": "card:update"}',
            {"Content-Type": "text/plain"},
            415,
            "Content-Type must be application/json",
            id="wrong-content-type",
        ),
        pytest.param(
            b'{"event": "card:update"}',
            {},
            415,
            "Content-Type must be application/json",
            id="no-content-type",
        ),
        pytest.param(
            b'{"event": "card:update", ', JSON, 400, "malformed JSON", id="malformed-json"
        ),
        pytest.param(b"\xff\xfe not utf-8", JSON, 400, "malformed JSON", id="not-utf8"),
        pytest.param(b"", JSON, 400, "malformed JSON", id="empty-body"),
        pytest.param(
            b'[{"event": "card:update"}]',
            JSON,
            400,
            'expected a JSON object with an "event" string',
            id="array",
        ),
        pytest.param(
            b'{"data": {"id": 1}}',
            JSON,
            400,
            'expected a JSON object with an "event" string',
            id="no-event",
        ),
        pytest.param(
            b'{"event": 7}',
            JSON,
            400,
            'expected a JSON object with an "event" string',
            id="event-not-string",
        ),
        pytest.param(b'{"event": "card:remove"}', JSON, 422, "unknown event", id="unknown-event"),
        pytest.param(b'{"event": "card:explode"}', JSON, 422, "unknown event", id="made-up-event"),
    ],
)
def test_webhook_bad_input_gets_a_short_json_4xx_and_starts_nothing(
    quiet_service, body, headers, status, message
):
    response = post_event(quiet_service, body, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == message
    assert len(response.content) < 200
    assert quiet_service.http.get(quiet_service.url("/healthz")).status_code == 200
    assert quiet_service.status()["webhooks"]["received"] == 0
    assert_no_run_started(quiet_service)


def test_webhook_body_over_1_mb_is_413(service):
    padding = "x" * ONE_MB
    response = post_event(
        service, {"event": "card:update", "data": {"id": 1, "description": padding}}
    )
    assert response.status_code == 413
    assert response.json() == {"error": "body over 1024 KiB"}
    # Exactly at the limit is still fine (the limit is on size, not on the event).
    body = json.dumps({"event": "card:update", "data": {"id": 1}})
    body = body[:-1] + ', "pad": "' + "y" * (ONE_MB - len(body) - 12) + '"}'
    assert len(body.encode()) <= ONE_MB
    assert post_event(service, body).status_code == 202


def test_chunked_webhook_body_over_1_mb_is_cut_off_with_413(service):
    # No Content-Length: the service must count while reading.
    def chunks():
        yield b'{"event": "card:update", "data": {"pad": "'
        for _ in range(20):
            yield b"z" * 65536
        yield b'"}}'

    parts = urlsplit(service.webhook_url())
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("POST", parts.path, body=chunks(), headers=JSON, encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 413
    assert json.loads(response.read()) == {"error": "body over 1024 KiB"}
    conn.close()
    assert service.http.get(service.url("/healthz")).status_code == 200
    assert service.status()["webhooks"]["received"] == 0


@pytest.mark.parametrize(
    ("event", "normalised"),
    [
        ("card.create", "card:add"),
        ("card.update", "card:update"),
        ("card.move", "card:update"),
        ("comment:add", "comment:add"),
    ],
)
def test_seed_event_names_are_accepted_as_aliases(service, event, normalised):
    response = post_event(service, {"event": event, "data": {"id": 3}})
    assert response.status_code == 202
    assert response.json()["accepted"] == normalised
    assert service.status()["webhooks"]["by_event"] == {normalised: 1}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": "Bearer"}, id="empty-bearer"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic-scheme"),
        pytest.param({"Authorization": "Bearer wrong-secret-of-some-length"}, id="wrong-secret"),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/sync"), ("POST", "/api/sync/full"), ("GET", "/api/sync/status")],
)
def test_sync_endpoints_without_the_right_bearer_secret_are_401_and_start_nothing(
    quiet_service, headers, method, path
):
    response = quiet_service.http.request(
        method, quiet_service.url(path), headers=headers, timeout=10
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert set(response.json()) == {"error"}
    assert quiet_service.secret not in response.text
    if method == "POST":
        assert_no_run_started(quiet_service)


def test_sync_starts_a_run_and_a_second_request_gets_409_while_it_goes(service_factory):
    service = service_factory(FAKE_SYNC_SECONDS="2")
    first = service.http.post(service.url("/api/sync/full"), headers=service.auth())
    assert first.status_code == 202
    run_id = first.json()["run_id"]
    assert first.json()["kind"] == "full"
    for path in ("/api/sync", "/api/sync/full"):
        busy = service.http.post(service.url(path), headers=service.auth())
        assert busy.status_code == 409
        assert busy.json() == {
            "error": "a sync run is already going",
            "run_id": run_id,
            "kind": "full",
        }
    status = service.wait_idle()
    [run] = status["runs"]
    assert run["id"] == run_id
    assert run["outcome"] == "success"
    assert run["exit_code"] == 0
    # The tap's counts, not the loader's echo of them.
    assert run["records"] == {"cards": 7, "users": 3}
    [db_run] = service.db_runs()
    assert db_run["kind"] == "full"
    assert db_run["ended_at"] is not None
    # Once finished, a new run may start.
    assert service.http.post(service.url("/api/sync"), headers=service.auth()).status_code == 202
    service.wait_idle()
    assert [r["kind"] for r in service.db_runs()] == ["full", "incremental"]


def test_concurrent_sync_requests_start_exactly_one_run(service_factory):
    service = service_factory(FAKE_SYNC_SECONDS="1")

    def ask(path):
        return requests.post(service.url(path), headers=service.auth(), timeout=10).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(ask, ["/api/sync", "/api/sync/full"] * 8))
    assert codes.count(202) == 1
    assert codes.count(409) == 15
    service.wait_idle()
    assert len(service.db_runs()) == 1


def test_webhook_burst_of_500_is_coalesced_into_one_or_two_runs(service_factory):
    service = service_factory(
        KAITEN_SERVICE_DEBOUNCE_SECONDS="1", KAITEN_SERVICE_MAX_DELAY_SECONDS="10"
    )

    def send(i):
        with requests.Session() as http:
            return [
                http.post(
                    service.webhook_url(),
                    json={"event": "card:update", "data": {"old": {"id": n}}},
                    timeout=10,
                ).status_code
                for n in range(i, 500, 4)
            ]

    with ThreadPoolExecutor(4) as pool:
        codes = [c for chunk in pool.map(send, range(4)) for c in chunk]
    assert codes == [202] * 500
    status = service.wait_until(
        lambda s: s["runs"] and s["current_run"] is None and s["pending"] is None
    )
    assert 1 <= len(status["runs"]) <= 2
    assert sum(r["webhook_events"] for r in status["runs"]) == 500
    assert all(r["trigger"] == "webhook" and r["kind"] == "incremental" for r in status["runs"])
    assert status["webhooks"]["received"] == 500
    assert 1 <= len(service.db_runs()) <= 2


def test_webhook_during_a_run_triggers_one_more_run_after_it_never_overlapping(service_factory):
    service = service_factory(FAKE_SYNC_SECONDS="1.5")
    assert service.http.post(service.url("/api/sync"), headers=service.auth()).status_code == 202
    for card_id in (1, 2, 3):
        assert (
            post_event(
                service, {"event": "card:update", "data": {"old": {"id": card_id}}}
            ).status_code
            == 202
        )
    status = service.status()
    assert status["pending"]["events"] == 3
    assert status["pending"]["waiting_for_current_run"] is True
    status = service.wait_until(lambda s: len(s["runs"]) == 2 and s["current_run"] is None)
    assert [r["trigger"] for r in reversed(status["runs"])] == ["api", "webhook"]
    assert status["runs"][0]["webhook_events"] == 3
    first, second = service.db_runs()
    assert first["ended_at"] <= second["started_at"]


def test_failed_run_is_reported_with_its_exit_code_and_without_secrets(
    service_factory, webhook_secret, tmp_path
):
    service = service_factory(
        FAKE_SYNC_EXIT="1",
        FAKE_SYNC_PRINT=f"ERROR tap failed: token {webhook_secret} refused",
    )
    assert service.http.post(service.url("/api/sync"), headers=service.auth()).status_code == 202
    [run] = service.wait_idle()["runs"]
    assert run["outcome"] == "failed"
    assert run["exit_code"] == 1
    assert "tap failed" in run["error"]
    assert webhook_secret not in json.dumps(service.status())
    assert webhook_secret not in service.log()
    # The whole output is kept in the run's own log file, secrets masked there too.
    log_file = tmp_path / ".meltano" / "logs" / "sync-service" / run["log_file"]
    text = log_file.read_text()
    assert "ERROR tap failed: token *** refused" in text
    assert "fake sync 1 (incremental) started" in text
    assert webhook_secret not in text


def test_a_run_refused_by_the_pipeline_lock_is_reported_as_failed(service):
    # Another process (a cron `meltano run`) holds the lock the pipeline takes.
    with psycopg.connect(service.database_url, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(4242001)")
        assert (
            service.http.post(service.url("/api/sync"), headers=service.auth()).status_code == 202
        )
        [run] = service.wait_idle()["runs"]
    assert run["outcome"] == "failed"
    assert run["exit_code"] == 3
    assert "holds the lock" in run["error"]
    assert service.db_runs() == []


def test_missing_run_command_is_a_failed_run_not_a_dead_service(service_factory):
    service = service_factory(KAITEN_SERVICE_SYNC_COMMAND="/nonexistent/meltano run kaiten-sync")
    assert service.http.post(service.url("/api/sync"), headers=service.auth()).status_code == 202
    [run] = service.wait_idle()["runs"]
    assert run["outcome"] == "failed"
    assert "cannot start '/nonexistent/meltano'" in run["error"]
    assert service.http.post(service.url("/api/sync"), headers=service.auth()).status_code == 202


def test_without_secret_the_service_warns_loudly_and_disables_sync(service_factory):
    service = service_factory(secret=None)
    assert "KAITEN_WEBHOOK_SECRET is not set" in service.log()
    assert "WARNING" in service.log()
    assert service.http.get(service.url("/healthz")).json()["sync_enabled"] is False
    for method, path in (
        ("POST", "/api/sync"),
        ("POST", "/api/sync/full"),
        ("GET", "/api/sync/status"),
    ):
        response = service.http.request(
            method, service.url(path), headers={"Authorization": "Bearer anything-at-all-here"}
        )
        assert response.status_code == 503
        assert "KAITEN_WEBHOOK_SECRET" in response.json()["error"]
    assert (
        post_event(
            service, {"event": "card:update"}, url=service.url("/api/webhooks/kaiten/anything")
        ).status_code
        == 404
    )
    assert service.db_runs() == []


def test_secret_never_appears_in_the_access_log(service):
    post_event(service, {"event": "card:update", "data": {"id": 1}})
    post_event(
        service,
        {"event": "card:update", "data": {"id": 1}},
        url=service.url(f"/api/webhooks/kaiten?secret={service.secret}"),
    )
    service.wait_idle()
    log = service.log()
    assert "/api/webhooks/kaiten/***" in log
    assert service.secret not in log


def test_status_shows_bookmarks_from_sync_metadata_and_tolerates_its_absence(service):
    bookmarks = service.status()["bookmarks"]
    assert bookmarks["available"] is False
    assert "does not exist yet" in bookmarks["reason"]
    state = {
        "singer_state": {
            "bookmarks": {
                "cards": {
                    "replication_key": "updated",
                    "replication_key_value": "2026-12-04T10:00:00.123Z",
                },
                "card_comments": {
                    "partitions": [
                        {
                            "context": {"card_id": 1},
                            "replication_key_value": "2026-12-01T00:00:00Z",
                        },
                        {
                            "context": {"card_id": 2},
                            "replication_key_value": "2026-12-03T00:00:00Z",
                        },
                    ]
                },
            }
        }
    }
    with psycopg.connect(service.database_url, autocommit=True) as conn:
        conn.execute(DDL)  # the state backend's own table, as the first `meltano run` makes it
        conn.execute(
            "insert into kaiten.sync_metadata (state_id, completed_state, updated_at)"
            " values ('dev:tap-kaiten-to-target-postgres', %s, '2026-12-04T10:00:01Z')",
            [json.dumps(state)],
        )
    bookmarks = service.status()["bookmarks"]
    assert bookmarks["available"] is True
    [row] = bookmarks["states"]
    assert row["state_id"] == "dev:tap-kaiten-to-target-postgres"
    assert row["streams"] == {
        "cards": "2026-12-04T10:00:00.123Z",
        "card_comments": "2026-12-03T00:00:00Z",
    }


def test_status_survives_an_unreachable_database(service_factory):
    service = service_factory(DATABASE_URL="postgresql://nobody:pw-not-shown@127.0.0.1:1/nowhere")
    bookmarks = service.status()["bookmarks"]
    assert bookmarks["available"] is False
    assert bookmarks["reason"].startswith("cannot read kaiten.sync_metadata")
    assert "pw-not-shown" not in json.dumps(service.status())


def test_unknown_paths_and_methods_get_short_json(quiet_service):
    assert quiet_service.http.get(quiet_service.url("/nope")).json() == {"error": "not found"}
    response = quiet_service.http.get(quiet_service.url("/api/sync"), headers=quiet_service.auth())
    assert response.status_code == 405
    assert response.json() == {"error": "method not allowed"}


def test_a_run_holding_the_pipeline_lock_elsewhere_blocks_api_and_defers_webhook_runs(service):
    # A `meltano run` from cron holds the state backend's advisory lock.
    state_id = "dev:tap-kaiten-to-target-postgres"
    with psycopg.connect(service.database_url, autocommit=True) as holder:
        holder.execute(DDL)
        holder.execute("insert into kaiten.sync_metadata (state_id) values (%s)", [state_id])
        holder.execute(f"select pg_advisory_lock({LOCK_KEY_SQL})", [state_id])

        response = service.http.post(service.url("/api/sync"), headers=service.auth())
        assert response.status_code == 409
        assert "outside this service" in response.json()["error"]
        assert post_event(service, {"event": "card:update", "data": {"id": 1}}).status_code == 202
        status = service.wait_until(
            lambda s: s["pending"] and s["pending"]["waiting_for_pipeline_lock"]
        )
        assert status["runs"] == []
        assert service.db_runs() == []
    # Lock released: the deferred hint gets its run.
    status = service.wait_until(lambda s: s["runs"] and s["current_run"] is None, timeout=30)
    [run] = status["runs"]
    assert run["trigger"] == "webhook"
    assert run["webhook_events"] == 1
    assert len(service.db_runs()) == 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param(
            {"KAITEN_WEBHOOK_SECRET": "short-secret"},
            "KAITEN_WEBHOOK_SECRET is too short (12 characters): use at least 16",
            id="short-secret",
        ),
        pytest.param(
            {"KAITEN_WEBHOOK_SECRET": "change-me-to-a-long-random-string"},
            "KAITEN_WEBHOOK_SECRET is still the example value from .env.example",
            id="example-secret",
        ),
        pytest.param(
            {"KAITEN_WEBHOOK_SECRET": "your-random-secret-string-123"},
            "KAITEN_WEBHOOK_SECRET is still the example value",
            id="seed-guide-secret",
        ),
        pytest.param(
            {"KAITEN_SERVICE_DEBOUNCE_SECONDS": "soon"},
            "KAITEN_SERVICE_DEBOUNCE_SECONDS='soon' is not a number",
            id="debounce-not-a-number",
        ),
        pytest.param(
            {"KAITEN_SERVICE_DEBOUNCE_SECONDS": "10", "KAITEN_SERVICE_MAX_DELAY_SECONDS": "5"},
            "KAITEN_SERVICE_MAX_DELAY_SECONDS (5) is below KAITEN_SERVICE_DEBOUNCE_SECONDS (10)",
            id="max-delay-below-debounce",
        ),
        pytest.param(
            {"KAITEN_SERVICE_SYNC_COMMAND": "meltano run 'kaiten-sync"},
            "KAITEN_SERVICE_SYNC_COMMAND cannot be split into a command",
            id="unbalanced-quote",
        ),
    ],
)
def test_bad_settings_stop_the_service_with_one_clear_line(
    tmp_path, fresh_database_url, env, expected
):
    full_env = service_env(fresh_database_url, tmp_path, "a-good-long-secret-value", **env)
    result = subprocess.run(
        [sys.executable, "-m", "kaiten_service", "--port", "0"],
        env=full_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("kaiten-service: ")
    assert expected in line
    assert "Traceback" not in result.stderr
    if "KAITEN_WEBHOOK_SECRET" in env:
        assert env["KAITEN_WEBHOOK_SECRET"] not in line


def test_port_in_use_is_one_clear_line(service, tmp_path, fresh_database_url):
    port = service.base_url.rsplit(":", 1)[1]
    full_env = service_env(fresh_database_url, tmp_path, "a-good-long-secret-value")
    result = subprocess.run(
        [sys.executable, "-m", "kaiten_service", "--port", port],
        env=full_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"kaiten-service: cannot listen on 127.0.0.1:{port}")
    assert "pick another --port" in line


def test_settings_come_from_the_project_env_file_with_the_environment_winning(
    service_factory, tmp_path, webhook_secret
):
    (tmp_path / ".env").write_text(
        f"KAITEN_WEBHOOK_SECRET={webhook_secret}\nKAITEN_SERVICE_DEBOUNCE_SECONDS=7\n"
    )
    service = service_factory(secret=None, KAITEN_SERVICE_DEBOUNCE_SECONDS="0.5")
    service.secret = webhook_secret
    assert service.http.get(service.url("/healthz")).json()["sync_enabled"] is True
    assert service.status()["service"]["debounce_seconds"] == 0.5


def test_stopping_the_service_stops_its_run_and_leaves_no_orphan(service_factory):
    service = service_factory(FAKE_SYNC_SECONDS="60")
    assert service.http.post(service.url("/api/sync"), headers=service.auth()).status_code == 202
    service.wait_until(lambda s: s["current_run"] is not None)
    deadline = time.monotonic() + 30
    while not service.db_runs():
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.1)
    [db_run] = service.db_runs()
    # uvicorn re-raises the SIGTERM it handled once shutdown is complete.
    assert service.stop() in (0, -signal.SIGTERM)
    # The run's process got SIGTERM with the service: it did not finish its 60 s.
    assert not Path(f"/proc/{db_run['pid']}").exists()
    [db_run] = service.db_runs()
    assert db_run["ended_at"] is None
    assert "cancelled" in service.log()


def sync_runs_rows(database_url):
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "select run_id, kind, trigger, outcome, exit_code, records from kaiten.sync_runs"
        ).fetchall()


def test_run_history_is_stored_in_sync_runs_and_survives_a_restart(service_factory):
    first = service_factory()
    run_id = first.http.post(first.url("/api/sync/full"), headers=first.auth()).json()["run_id"]
    [run] = first.wait_idle()["runs"]
    first.stop()
    assert sync_runs_rows(first.database_url) == [
        (run_id, "full", "api", "success", 0, {"cards": 7, "users": 3})
    ]

    second = service_factory()
    [restored] = second.status()["runs"]
    assert restored == run


def test_a_run_cut_off_by_a_crash_shows_as_interrupted_after_restart(service_factory):
    first = service_factory(FAKE_SYNC_SECONDS="60")
    run_id = first.http.post(first.url("/api/sync"), headers=first.auth()).json()["run_id"]
    deadline = time.monotonic() + 30
    while not (first.db_runs() and sync_runs_rows(first.database_url)):
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.1)
    # A crash: no shutdown handler runs, the run's own process is orphaned.
    first.process.kill()
    first.process.wait()
    os.kill(first.db_runs()[0]["pid"], signal.SIGKILL)

    second = service_factory()
    [run] = second.status()["runs"]
    assert run["id"] == run_id
    assert run["outcome"] == "interrupted"
    assert run["error"] == "the service stopped before the run ended"
    # Nothing is going, so a new run may start.
    assert second.http.post(second.url("/api/sync"), headers=second.auth()).status_code == 202
