"""ACTIVATE_VERSION: one per complete read, at its end, so the target marks deleted rows."""

from __future__ import annotations

from kaiten_tap_helpers import CHILDREN, base_config, sync

WHOLE_TABLES = ("spaces", "boards", "columns", "lanes", "users", "tags", "card_types")


def activations(result):
    return [
        (i, m["stream"], m["version"])
        for i, m in enumerate(result.messages)
        if m["type"] == "ACTIVATE_VERSION"
    ]


def test_a_full_sync_activates_each_table_once_after_its_last_record(kaiten_sandbox):
    result = sync(base_config(kaiten_sandbox))
    activated = activations(result)
    streams = [stream for _, stream, _ in activated]
    assert sorted(streams) == sorted([*WHOLE_TABLES, "custom_properties", "cards", *CHILDREN])
    for index, stream, version in activated:
        positions = [
            i
            for i, m in enumerate(result.messages)
            if m["type"] == "RECORD" and m["stream"] == stream
        ]
        assert positions, stream
        assert index > max(positions), f"{stream}: ACTIVATE_VERSION before a record"
        assert {result.messages[i].get("version") for i in positions} == {version}


def test_an_incremental_run_never_activates_cards_or_their_history(kaiten_sandbox):
    config = base_config(kaiten_sandbox)
    first = sync(config)
    kaiten_sandbox.mutate(update=3, move=2)
    second = sync(config, state=first.final_state)
    streams = {stream for _, stream, _ in activations(second)}
    assert not streams & {"cards", *CHILDREN}
    assert set(WHOLE_TABLES) <= streams  # read completely on every run
    assert all(m.get("version") is None for m in second.messages if m.get("stream") == "cards")


def test_a_start_date_or_space_filter_is_not_a_full_read(kaiten_sandbox):
    for extra in ({"start_date": "2025-01-01"}, {"space_ids": [200]}, {"include_archived": False}):
        config = base_config(kaiten_sandbox, **extra)
        result = sync(config, streams=["cards", *CHILDREN])
        assert activations(result) == [], extra


def test_turning_it_off_sends_none(kaiten_sandbox):
    result = sync(base_config(kaiten_sandbox, emit_activate_version_messages=False))
    assert activations(result) == []
