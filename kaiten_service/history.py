"""Run history in PostgreSQL (`kaiten.sync_runs`), next to the bookmarks in kaiten.sync_metadata.

The in-memory history is what the status endpoint serves; this table makes it
survive a restart and lets the site (or psql) see when syncs ran and how they
ended. Storage is best effort: a database hiccup is logged, never allowed to
stop or fail a run.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import psycopg
from psycopg.rows import dict_row

log = logging.getLogger(__name__)

TABLE = "kaiten.sync_runs"
CONNECT_TIMEOUT_SECONDS = 5

DDL = f"""
create schema if not exists kaiten;
create table if not exists {TABLE} (
    run_id          text        primary key,
    kind            text        not null,
    trigger         text        not null,
    started_at      timestamptz not null,
    ended_at        timestamptz,
    outcome         text        not null,
    exit_code       integer,
    webhook_events  integer     not null default 0,
    records         jsonb       not null default '{{}}'::jsonb,
    error           text,
    log_file        text
);
comment on table {TABLE} is
    'Runs started by the sync service (kaiten_service): API, /admin/sync, webhooks';
"""

_UPSERT = f"""
insert into {TABLE} (run_id, kind, trigger, started_at, ended_at, outcome, exit_code,
                     webhook_events, records, error, log_file)
values (%(id)s, %(kind)s, %(trigger)s, %(started_at)s, %(ended_at)s, %(outcome)s, %(exit_code)s,
        %(webhook_events)s, %(records)s, %(error)s, %(log_file)s)
on conflict (run_id) do update set
    ended_at = excluded.ended_at, outcome = excluded.outcome, exit_code = excluded.exit_code,
    records = excluded.records, error = excluded.error, log_file = excluded.log_file
-- A late "started" write must never turn a finished run back into a going one.
where excluded.outcome <> 'running'
"""  # noqa: S608 - constant table name


class RunStore:
    """Writes and reads `kaiten.sync_runs`; every method swallows database errors."""

    def __init__(self, database_url: str | None) -> None:
        self.database_url = database_url
        self._ready = False

    async def _connect(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        assert self.database_url
        conn = await psycopg.AsyncConnection.connect(
            self.database_url,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            autocommit=True,
            row_factory=dict_row,
            application_name="kaiten-sync-service",
        )
        if not self._ready:
            await conn.execute(DDL)
            self._ready = True
        return conn

    async def save(self, run: dict[str, Any]) -> None:
        if not self.database_url:
            return
        row = {**run, "records": json.dumps(dict(run["records"]))}
        try:
            async with await self._connect() as conn:
                await conn.execute(_UPSERT, row)
        except psycopg.Error as exc:
            log.warning("run %s not saved to %s: %s", run["id"], TABLE, type(exc).__name__)

    async def load(self, limit: int) -> list[dict[str, Any]]:
        """The newest runs, newest first.

        Runs a previous process left going are marked 'interrupted' first.
        """
        if not self.database_url:
            return []
        try:
            async with await self._connect() as conn:
                # One service per database: a run still marked going belonged to
                # a process that died without finishing it.
                await conn.execute(
                    f"update {TABLE} set outcome = 'interrupted', error = coalesce(error,"  # noqa: S608
                    " 'the service stopped before the run ended') where outcome = 'running'"
                )
                cursor = await conn.execute(
                    f"select * from {TABLE} order by started_at desc limit %s",  # noqa: S608
                    [limit],
                )
                return await cursor.fetchall()
        except psycopg.Error as exc:
            log.warning("run history not loaded from %s: %s", TABLE, type(exc).__name__)
            return []
