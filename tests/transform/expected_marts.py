"""What the marts must hold, computed in plain Python from the sandbox's ground truth.

An independent statement of the rules the dbt models implement (flow times,
column durations, names, counts), so a test compares two implementations
rather than the SQL with itself.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

DONE, IN_PROGRESS = 3, 2


def ts(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _entry_order(entry: dict[str, Any]) -> tuple[dt.datetime, int, str]:
    # History ids are strings of digits: "10" comes after "9".
    return (ts(entry["changed"]), len(entry["id"]), entry["id"])  # type: ignore[return-value]


def history_by_card(truth: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for entry in truth["card_location_history"]:
        grouped[entry["card_id"]].append(entry)
    return {card_id: sorted(entries, key=_entry_order) for card_id, entries in grouped.items()}


def column_types(truth: dict[str, Any]) -> dict[int, int]:
    types: dict[int, int] = {}
    for column in truth["columns"]:
        types[column["id"]] = column["type"]
        for sub in column.get("subcolumns") or []:
            types[sub["id"]] = sub["type"]
    return types


def flow_times(
    card: dict[str, Any], history: list[dict[str, Any]], types: dict[int, int]
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(started_at, done_at) as the cards mart defines them."""
    started = None
    for entry in history:
        if entry["condition"] != 2 and types.get(entry["column_id"]) in (IN_PROGRESS, DONE):
            started = ts(entry["changed"])
            break
    if started is None:
        started = ts(card["first_moved_to_in_progress_at"])
    done = None
    if card["state"] == DONE:
        # Walk back over the trailing entries in done columns: done since the earliest.
        for entry in reversed(history):
            if types.get(entry["column_id"]) != DONE:
                break
            done = ts(entry["changed"])
        if done is None:
            done = ts(card["last_moved_to_done_at"]) or ts(card["completed_at"])
    return started, done


@dataclass
class ColumnStay:
    visit_count: int = 0
    seconds: float = 0.0
    first_entered_at: dt.datetime | None = None
    last_left_at: dt.datetime | None = None
    current_visit_started_at: dt.datetime | None = None


def column_durations(history: list[dict[str, Any]]) -> dict[int, ColumnStay]:
    """Per top-level column: finished visits summed; archived time counts nowhere."""
    stays: dict[int, ColumnStay] = {}
    visit_column: dict[int, int] = {}
    visit_start: dict[int, dt.datetime] = {}
    visit_seconds: dict[int, float] = defaultdict(float)
    visit_end: dict[int, dt.datetime] = {}
    visit = 0
    previous: dict[str, Any] | None = None
    for position, entry in enumerate(history):
        changed = ts(entry["changed"])
        assert changed is not None
        if entry["condition"] != 2:
            if (
                previous is None
                or previous["column_id"] != entry["column_id"]
                or previous["condition"] == 2
            ):
                visit += 1
                visit_column[visit] = entry["column_id"]
                visit_start[visit] = changed
            if position + 1 < len(history):
                end = ts(history[position + 1]["changed"])
                assert end is not None
                visit_seconds[visit] += (end - changed).total_seconds()
                visit_end[visit] = end
        previous = entry
    current = visit if history and history[-1]["condition"] != 2 else None
    for number, column_id in visit_column.items():
        stay = stays.setdefault(column_id, ColumnStay())
        stay.visit_count += 1
        if stay.first_entered_at is None:
            stay.first_entered_at = visit_start[number]
        if number == current:
            stay.current_visit_started_at = visit_start[number]
            continue
        stay.seconds += visit_seconds[number]
        if number in visit_end:
            stay.last_left_at = visit_end[number]
    return stays


def space_paths(truth: dict[str, Any]) -> dict[int, str]:
    by_uid = {space["uid"]: space for space in truth["spaces"]}
    paths: dict[int, str] = {}
    for space in truth["spaces"]:
        titles = [space["title"]]
        parent = by_uid.get(space["parent_entity_uid"] or "")
        while parent is not None:
            titles.append(parent["title"])
            parent = by_uid.get(parent["parent_entity_uid"] or "")
        paths[space["id"]] = " / ".join(reversed(titles))
    return paths


def custom_properties(card: dict[str, Any], truth: dict[str, Any]) -> dict[str, Any]:
    props = {p["id"]: p for p in truth["custom_properties"]}
    out: dict[str, Any] = {}
    for key, value in (card["properties"] or {}).items():
        prop = props.get(int(key.removeprefix("id_")))
        if prop is None:
            out[key] = value
            continue
        if prop["type"] == "select" and isinstance(value, list):
            texts = {option["id"]: option["value"] for option in prop.get("values") or []}
            names = [texts.get(option_id, option_id) for option_id in value]
            out[prop["name"]] = names[0] if not prop["multi_select"] and len(names) == 1 else names
        else:
            out[prop["name"]] = value
    return out


def card_status(card: dict[str, Any]) -> str:
    if card["archived"] or card["condition"] == 2:
        return "archived"
    return {1: "queued", 2: "in_progress", 3: "done"}[card["state"]]
