"""A child stream's sync per parent record is not logged like a whole stream's sync."""

from __future__ import annotations

import json
from collections import Counter

from kaiten_tap_helpers import CHILDREN, base_config, run_cli, stdout_result


def _metrics(stderr: str) -> list[dict]:
    return [
        json.loads(line.split("METRIC: ", 1)[1])
        for line in stderr.splitlines()
        if "METRIC: " in line
    ]


def test_child_syncs_log_once_and_record_counts_still_add_up(kaiten_sandbox, tmp_path) -> None:
    process = run_cli([], config=base_config(kaiten_sandbox), tmp_path=tmp_path)
    assert process.returncode == 0, process.stderr[-2000:]
    result = stdout_result(process)
    cards = len(result.records["cards"])
    assert cards == len(kaiten_sandbox.truth()["cards"])

    for stream in (*CHILDREN, "columns", "lanes"):
        assert process.stderr.count(f"Beginning sync of '{stream}'") == 1, stream
    points = _metrics(process.stderr)
    per_sync = {"sync_duration", "http_request_count"}
    assert [p for p in points if p["tags"]["stream"] in CHILDREN and p["metric"] in per_sync] == []
    # What the sync service shows per stream: the sum of the tap's record_count points.
    counted = Counter()
    for point in points:
        if point["metric"] == "record_count":
            counted[point["tags"]["stream"]] += point["value"]
    for stream in ("cards", *CHILDREN):
        assert counted[stream] == len(result.records[stream]), stream
    # Requests are still timed one by one; the rest is a few lines per card at most.
    timed = sum(1 for p in points if p["metric"] == "http_request_duration")
    assert timed == kaiten_sandbox.stats()["requests_total"]
    assert len(process.stderr.splitlines()) < 4 * cards
