"""DATABASE_URL is the one PostgreSQL setting: loader, dbt and state store all honour it whole."""

from __future__ import annotations

import json

import pytest
from kaiten_pgenv import DatabaseUrlError, libpq_env
from pipeline_helpers import query

SCHEMA = {"type": "SCHEMA", "stream": "probe", "key_properties": ["id"],
          "schema": {"type": "object", "properties": {"id": {"type": "integer"}}}}  # fmt: skip
RECORD = {"type": "RECORD", "stream": "probe", "record": {"id": 1}}
SINGER_INPUT = "\n".join(json.dumps(m) for m in (SCHEMA, RECORD)) + "\n"


def test_uri_becomes_libpq_environment():
    env = libpq_env(
        "postgresql://kaiten%40site:p%3Ass%2Fw@db.example.supabase.co:6543/postgres"
        "?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem&application_name=x"
    )
    assert env == {
        "PGUSER": "kaiten@site",
        "PGPASSWORD": "p:ss/w",
        "PGHOST": "db.example.supabase.co",
        "PGPORT": "6543",
        "PGDATABASE": "postgres",
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": "/etc/ssl/ca.pem",
        "PGAPPNAME": "x",
        "PGCONNECT_TIMEOUT": "10",
        "PGTZ": "UTC",
    }
    assert libpq_env("postgres://h1:5432,h2:5433/db")["PGHOST"] == "h1,h2"
    assert libpq_env("postgresql:///db?host=/run/postgresql")["PGHOST"] == "/run/postgresql"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (None, "DATABASE_URL is not set"),
        ("mysql://u@h/db", "DATABASE_URL must start with postgresql://"),
        ("postgresql://u@h/db?pgbouncer=true", "unknown parameter 'pgbouncer'"),
        ("postgresql://u@h:abc/db", "port that is not a number"),
    ],
)
def test_bad_uri_is_named(url, message):
    with pytest.raises(DatabaseUrlError, match=message):
        libpq_env(url)


def test_loader_writes_through_database_url(project_factory, database_url):
    project = project_factory(DATABASE_URL=database_url)
    result = project.run("invoke", "target-postgres", stdin=SINGER_INPUT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert query(database_url, "select id from kaiten.probe") == [(1,)]
    # the session the loader used ran in UTC (PGTZ from the wrapper)
    [(stamp,)] = query(database_url, "select _sdc_batched_at from kaiten.probe")
    [(now,)] = query(database_url, "select (now() at time zone 'utc')::timestamp")
    assert abs((now - stamp).total_seconds()) < 600


def test_sslmode_is_honoured_by_loader_dbt_and_state_store(project_factory, database_url):
    """The embedded server has no TLS: sslmode=require must make every client refuse it."""
    project = project_factory(DATABASE_URL=f"{database_url}?sslmode=require")

    state = project.run("state", "list")
    loader = project.run("invoke", "target-postgres", stdin=SINGER_INPUT)
    dbt = project.run("invoke", "dbt-postgres:debug")

    for name, result in (("state store", state), ("loader", loader), ("dbt", dbt)):
        assert result.returncode != 0, f"{name} connected without TLS despite sslmode=require"
        assert "SSL" in result.stdout + result.stderr, f"{name}: {result.stderr[-2000:]}"
    assert query(database_url, "select to_regclass('kaiten.probe')") == [(None,)]
