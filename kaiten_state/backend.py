"""Meltano state backend: Singer bookmarks in PostgreSQL, table `kaiten.sync_metadata`.

Registered under the `meltano.state_backends` entry point for the `postgresql`
and `postgres` schemes, so `state_backend.uri: $DATABASE_URL` is all a project
sets. Meltano's file and S3 backends are the model: `get`/`set`/`delete`
plus `acquire_lock`, which Meltano wraps around every write.

Locking (PostgreSQL advisory locks, keyed by state id):
- A pipeline run (`meltano run|el|elt`) takes a *session* lock on its state id
  the first time it touches that state and keeps it until the process exits,
  so the lock dies with the process (crash, kill -9, lost connection) and
  never needs a timeout. A second run of the same job, from this machine or
  any other, is refused at once with the holder named, instead of waiting or
  interleaving its bookmarks with the first.
- Every write (`meltano state set|clear`, each bookmark a run persists) runs in
  one transaction under a *transaction* lock on the same key: a run's own
  writes pass (same session), anyone else's are refused while a run holds it.
"""

from __future__ import annotations

import atexit
import fnmatch
import sys
import time
import typing as t
from contextlib import contextmanager

import psycopg
from meltano.core.error import MeltanoError
from meltano.core.state_store.base import (
    MeltanoState,
    StateIDLockedError,
    StateStoreManager,
)
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if t.TYPE_CHECKING:
    from collections.abc import Generator, Iterable, Iterator

SCHEMA = "kaiten"
TABLE = "sync_metadata"
QUALIFIED = f"{SCHEMA}.{TABLE}"
# Namespaces the lock key so it can't collide with other advisory-lock users of the database.
LOCK_KEY_SQL = "hashtextextended('kaiten.sync_metadata:' || %s, 0)"
# Serialises the one-time DDL when several processes meet an empty database.
DDL_LOCK_SQL = "hashtextextended('kaiten.sync_metadata:ddl', 0)"
PIPELINE_COMMANDS = frozenset({"run", "el", "elt"})
APPLICATION_NAME = "meltano-state-kaiten"

# Constant identifiers only, nothing user-supplied.
DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {QUALIFIED} (
    state_id        text        primary key,
    completed_state jsonb       not null default '{{}}'::jsonb,
    partial_state   jsonb       not null default '{{}}'::jsonb,
    updated_at      timestamptz not null default now()
);
comment on table {QUALIFIED} is
    'Meltano state (Singer bookmarks) per state id, written by the kaiten_state backend';
drop view if exists {SCHEMA}.sync_streams;
create view {SCHEMA}.sync_streams as
    select m.state_id,
           b.key                                          as stream,
           p.value -> 'context'                           as partition,
           coalesce(p.value, b.value) ->> 'replication_key'       as replication_key,
           coalesce(p.value, b.value) ->> 'replication_key_value' as replication_key_value,
           m.updated_at                                   as synced_at
    from {QUALIFIED} as m
    cross join lateral jsonb_each(
        coalesce(m.completed_state -> 'singer_state' -> 'bookmarks', '{{}}'::jsonb)
    ) as b
    -- partitioned streams (cards: one bookmark per condition) give one row per partition
    left join lateral jsonb_array_elements(
        case when jsonb_typeof(b.value -> 'partitions') = 'array'
             then b.value -> 'partitions' else '[]'::jsonb end
    ) as p on true;
comment on view {SCHEMA}.sync_streams is
    'One row per stream (and partition) bookmark: when it was last synced and up to which value';
"""  # noqa: S608


class StateBackendError(MeltanoError):
    """The state store can't be used; the message says why and what to do."""


class SyncLockedError(StateIDLockedError, MeltanoError):
    """Another process holds the advisory lock of this state id."""


def describe_target(url: str) -> str:
    """`host:port/dbname` of a libpq URI: enough to recognise it, never the password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "an unparsable URI"
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    return f"{host}:{port}/{params.get('dbname') or params.get('user') or ''}"


def _first_line(err: Exception) -> str:
    """libpq's first line says what failed ("... failed: Connection refused"); the rest is hints."""
    text = str(err).strip()
    return text.splitlines()[0].removeprefix("connection failed: ") if text else type(err).__name__


