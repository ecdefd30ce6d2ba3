"""Compare the `kaiten` tables with the sandbox's ground truth, value by value."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

# Streams the tap loads, as named in the sandbox truth and in schema `kaiten`.
STREAMS = (
    "spaces",
    "boards",
    "columns",
    "lanes",
    "users",
    "tags",
    "card_types",
    "custom_properties",
    "cards",
    "card_location_history",
    "card_comments",
)
EXTRA = "extra_fields"  # the tap keeps fields its schema doesn't list here


def _clean_text(value: Any) -> Any:
    """PostgreSQL can't store U+0000; the loader stores U+FFFD instead (meltano.yml)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_clean_text(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean_text(v) for k, v in value.items()}
    return value


def _parse_ts(value: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def same(expected: Any, actual: Any) -> bool:
    """Whether a loaded value is the API's value, allowing only the type mapping."""
    expected = _clean_text(expected)
    if expected is None or actual is None:
        return expected is None and actual is None
    if isinstance(actual, dt.datetime):
        if not isinstance(expected, str):
            return False
        parsed = _parse_ts(expected)
        loaded = actual if actual.tzinfo else actual.replace(tzinfo=dt.UTC)
        return parsed is not None and parsed == loaded.astimezone(dt.UTC)
    if isinstance(actual, dt.date):
        return isinstance(expected, str) and expected[:10] == actual.isoformat()
    if isinstance(actual, Decimal | float) and not isinstance(expected, bool):
        if not isinstance(expected, int | float):
            return False
        return math.isclose(float(actual), float(expected), rel_tol=1e-12, abs_tol=1e-12)
    if isinstance(actual, list) and isinstance(expected, list):
        return len(actual) == len(expected) and all(
            same(e, a) for e, a in zip(expected, actual, strict=True)
        )
    if isinstance(actual, dict) and isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            same(expected[k], actual[k]) for k in expected
        )
    if isinstance(actual, str) and not isinstance(expected, str):
        # jsonb scalars, text-typed ids: compare through their JSON rendering
        return actual == str(expected)
    return type(expected) is type(actual) and expected == actual


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def load_table(url: str, table: str, *, live_only: bool = True) -> dict[Any, dict[str, Any]]:
    """Rows of kaiten.<table> keyed by id; rows the loader soft-deleted are left out."""
    with psycopg.connect(url) as conn:
        cur = conn.execute(
            sql.SQL("select * from {}.{}").format(sql.Identifier("kaiten"), sql.Identifier(table))
        )
        names = [c.name for c in cur.description or []]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    if live_only and rows and "_sdc_deleted_at" in rows[0]:
        rows = [r for r in rows if r["_sdc_deleted_at"] is None]
    return {row["id"]: row for row in rows}


def diff_stream(
    expected_records: list[dict[str, Any]], rows: dict[Any, dict[str, Any]]
) -> list[str]:
    """Human-readable differences (empty when the table equals the truth)."""
    problems: list[str] = []
    expected_by_id = {rec["id"]: rec for rec in expected_records}
    missing = expected_by_id.keys() - rows.keys()
    extra = rows.keys() - expected_by_id.keys()
    if missing:
        problems.append(f"{len(missing)} records missing, e.g. ids {sorted(missing, key=str)[:5]}")
    if extra:
        problems.append(f"{len(extra)} rows not in the API, e.g. ids {sorted(extra, key=str)[:5]}")
    for rid in expected_by_id.keys() & rows.keys():
        rec, row = expected_by_id[rid], rows[rid]
        extras = row.get(EXTRA) or {}
        for key, value in rec.items():
            if key in row:
                loaded = row[key]
                if key == "space_ids" and isinstance(loaded, list):
                    loaded = sorted(loaded)
            elif key in extras:
                loaded = extras[key]
            else:
                problems.append(f"id {rid}: field {key!r} was not loaded at all")
                continue
            if not same(value, loaded):
                problems.append(f"id {rid}: {key} = {_short(loaded)}, API has {_short(value)}")
        # A column the API record doesn't have must be empty, not stale data.
        for key, loaded in row.items():
            if key.startswith("_sdc_") or key == EXTRA or key in rec:
                continue
            if loaded is not None:
                problems.append(f"id {rid}: column {key} = {_short(loaded)}, not in the API record")
        if len(problems) > 20:
            break
    return problems


def expected_streams(truth: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Truth keyed by table, with the tap's documented reshaping applied (and only that).

    - columns: subcolumns become rows of their own, with the parent in `column_id`;
    - boards: `space_ids`, every space the board is placed in (many-to-many); the board's
      embedded `columns` and `lanes` are rows of the `columns` and `lanes` tables (compared
      there), not a copy inside the board row;
    - cards: `space_id`, the card's space from `path_data` (the API has no top-level one).
    """
    expected = {name: [dict(rec) for rec in truth[name]] for name in STREAMS}
    columns = []
    for column in expected["columns"]:
        subcolumns = column.pop("subcolumns", None) or []
        columns.append(column)
        columns.extend(
            {**sub, "column_id": sub.get("column_id") or column["id"]} for sub in subcolumns
        )
    expected["columns"] = columns
    spaces_of: dict[Any, list[Any]] = {}
    for space_id, board_id in truth.get("space_boards", []):
        spaces_of.setdefault(board_id, []).append(space_id)
    for board in expected["boards"]:
        board["space_ids"] = sorted(spaces_of.get(board["id"], []))
        for embedded in ("columns", "lanes"):
            ids = {item["id"] for item in board.pop(embedded, None) or []}
            # the rows they become must be there, for this board
            loaded = {row["id"] for row in expected[embedded] if row.get("board_id") == board["id"]}
            assert ids <= loaded, (
                f"board {board['id']}: truth {embedded} not in truth[{embedded!r}]"
            )
    for card in expected["cards"]:
        card["space_id"] = ((card.get("path_data") or {}).get("space") or {}).get("id")
    return expected


def assert_tables_equal_truth(url: str, truth: dict[str, Any]) -> None:
    report = []
    for stream, records in expected_streams(truth).items():
        problems = diff_stream(records, load_table(url, stream))
        if problems:
            report.append(f"{stream}:\n  " + "\n  ".join(problems[:20]))
    assert not report, "kaiten tables differ from the sandbox truth:\n" + "\n".join(report)
