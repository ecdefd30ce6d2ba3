"""Singer messages reach stdout in blocks, in order, and nothing read is held back.

The tap's writer (tap_kaiten/output.py) writes records in blocks of FLUSH_BYTES rather
than one write per line; every other message goes out at once with the records before it.
"""

from __future__ import annotations

import io
import json
import sys

from kaiten_tap_helpers import CHILDREN, base_config, run_cli, stdout_result, sync

from tap_kaiten import output
from tap_kaiten.tap import TapKaiten


class _Writes(io.RawIOBase):
    """A raw stdout that keeps each write it is given."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        return len(data)


def _same_message(message: dict) -> tuple:
    # State holds the run's clock (signposts) and records the emission time: compare what
    # was read, and where each other message falls between the records.
    message = json.loads(json.dumps(message, default=str))
    return (message["type"], message.get("stream"), message.get("record"))


def test_lines_go_out_in_blocks_or_with_a_state_and_schemas_are_not_repeated(
    kaiten_sandbox, monkeypatch
) -> None:
    config = base_config(kaiten_sandbox)
    raw = _Writes()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BufferedWriter(raw)))
    TapKaiten(config=dict(config)).sync_all()

    lines = [json.loads(line) for chunk in raw.chunks for line in chunk.splitlines()]
    # The messages the SDK hands its writer, in the same order, less repeated schemas
    # (it re-sends the child streams' schemas for every card).
    expected, last_schema = [], {}
    for message in sync(config).messages:
        if message["type"] == "SCHEMA":
            if last_schema.get(message["stream"]) == message["schema"]:
                continue
            last_schema[message["stream"]] = message["schema"]
        expected.append(_same_message(message))
    assert [_same_message(line) for line in lines] == expected
    schemas = [line["stream"] for line in lines if line["type"] == "SCHEMA"]
    assert len(schemas) == len(set(schemas)), "a stream's unchanged schema was sent again"
    for chunk in raw.chunks:
        assert chunk.endswith(b"\n"), "a write ended mid-line"
        last = json.loads(chunk.splitlines()[-1])
        # A write is a full block, or ends at the STATE that sent it at once.
        assert len(chunk) >= output.FLUSH_BYTES or last["type"] == "STATE", (
            f"{len(chunk)} bytes written before a block was full, ending with a {last['type']}"
        )


def test_a_failed_run_still_writes_every_record_read_before_the_failure(
    kaiten_sandbox, tmp_path
) -> None:
    # The tap reads live cards first, oldest change first; a fatal answer on the 30th
    # card's history stops the run there.
    live = [card for card in kaiten_sandbox.truth()["cards"] if card["condition"] == 1]
    cards = sorted(live, key=lambda c: (c["updated"], c["id"]))
    failing = cards[29]["id"]
    kaiten_sandbox.configure(
        inject=[{"path": f"/cards/{failing}/location-history", "status": 401, "count": 100}]
    )
    process = run_cli([], config=base_config(kaiten_sandbox), tmp_path=tmp_path)

    assert process.returncode == 1
    assert "Kaiten API Error [401]" in process.stderr.strip().splitlines()[-1]
    result = stdout_result(process)
    # Every card before the failing one and all its history are on stdout: the last,
    # partial block too.
    assert result.ids("cards")[:29] == [card["id"] for card in cards[:29]]
    assert {r["card_id"] for r in result.records[CHILDREN[0]]} == {c["id"] for c in cards[:29]}