def connect(url: str, application_name: str = APPLICATION_NAME) -> psycopg.Connection:
    """Open an autocommit connection to DATABASE_URL, failing with one readable line."""
    if not url:
        raise StateBackendError(
            "DATABASE_URL is not set",
            "Put the PostgreSQL URI (postgresql://user:password@host:5432/db?sslmode=require) "
            "in .env or the environment",
        )
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as err:
        # libpq names the offending part (e.g. a Prisma-only "pgbouncer" parameter), never
        # the password.
        raise StateBackendError(
            f"DATABASE_URL is not a valid PostgreSQL URI ({_first_line(err)})",
            "Use the form postgresql://user:password@host:5432/db?sslmode=require; "
            "percent-encode special characters in the password; drop parameters that only "
            "an ORM understands (pgbouncer, connection_limit)",
        ) from None
    # An unreachable host must fail in seconds, not hang a cron job; the UTC session
    # keeps updated_at readable the same way everywhere.
    extra: dict[str, t.Any] = {"application_name": application_name}
    if "connect_timeout" not in params:
        extra["connect_timeout"] = 10
    try:
        conn = psycopg.connect(make_conninfo(url, **extra), autocommit=True)
    except psycopg.OperationalError as err:
        reason = _first_line(err)
        raise StateBackendError(
            f"Cannot connect to PostgreSQL at DATABASE_URL ({describe_target(url)}): {reason}",
            "Check DATABASE_URL in .env (host, port, password, sslmode) and that the server runs",
        ) from None
    conn.execute("set time zone 'UTC'")
    return conn


def _lock_holder(conn: psycopg.Connection, state_id: str) -> str:
    row = conn.execute(
        f"""
        select a.pid, a.application_name, host(a.client_addr), a.backend_start
        from pg_locks l join pg_stat_activity a using (pid)
        where l.locktype = 'advisory' and l.granted and l.objsubid = 1 and l.pid <> pg_backend_pid()
          and ((l.classid::bigint << 32) | l.objid::bigint) = {LOCK_KEY_SQL}
        limit 1
        """,  # noqa: S608 - constant SQL, the state id is a bound parameter
        (state_id,),
    ).fetchone()
    if not row:
        return "another process"
    pid, app, addr, started = row
    where = f" from {addr}" if addr else ""
    return f"{app or 'a client'}{where}, PostgreSQL pid {pid}, since {started:%Y-%m-%d %H:%M:%S}Z"


def sync_lock_held(database_url: str, state_id: str | None = None) -> bool:
    """Whether a pipeline run holds the lock of `state_id` (of any known state id when None).

    For processes that start runs (the sync service). It only looks at pg_locks and
    never takes the lock itself, so probing can't make a starting run fail.
    """
    with connect(database_url, application_name="kaiten-lock-probe") as conn:
        if state_id is not None:
            keys_sql, params = f"select {LOCK_KEY_SQL}", (state_id,)
        elif _table_exists(conn):
            keys_sql = f"select {LOCK_KEY_SQL.replace('%s', 'state_id')} from {QUALIFIED}"  # noqa: S608
            params = ()
        else:
            return False
        row = conn.execute(
            f"""
            select exists (
                select 1 from pg_locks
                where locktype = 'advisory' and granted and objsubid = 1
                  and ((classid::bigint << 32) | objid::bigint) in ({keys_sql})
            )
            """,  # noqa: S608 - constant SQL, state id bound
            params,
        ).fetchone()
        return bool(row and row[0])


def _table_exists(conn: psycopg.Connection) -> bool:
    row = conn.execute("select to_regclass(%s) is not null", (QUALIFIED,)).fetchone()
    return bool(row and row[0])


def _schema_current(conn: psycopg.Connection) -> bool:
    """Table and the current shape of the view exist (the view gained `partition`)."""
    row = conn.execute(
        "select to_regclass(%s) is not null and exists (select 1 from information_schema.columns"
        " where table_schema = %s and table_name = 'sync_streams' and column_name = 'partition')",
        (QUALIFIED, SCHEMA),
    ).fetchone()
    return bool(row and row[0])


