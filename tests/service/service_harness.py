"""The sync service as a subprocess on a free port, and what tests ask of it.

Every test talks to it over real HTTP on 127.0.0.1. Runs are either the real
pipeline or fake_sync.py, which writes each run to PostgreSQL so tests can
check what really ran and when. (A module of its own, not conftest: test
modules import it by a name no other test directory uses.)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import requests
from psycopg.rows import dict_row

FAKE_SYNC = Path(__file__).with_name("fake_sync.py")
STARTUP_TIMEOUT_SECONDS = 30
_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


def fake_command(kind: str) -> str:
    return f"{sys.executable} {FAKE_SYNC} {kind}"


@dataclass
class RunningService:
    base_url: str
    secret: str | None
    database_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    http: requests.Session = field(default_factory=requests.Session)

    def url(self, path: str) -> str:
        return self.base_url + path

    def auth(self, secret: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret or self.secret}"}

    def webhook_url(self, secret: str | None = None) -> str:
        return self.url(f"/api/webhooks/kaiten/{secret or self.secret}")

    def status(self) -> dict[str, Any]:
        response = self.http.get(self.url("/api/sync/status"), headers=self.auth(), timeout=10)
        response.raise_for_status()
        return response.json()

    def wait_until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> dict[str, Any]:
        """Poll the status until predicate(status) holds; the timeout only guards against a hang."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if predicate(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"status never matched within {timeout}s: {status}")
            time.sleep(0.1)

    def wait_idle(self, timeout: float = 60) -> dict[str, Any]:
        return self.wait_until(lambda s: s["current_run"] is None and s["pending"] is None, timeout)

    def db_runs(self) -> list[dict[str, Any]]:
        """Runs fake_sync.py recorded, oldest first."""
        with psycopg.connect(self.database_url, row_factory=dict_row) as conn:
            exists = conn.execute(
                "select to_regclass('service_test_runs') is not null as e"
            ).fetchone()
            if not exists or not exists["e"]:
                return []
            return conn.execute("select * from service_test_runs order by started_at").fetchall()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.http.close()
        return self.process.returncode


def service_env(
    database_url: str, project_root: Path, secret: str | None, **overrides: str
) -> dict[str, str]:
    # Start from a clean slate: a developer's shell or the repo's .env must not
    # leak a real secret or command into the tests (KAITEN_PROJECT_ROOT points
    # the .env lookup at the test's own directory).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAITEN_", "FAKE_SYNC_"))}
    env.update(
        DATABASE_URL=database_url,
        KAITEN_PROJECT_ROOT=str(project_root),
        KAITEN_SERVICE_SYNC_COMMAND=fake_command("incremental"),
        KAITEN_SERVICE_FULL_SYNC_COMMAND=fake_command("full"),
        KAITEN_SERVICE_DEBOUNCE_SECONDS="0.3",
        KAITEN_SERVICE_MAX_DELAY_SECONDS="2",
    )
    if secret is not None:
        env["KAITEN_WEBHOOK_SECRET"] = secret
    env.update(overrides)
    return env


def start_service(env: dict[str, str], log_path: Path, database_url: str) -> RunningService:
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "kaiten_service", "--host", "127.0.0.1", "--port", "0"],
        env=env,
        cwd=env["KAITEN_PROJECT_ROOT"],
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    log_file.close()
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while True:
        match = _LISTENING.search(log_path.read_text(errors="replace"))
        if match:
            break
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"service did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.05)
    service = RunningService(
        match.group(1), env.get("KAITEN_WEBHOOK_SECRET"), database_url, process, log_path
    )
    while True:
        try:
            if service.http.get(service.url("/healthz"), timeout=2).status_code == 200:
                return service
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            service.stop()
            raise AssertionError(f"service never answered /healthz:\n{service.log()}")
        time.sleep(0.05)
