"""Running tap-kaiten against a sandbox and reading what it emitted."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import typing as t
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from singer_sdk.singerlib.encoding.base import GenericSingerWriter

from tap_kaiten.tap import TapKaiten

if t.TYPE_CHECKING:
    from kaiten_sandbox import Sandbox

TAP_BIN = Path(sys.executable).with_name("tap-kaiten")
CHILDREN = ("card_location_history", "card_comments")


class CollectingWriter(GenericSingerWriter):
    """Keeps Singer messages in memory instead of writing them to stdout."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict] = []

    def serialize_message(self, message: t.Any) -> str:
        return ""

    def write_message(self, message: t.Any) -> None:
        # Deep copy: the SDK keeps mutating its state dict after writing it.
        self.messages.append(copy.deepcopy(message.to_dict()))


@dataclass
class SyncResult:
    messages: list[dict]
    records: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    states: list[dict] = field(default_factory=list)

    @property
    def final_state(self) -> dict:
        return self.states[-1] if self.states else {}

    def ids(self, stream: str) -> list:
        return [r["id"] for r in self.records[stream]]


def result_of(messages: list[dict]) -> SyncResult:
    result = SyncResult(messages)
    for message in messages:
        if message["type"] == "RECORD":
            result.records[message["stream"]].append(message["record"])
        elif message["type"] == "STATE":
            result.states.append(message["value"])
    return result


def base_config(sandbox: Sandbox, **overrides: t.Any) -> dict:
    return {
        "api_url": sandbox.base_url,
        "api_token": sandbox.token,
        "requests_per_second": 1000,
        **overrides,
    }


def catalog_selecting(config: dict, streams: t.Iterable[str] | None) -> dict | None:
    if streams is None:
        return None
    wanted = set(streams)
    catalog = TapKaiten(config=dict(config), validate_config=False).catalog_dict
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] in wanted
    return catalog


def sync(
    config: dict,
    *,
    state: dict | None = None,
    streams: t.Iterable[str] | None = None,
) -> SyncResult:
    """Run the tap in-process; `streams` limits the selection."""
    writer = CollectingWriter()
    tap = TapKaiten(
        config=dict(config),
        state=copy.deepcopy(state) if state else None,
        catalog=catalog_selecting(config, streams),
        message_writer=writer,
    )
    tap.sync_all()
    return result_of(writer.messages)


def run_cli(
    args: list[str],
    *,
    config: dict | None = None,
    tmp_path: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the installed `tap-kaiten` command, as Meltano would."""
    full_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KAITEN_", "TAP_KAITEN_"))
    }
    full_env.update(env or {})
    command = [str(TAP_BIN), *args]
    if config is not None:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        command += ["--config", str(path)]
    return subprocess.run(
        command, capture_output=True, text=True, env=full_env, timeout=timeout, check=False
    )


def stdout_result(process: subprocess.CompletedProcess[str]) -> SyncResult:
    return result_of([json.loads(line) for line in process.stdout.splitlines() if line])


def card_key(card: dict) -> tuple[str, int]:
    return (card["updated"], card["id"])
