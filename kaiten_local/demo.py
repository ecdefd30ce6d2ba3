"""`make demo`: sandbox + PostgreSQL + one `meltano run kaiten-sync`, then show what landed.

Uses DATABASE_URL when it is set, otherwise an embedded PostgreSQL in .local/pgdata
that keeps running afterwards so you can look at the data with psql
(`make demo-stop` stops it).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

from kaiten_local.postgres import ROOT, EmbeddedPostgres, PostgresError, psql_path, with_database
from kaiten_sandbox import Sandbox

SCHEMA = "kaiten"
DEMO_DB = "kaiten_demo"


def meltano_bin() -> str:
    candidate = Path(sys.executable).parent / "meltano"
    return str(candidate) if candidate.exists() else "meltano"


def run_job(
    job: str,
    env: dict[str, str],
    *args: str,
    cwd: Path = ROOT,
    capture: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`meltano run <job>` with the given environment (the project's .env still applies)."""
    return subprocess.run(  # noqa: S603 - our own meltano, fixed arguments
        [meltano_bin(), "run", *args, job],
        cwd=cwd,
        env=env,
        check=False,
        text=True,
        capture_output=capture,
    )


def table_counts(url: str, schema: str = SCHEMA) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "select table_name from information_schema.tables "
                "where table_schema = %s and table_type = 'BASE TABLE' order by 1",
                (schema,),
            )
        ]
        counts = {}
        for table in tables:
            query = sql.SQL("select count(*) from {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            row = conn.execute(query).fetchone()
            counts[table] = int(row[0]) if row else 0
    return counts


def bookmarks(url: str) -> list[tuple[str, str, str | None, str | None]]:
    """Per stream (cards: per live/archived partition) bookmark and write time."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """
            select state_id,
                   stream || case partition ->> 'condition' when '1' then ' (live)'
                                                            when '2' then ' (archived)'
                                                            else '' end,
                   replication_key_value,
                   to_char(synced_at, 'YYYY-MM-DD HH24:MI:SS')
            from kaiten.sync_streams order by 1, 2
            """
        ).fetchall()
    return [(str(a), str(b), c, d) for a, b, c, d in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kaiten_local.demo")
    parser.add_argument("--cards", type=int, default=2000, help="cards in the sandbox workspace")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    env = dict(os.environ)
    embedded = not env.get("DATABASE_URL")
    if embedded:
        print("DATABASE_URL is not set: starting an embedded PostgreSQL in .local/pgdata ...")
        try:
            server_url = EmbeddedPostgres().start()
        except PostgresError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    else:
        server_url = env["DATABASE_URL"]
    # Sandbox data never goes into the database DATABASE_URL names (it may be production):
    # the demo gets a database of its own on the same server, new for each demo.
    try:
        with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"drop database if exists {DEMO_DB} with (force)")
            conn.execute(f"create database {DEMO_DB}")
    except psycopg.Error as err:
        print(
            f"error: cannot create the demo database {DEMO_DB!r} on the DATABASE_URL server "
            f"({str(err).strip().splitlines()[0]}). Unset DATABASE_URL to use an embedded "
            "PostgreSQL, or use a user that may create databases.",
            file=sys.stderr,
        )
        return 1
    url = env["DATABASE_URL"] = with_database(server_url, DEMO_DB)
    print(f"Demo database: {DEMO_DB} (your own data in DATABASE_URL is not touched)")

    with Sandbox(seed=args.seed, cards=args.cards, rate_limit=0) as sandbox:
        print(f"Kaiten sandbox: {sandbox.base_url} ({args.cards} cards, seed {args.seed})")
        env |= {"KAITEN_API_URL": sandbox.base_url, "KAITEN_API_TOKEN": sandbox.token}
        # The sandbox is local and unthrottled: no reason to pace requests like for Kaiten.
        env["TAP_KAITEN_REQUESTS_PER_SECOND"] = "1000"
        started = time.monotonic()
        print("Running: meltano run kaiten-sync  (tap-kaiten -> target-postgres -> dbt build)")
        done = run_job("kaiten-sync", env)
        elapsed = time.monotonic() - started
        if done.returncode:
            print(f"meltano run kaiten-sync failed (exit {done.returncode})", file=sys.stderr)
            return done.returncode

    print(f"\nkaiten-sync finished in {elapsed:.1f} s. Rows per table in schema {SCHEMA}:")
    for table, count in table_counts(url).items():
        if table != "sync_metadata":  # shown below, as bookmarks
            print(f"  {table:<28} {count:>8}")
    print("\nBookmarks in kaiten.sync_metadata (view kaiten.sync_streams):")
    for state_id, stream, value, synced_at in bookmarks(url):
        print(f"  {state_id}  {stream:<24} {value or '-':<26} synced {synced_at} UTC")
    marts = table_counts(url, "kaiten_site")
    if marts:
        print("\ndbt marts in schema kaiten_site:")
        for table, count in marts.items():
            print(f"  {table:<28} {count:>8}")

    print("\nLook at the data with psql:")
    print(f"  {shlex.quote(str(psql_path()))} {shlex.quote(url)}")
    print("  e.g. select id, title, updated from kaiten.cards order by updated desc limit 5;")
    if embedded:
        print("The embedded PostgreSQL keeps running; stop it with: make demo-stop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
