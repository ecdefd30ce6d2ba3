"""Secrets: with DEBUG logging and injected failures the token appears nowhere."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
from psycopg import sql
from reliability_kit import EL, STATE_ID, assert_ok

DEBUG = {"LOGLEVEL": "DEBUG", "TAP_KAITEN_LOGLEVEL": "DEBUG", "TARGET_POSTGRES_LOGLEVEL": "DEBUG"}


def leaks_in_files(root: Path, secrets: list[str]) -> list[str]:
    """Files under `root` (symlinks not followed: those are the shared plugin venvs)."""
    found = []
    for path in root.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        found += [f"{path} holds {s[:4]}..." for s in secrets if s.encode() in data]
    return found


def leaks_in_database(url: str, secrets: list[str]) -> list[str]:
    found = []
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema not in ('pg_catalog', 'information_schema')"
        ).fetchall()
        for schema, table in tables:
            stmt = sql.SQL("select t::text from {}.{} as t").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            for (text,) in conn.execute(stmt):
                found += [f"{schema}.{table}" for s in secrets if s in text]
    return sorted(set(found))


def test_token_never_leaks_into_logs_errors_state_database_or_files(
    kaiten_sandbox_factory, make_pipeline, database_url, tmp_path
):
    """DEBUG logs of a run through 5xx/429/drops, a run that fails on an exhausted retry
    budget, and a run with a wrong token: neither token is in any output, in the state,
    in any table, or in any file the runs leave (TMPDIR included).

    Mutation tried (RELIABILITY_TAP_SOURCE): the tap logging the prepared request's headers
    at DEBUG: the test fails, "token in stderr".
    """
    token = str(uuid.uuid4())
    wrong = str(uuid.uuid4())
    secrets = [token, token.replace("-", ""), wrong, wrong.replace("-", "")]
    sandbox = kaiten_sandbox_factory(seed=71, cards=120, rate_limit=0, token=token)
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    project = make_pipeline(sandbox, TMPDIR=str(scratch), **DEBUG)
    outputs = []

    sandbox.configure(
        fault_rate=0.1,
        drop_rate=0.02,
        inject=[{"count": 2, "status": 429, "headers": {"Retry-After": "1"}, "path": "/cards"}],
    )
    ok = project.run("--log-level=debug", "run", *EL)
    outputs.append(ok)
    assert_ok(ok)
    assert "DEBUG" in ok.stderr or "debug" in ok.stderr  # the verbose logs really ran

    sandbox.configure(
        fault_rate=0,
        drop_rate=0,
        inject=[{"count": 8, "status": 503, "headers": {"Retry-After": "0"}, "path": "/users"}],
    )
    failed = project.run("--log-level=debug", "run", *EL, env={"MELTANO_RUN_FULL_REFRESH": "true"})
    outputs.append(failed)
    assert failed.returncode != 0

    refused = project.run("--log-level=debug", "run", *EL, env={"KAITEN_API_TOKEN": wrong})
    outputs.append(refused)
    assert refused.returncode != 0
    assert "KAITEN_API_TOKEN" in refused.stderr

    state = project.run("state", "get", STATE_ID)
    outputs.append(state)
    assert_ok(state)

    for result in outputs:
        for secret in secrets:
            assert secret not in result.stdout, f"{result.args[1:4]}: token in stdout"
            assert secret not in result.stderr, f"{result.args[1:4]}: token in stderr"
    assert not leaks_in_database(database_url, secrets)
    assert not leaks_in_files(project.root, secrets)
    assert not leaks_in_files(scratch, secrets)
