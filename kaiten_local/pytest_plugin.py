"""pytest fixtures for a real PostgreSQL: `postgres_url` (session) and `fresh_database_url`.

Enable with `pytest_plugins = ["kaiten_local.pytest_plugin"]` in a conftest.
`DATABASE_URL` (or `TEST_DATABASE_URL`) points the tests at an existing server;
otherwise one embedded server is started for the whole session and removed after.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from kaiten_local.postgres import EmbeddedPostgres, create_database, drop_database


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL server the tests may create databases on."""
    if url := os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL"):
        yield url
        return
    # Short path: the data dir also names the server in `ps`; tmp is wiped by the OS anyway.
    data_dir = Path(tempfile.mkdtemp(prefix="kaiten-pg-"))
    server = EmbeddedPostgres(data_dir)
    try:
        yield server.start()
    finally:
        server.destroy()


@pytest.fixture
def fresh_database_url(postgres_url: str) -> Iterator[str]:
    """A new, empty database for this test only (dropped afterwards)."""
    url = create_database(postgres_url)
    try:
        yield url
    finally:
        drop_database(postgres_url, str(conninfo_to_dict(url)["dbname"]))