def _in_pipeline_run() -> bool:
    """True inside `meltano run|el|elt`: the commands whose state reads start a sync."""
    try:
        import click
    except ImportError:  # pragma: no cover - Meltano always ships click
        return False
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if (
            ctx.info_name in PIPELINE_COMMANDS
            and ctx.parent is not None
            and ctx.parent.parent is None
        ):
            return True
        ctx = ctx.parent
    return False


class _Session:
    """One connection per DATABASE_URL per process, shared by every manager Meltano creates.

    Meltano builds and closes a manager for each state read or write; the run lock
    must outlive them, so the connection (and the locks it holds) lives as long as
    the process.
    """

    _by_url: t.ClassVar[dict[str, _Session]] = {}

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn = connect(url)
        self.run_locks: set[str] = set()
        self._ensure_schema()

    @classmethod
    def get(cls, url: str) -> _Session:
        session = cls._by_url.get(url)
        if session is None or session.conn.closed:
            session = cls._by_url[url] = cls(url)
        return session

    @classmethod
    def close_all(cls) -> None:
        for session in cls._by_url.values():
            session.conn.close()
        cls._by_url.clear()

    def _ensure_schema(self) -> None:
        if _schema_current(self.conn):
            return
        try:
            with self.conn.transaction():
                self.conn.execute(f"select pg_advisory_xact_lock({DDL_LOCK_SQL})")
                self.conn.execute(DDL)
        except psycopg.errors.InsufficientPrivilege as err:
            raise StateBackendError(
                f"The DATABASE_URL user may not create {QUALIFIED}: {err.diag.message_primary}",
                f"Grant it CREATE on the database, or create schema {SCHEMA} for it",
            ) from None

    def take_run_lock(self, state_id: str) -> None:
        if state_id in self.run_locks:
            return
        row = self.conn.execute(
            f"select pg_try_advisory_lock({LOCK_KEY_SQL})", (state_id,)
        ).fetchone()
        if not (row and row[0]):
            raise SyncLockedError(
                f"Another sync of '{state_id}' is running "
                f"(held by {_lock_holder(self.conn, state_id)}); "
                "this run was refused so the two do not interleave",
                "Wait for that run to finish and start again",
            )
        self.run_locks.add(state_id)


atexit.register(_Session.close_all)


def _pruned(value: t.Any) -> t.Any:
    """State without empty objects: `{"tags": {}}` carries no bookmark, same as `{}`."""
    if isinstance(value, dict):
        pruned = {key: _pruned(item) for key, item in value.items()}
        return {key: item for key, item in pruned.items() if item != {}}
    if isinstance(value, list):
        return [_pruned(item) for item in value]
    return value


def _like_pattern(pattern: str) -> str:
    """Meltano's glob patterns (`*`, `?`) as a LIKE pattern, literal `%`/`_` escaped."""
    out = []
    for char in pattern:
        if char in "\\%_":
            out.append("\\" + char)
        elif char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        else:
            out.append(char)
    return "".join(out)


