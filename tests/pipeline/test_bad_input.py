"""Bad settings stop `meltano run` with one clear line, a non-zero exit and nothing written."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator

import psycopg
import pytest
from pipeline_helpers import Synced
from psycopg import sql

WRONG_TOKEN = "0badc0de-0000-4000-8000-000000000000"
DB_PASSWORD = "s3cret-Pa55"
TRACEBACK_MARKERS = ("Traceback (most recent call last)", "╭─", "│ ❱")


class _UnknownCompany(http.server.BaseHTTPRequestHandler):
    """What Kaiten's edge answers for a company host that doesn't exist: 404."""

    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"Not Found")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def unknown_company_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _UnknownCompany)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def snapshot(url: str) -> dict[str, tuple[int, str]]:
    """Row count and content digest of every table the pipeline writes (state included)."""
    out = {}
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema in ('kaiten', 'kaiten_site') and table_type = 'BASE TABLE'"
        ).fetchall()
        for schema, table in tables:
            ident = sql.Identifier(schema, table)
            row = conn.execute(
                sql.SQL(
                    "select count(*), coalesce(md5(string_agg(t::text, '|' order by t::text)), '')"
                    " from {} as t"
                ).format(ident)
            ).fetchone()
            assert row is not None
            out[f"{schema}.{table}"] = (row[0], row[1])
    return out


def run_with(synced: Synced, **env: str | None) -> tuple[int, str]:
    result = synced.project.run("run", "kaiten-sync", env=env)  # type: ignore[arg-type]
    return result.returncode, result.stdout + result.stderr


CASES = {
    "wrong token": (
        lambda s, bad: {"KAITEN_API_TOKEN": WRONG_TOKEN},
        r"401.*KAITEN_API_TOKEN",
    ),
    "wrong host": (
        lambda s, bad: {"KAITEN_API_URL": bad},
        r"404.*KAITEN_API_URL",
    ),
    "unreachable database": (
        lambda s, bad: {"DATABASE_URL": f"postgresql://kaiten:{DB_PASSWORD}@127.0.0.1:9/kaiten"},
        r"Cannot connect to PostgreSQL at DATABASE_URL",
    ),
    "missing token": (
        lambda s, bad: {"KAITEN_API_TOKEN": None},
        r"Missing Kaiten API credentials.*KAITEN_API_TOKEN",
    ),
    "missing url": (
        lambda s, bad: {"KAITEN_API_URL": None},
        r"Missing Kaiten API credentials.*KAITEN_API_URL",
    ),
    "missing database url": (
        lambda s, bad: {"DATABASE_URL": None},
        r"Environment variable 'DATABASE_URL' referenced but not set",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_stops_the_run_cleanly(
    case: str, synced: Synced, unknown_company_url: str
) -> None:
    make_env, expected_line = CASES[case]
    before = snapshot(synced.url)

    code, output = run_with(synced, **make_env(synced, unknown_company_url))

    assert code != 0
    assert re.search(expected_line, output), (
        f"no line matching {expected_line!r} in:\n{output[-4000:]}"
    )
    assert not any(marker in output for marker in TRACEBACK_MARKERS), output[-4000:]
    for secret in (synced.sandbox.token, WRONG_TOKEN, DB_PASSWORD):
        assert secret not in output, "a secret was printed"
    assert snapshot(synced.url) == before, "a failed run changed tables or state"
