"""The loader (plugins/kaiten-pgenv/kaiten_target_postgres.py) keeps target-postgres's semantics.

Our sink replaces target-postgres 0.8.1's batch load (one INSERT ... ON CONFLICT instead of
INSERT + UPDATE, its own COPY rows) for speed; these tests feed Singer messages to the
real loader (`meltano invoke target-postgres`, real PostgreSQL) and check what the rows
hold: last record of a key wins, re-read rows are replaced, new columns appear, NUL
characters are sanitised, timestamps with any offset land as the same UTC instant, and
ACTIVATE_VERSION soft-deletes exactly the rows the new version didn't send.

Each scenario runs twice: with lines as the Singer SDK writes them (compact, `type` then
`stream` first), which the loader decodes with jsonb fields kept as raw JSON text, and
with any other spacing, which goes the SDK's generic way. Both must land the same rows.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass

import pytest
from pipeline_helpers import assert_ok, query

from kaiten_local.project import ScratchProject

STREAM = "loader_probe"
PROPERTIES = {
    "id": {"type": ["integer"]},
    "title": {"type": ["null", "string"]},
    "updated": {"type": ["null", "string"], "format": "date-time"},
    "owner": {"type": ["null", "object"]},
    "tag_ids": {"type": ["null", "array"], "items": {"type": "integer"}},
}


def schema(properties: dict) -> dict:
    return {"type": "SCHEMA", "stream": STREAM, "schema": {"type": "object",
            "properties": properties}, "key_properties": ["id"]}  # fmt: skip


def record(version: int, **fields: object) -> dict:
    return {"type": "RECORD", "stream": STREAM, "record": fields, "version": version,
            "time_extracted": "2026-01-01T00:00:00+00:00"}  # fmt: skip


def activate(version: int) -> dict:
    return {"type": "ACTIVATE_VERSION", "stream": STREAM, "version": version}


RAW_JSONB_LOG = f"{STREAM}: jsonb fields read as raw JSON text"
# How the SDK's msgspec writer lays out a line (the raw-jsonb reader relies on it), and
# how json.dumps does by default (the generic reader).
SEPARATORS = {"sdk": (",", ":"), "spaced": (", ", ": ")}


@dataclass
class Loader:
    project: ScratchProject
    line_format: str  # a key of SEPARATORS


def load(loader: Loader, messages: list[dict]) -> str:
    """Feed the messages to the loader; its stderr."""
    separators = SEPARATORS[loader.line_format]
    lines = "".join(json.dumps(m, separators=separators) + "\n" for m in messages)
    result = loader.project.run("invoke", "target-postgres", stdin=lines)
    assert_ok(result)
    # The fast reader is taken exactly when the lines are laid out as the SDK writes them.
    fast = RAW_JSONB_LOG in result.stderr
    assert fast == (loader.line_format == "sdk"), result.stderr[-3000:]
    return result.stderr


def rows(url: str) -> dict[int, dict]:
    columns = [c for (c,) in query(
        url, "select column_name from information_schema.columns"
        " where table_schema = 'kaiten' and table_name = %s order by ordinal_position", (STREAM,),
    )]  # fmt: skip
    found = query(url, f"select * from kaiten.{STREAM}")
    return {row[0]: dict(zip(columns, row, strict=True)) for row in found}


@pytest.fixture(params=sorted(SEPARATORS))
def loader(request, project_factory, database_url) -> Loader:
    return Loader(project_factory(DATABASE_URL=database_url), request.param)


def test_loads_upserts_and_soft_deletes_like_target_postgres(loader, database_url) -> None:
    load(loader, [
        schema(PROPERTIES),
        record(1, id=1, title="one", updated="2024-01-03T17:11:14.642Z", owner=None),
        record(1, id=2, title="first copy", updated="2024-01-03T17:00:00Z", owner={"a": 1}),
        # Same key again in the batch: the last record wins.
        record(1, id=2, title="nul\u0000here", updated="2024-01-03T20:11:14.642+03:00",
               owner={"name": "x\u0000y", "n": 1.25}, tag_ids=[3, 4]),
        record(1, id=3, title="gone later", updated=None),
        activate(1),
    ])  # fmt: skip
    first = rows(database_url)
    assert sorted(first) == [1, 2, 3]
    # A +03:00 offset is the same instant in UTC (the column is a UTC `timestamp`).
    assert first[2]["updated"] == datetime.datetime(2024, 1, 3, 17, 11, 14, 642000)
    assert first[1]["updated"] == datetime.datetime(2024, 1, 3, 17, 11, 14, 642000)
    assert first[3]["updated"] is None
    assert first[2]["title"] == "nul\ufffdhere"
    assert first[2]["owner"] == {"name": "x\ufffdy", "n": 1.25}
    assert first[2]["tag_ids"] == [3, 4]
    # target-postgres stores a missing object as JSON null, not SQL NULL; so do we.
    assert first[1]["owner"] is None
    sql = f"select owner = 'null'::jsonb from kaiten.{STREAM} where id = 1"
    assert query(database_url, sql) == [(True,)]
    assert all(r["_sdc_deleted_at"] is None for r in first.values())

    # Version 2: a new column, row 2 changed, row 1 re-sent as it was, row 3 not sent, row 4 new.
    stderr = load(loader, [
        schema(PROPERTIES | {"size": {"type": ["null", "integer"]}}),
        record(2, id=1, title="one", updated="2024-01-03T17:11:14.642Z", owner=None),
        record(2, id=2, title="changed", updated="2024-02-01T00:00:00Z", owner={"b": 2}, size=5),
        # A field the schema lacks: dropped with a warning, whichever reader took the line.
        record(2, id=4, title="new", updated="2024-02-02T00:00:00Z", size=7, surprise="?"),
        activate(2),
    ])  # fmt: skip
    assert "No schema for record field 'surprise'" in stderr
    second = rows(database_url)
    assert sorted(second) == [1, 2, 3, 4]
    assert second[2]["title"] == "changed"
    assert second[2]["owner"] == {"b": 2}
    assert second[2]["tag_ids"] is None  # a re-read row is replaced, not merged
    assert (second[2]["size"], second[4]["size"], second[1]["size"]) == (5, 7, None)
    assert second[2]["updated"] == datetime.datetime(2024, 2, 1)
    assert {i: r["_sdc_table_version"] for i, r in second.items()} == {1: 2, 2: 2, 3: 1, 4: 2}
    # Only the row version 2 didn't send is soft-deleted; the others stay live.
    assert {i for i, r in second.items() if r["_sdc_deleted_at"] is not None} == {3}