class PostgresStateStoreManager(StateStoreManager):
    """State in `kaiten.sync_metadata`: one row per state id, complete and partial as jsonb."""

    label = "PostgreSQL table kaiten.sync_metadata"

    def __init__(
        self,
        uri: str,
        lock_timeout_seconds: int | None = None,
        lock_retry_seconds: float | None = None,
        **kwargs: t.Any,
    ) -> None:
        super().__init__(**kwargs)
        self.uri = uri
        # How long a write waits for another *writer* (not a run) before giving up.
        self.lock_timeout_seconds = float(lock_timeout_seconds or 10)
        self.lock_retry_seconds = float(lock_retry_seconds or 0.5)
        self._session: _Session | None = None

    @property
    def session(self) -> _Session:
        if self._session is None:
            self._session = _Session.get(self.uri)
        return self._session

    @property
    def conn(self) -> psycopg.Connection:
        return self.session.conn

    def _claim_for_run(self, state_id: str) -> None:
        if _in_pipeline_run():
            self.session.take_run_lock(state_id)

    @override
    def get(self, state_id: str) -> MeltanoState | None:
        # A run's first read of its state is the start of the sync: claim it here so a
        # second run stops before extracting anything.
        self._claim_for_run(state_id)
        row = self.conn.execute(
            f"select completed_state, partial_state from {QUALIFIED} where state_id = %s",  # noqa: S608
            (state_id,),
        ).fetchone()
        if row is None:
            return None
        return MeltanoState(state_id=state_id, completed_state=row[0], partial_state=row[1])

    @override
    def set(self, state: MeltanoState) -> None:
        with self.conn.transaction():
            current = self.conn.execute(
                f"select completed_state, partial_state from {QUALIFIED} where state_id = %s"  # noqa: S608
                " for update",
                (state.state_id,),
            ).fetchone()
            # The SDK echoes the input state when a sync starts, so a run that fails before
            # reading anything still sends it back. Rewriting it would stamp updated_at as if
            # that run had synced something: equivalent state is not written again.
            if current is not None and (
                _pruned(current[0] or {}) == _pruned(state.completed_state or {})
                and _pruned(current[1] or {}) == _pruned(state.partial_state or {})
            ):
                return
            self.conn.execute(
                f"""
                insert into {QUALIFIED} as m (state_id, completed_state, partial_state, updated_at)
                values (%s, %s, %s, now())
                on conflict (state_id) do update
                set completed_state = excluded.completed_state,
                    partial_state = excluded.partial_state,
                    updated_at = excluded.updated_at
                """,  # noqa: S608 - constant identifiers, values are bound
                (
                    state.state_id,
                    Jsonb(state.completed_state or {}),
                    Jsonb(state.partial_state or {}),
                ),
            )

    @override
    def delete(self, state_id: str) -> None:
        self.conn.execute(f"delete from {QUALIFIED} where state_id = %s", (state_id,))  # noqa: S608

    @override
    def get_state_ids(self, pattern: str | None = None) -> Iterator[str]:
        if pattern and pattern != "*":
            rows = self.conn.execute(
                f"select state_id from {QUALIFIED} where state_id like %s order by state_id",  # noqa: S608
                (_like_pattern(pattern),),
            ).fetchall()
        else:
            rows = self.conn.execute(
                f"select state_id from {QUALIFIED} order by state_id"  # noqa: S608
            ).fetchall()
        return (row[0] for row in rows)

    @override
    def get_all(self, pattern: str | None = None) -> Iterator[MeltanoState]:
        rows = self.conn.execute(
            f"select state_id, completed_state, partial_state from {QUALIFIED} order by state_id"  # noqa: S608
        ).fetchall()
        return (
            MeltanoState(state_id=sid, completed_state=done, partial_state=part)
            for sid, done, part in rows
            if not pattern or fnmatch.fnmatchcase(sid, pattern)
        )

    @override
    def set_all(self, states: Iterable[MeltanoState]) -> int:
        state_list = list(states)
        with self.conn.transaction():
            for state in state_list:
                self._xact_lock(state.state_id)
                self.set(state)
        return len(state_list)

    @override
    def clear_all(self) -> int:
        with self.conn.transaction():
            ids = [
                row[0]
                for row in self.conn.execute(f"select state_id from {QUALIFIED}").fetchall()  # noqa: S608
            ]
            for state_id in ids:
                self._xact_lock(state_id)
            self.conn.execute(f"delete from {QUALIFIED}")  # noqa: S608
        return len(ids)

    def _xact_lock(self, state_id: str) -> None:
        """Transaction lock on the state id; refuses after lock_timeout_seconds."""
        deadline = time.monotonic() + self.lock_timeout_seconds
        while True:
            row = self.conn.execute(
                f"select pg_try_advisory_xact_lock({LOCK_KEY_SQL})", (state_id,)
            ).fetchone()
            if row and row[0]:
                return
            if time.monotonic() >= deadline:
                raise SyncLockedError(
                    f"State '{state_id}' is locked by {_lock_holder(self.conn, state_id)}, "
                    "a sync of this job is probably running",
                    "Wait for it to finish and try again",
                )
            time.sleep(self.lock_retry_seconds)

    @override
    @contextmanager
    def acquire_lock(self, state_id: str, *, retry_seconds: float) -> Generator[None]:
        # A full refresh never reads state first: its first write is where it claims the job.
        self._claim_for_run(state_id)
        with self.conn.transaction():
            self._xact_lock(state_id)
            yield

    @override
    def close(self) -> None:
        # The shared connection stays open: it carries the run lock (see _Session).
        self._session = None
