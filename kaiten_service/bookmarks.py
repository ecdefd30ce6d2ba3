"""Read-only view of the pipeline's bookmarks in `kaiten.sync_metadata`.

The table belongs to the state backend (kaiten_state); the service only reads
it, in a read-only transaction, and copes with it not existing yet (before the
first run) or the database being down (the status page still has to load).
"""

from __future__ import annotations

import contextlib
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

TABLE = "kaiten.sync_metadata"
CONNECT_TIMEOUT_SECONDS = 3


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def stream_bookmarks(state: Any) -> dict[str, Any]:
    """`{stream: replication_key_value}` from a Singer state, wherever Meltano nested it."""
    if not isinstance(state, dict):
        return {}
    singer_state = state.get("singer_state", state)
    bookmarks = singer_state.get("bookmarks") if isinstance(singer_state, dict) else None
    if not isinstance(bookmarks, dict):
        return {}
    found: dict[str, Any] = {}
    for stream, bookmark in bookmarks.items():
        if not isinstance(bookmark, dict):
            continue
        if "replication_key_value" in bookmark:
            found[stream] = bookmark["replication_key_value"]
        elif isinstance(bookmark.get("partitions"), list):
            # Child streams keep one bookmark per parent: the newest one says
            # when the stream was last synced.
            values = [
                p.get("replication_key_value")
                for p in bookmark["partitions"]
                if isinstance(p, dict)
            ]
            values = [v for v in values if v is not None]
            if values:
                found[stream] = max(values, key=str)
    return found


async def read_bookmarks(database_url: str | None) -> dict[str, Any]:
    """Rows of kaiten.sync_metadata plus per-stream bookmarks; never raises."""
    if not database_url:
        return {"available": False, "reason": "DATABASE_URL is not set", "states": []}
    try:
        async with await psycopg.AsyncConnection.connect(
            database_url,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            options="-c default_transaction_read_only=on -c statement_timeout=3000",
            row_factory=dict_row,
            autocommit=True,
        ) as conn:
            exists = await (
                await conn.execute("select to_regclass(%s) is not null as present", [TABLE])
            ).fetchone()
            if not exists or not exists["present"]:
                return {
                    "available": False,
                    "reason": f"{TABLE} does not exist yet (no sync has run)",
                    "states": [],
                }
            rows = await (await conn.execute(f"select * from {TABLE}")).fetchall()  # noqa: S608 - constant name
    except psycopg.Error as exc:
        # The class name says enough (OperationalError: can't connect, ...);
        # the message can contain the host and user, so it stays in the log.
        return {
            "available": False,
            "reason": f"cannot read {TABLE}: {type(exc).__name__}",
            "states": [],
        }

    states = []
    for row in rows:
        streams: dict[str, Any] = {}
        for value in row.values():
            with contextlib.suppress(AttributeError, TypeError):
                streams.update(stream_bookmarks(value))
        plain = {k: _jsonable(v) for k, v in row.items() if not isinstance(v, dict | list)}
        states.append({**plain, "streams": _jsonable(streams)})
    return {"available": True, "reason": None, "states": states}
