"""Runs the pipeline: one run at a time, webhook hints coalesced into debounced runs.

Everything here lives on the event loop of the ASGI server, so "check that no
run is going, then mark one as going" has no await in between and cannot race.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import signal
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from kaiten_service.history import RunStore
from kaiten_service.settings import Settings
from kaiten_state.lock import sync_lock_held

log = logging.getLogger(__name__)

# Lines kept from a run's output for the status page when the run fails.
OUTPUT_TAIL_LINES = 20
# A line longer than this is cut before parsing: metric lines are short, and a
# runaway line must not grow the buffer without bound.
MAX_LINE_BYTES = 256 * 1024
# How long a run gets to stop on SIGTERM (service shutdown) before SIGKILL.
TERMINATE_GRACE_SECONDS = 10.0
# While a run started elsewhere (cron, `make sync`) holds the pipeline lock,
# pending webhook hints wait this long before the next try.
LOCKED_RETRY_SECONDS = 5.0

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_LOADER_LINE = re.compile(r"\]\s+target-")
_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY)", re.IGNORECASE)


class RunKind(StrEnum):
    INCREMENTAL = "incremental"
    FULL = "full"


class RunAlreadyGoingError(RuntimeError):
    """A run is going; runs never overlap."""

    def __init__(self, run: Run) -> None:
        super().__init__(f"run {run.id} ({run.kind}) is already going")
        self.run = run


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else None


@dataclass
class Run:
    """One execution of the sync command, as shown by the status endpoint."""

    id: str
    kind: RunKind
    trigger: str
    started_at: datetime
    events: int
    ended_at: datetime | None = None
    outcome: str = "running"
    exit_code: int | None = None
    records: Counter[str] = field(default_factory=Counter)
    output_tail: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_TAIL_LINES))
    error: str | None = None
    log_file: Path | None = None

    def to_row(self) -> dict[str, Any]:
        """The columns of kaiten.sync_runs."""
        return {
            "id": self.id,
            "kind": str(self.kind),
            "trigger": self.trigger,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "webhook_events": self.events,
            "records": self.records,
            "error": self.error,
            "log_file": self.log_file.name if self.log_file else None,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any], log_dir: Path) -> Run:
        return cls(
            id=row["run_id"],
            kind=RunKind(row["kind"]),
            trigger=row["trigger"],
            started_at=row["started_at"],
            events=row["webhook_events"],
            ended_at=row["ended_at"],
            outcome=row["outcome"],
            exit_code=row["exit_code"],
            records=Counter(row["records"] or {}),
            error=row["error"],
            log_file=log_dir / row["log_file"] if row["log_file"] else None,
        )

    def to_json(self) -> dict[str, Any]:
        end = self.ended_at or _now()
        return {
            "id": self.id,
            "kind": str(self.kind),
            "trigger": self.trigger,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "duration_seconds": round((end - self.started_at).total_seconds(), 3),
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "webhook_events": self.events,
            "records": dict(sorted(self.records.items())),
            "records_total": sum(self.records.values()),
            "error": self.error,
            # The name only: where the server keeps it is not the browser's business.
            "log_file": self.log_file.name if self.log_file else None,
        }


def secret_values(env: dict[str, str]) -> list[str]:
    """Values that must never appear in what the service shows: tokens, secrets, DB passwords."""
    values: set[str] = set()
    for name, value in env.items():
        if not value:
            continue
        if _SECRET_NAME.search(name) and len(value) >= 6:
            values.add(value)
        if "://" in value:
            with contextlib.suppress(ValueError):
                password = urlsplit(value).password
                if password:
                    values.add(password)
    # Longest first so a secret that contains another is masked whole.
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets_to_hide: Iterable[str]) -> str:
    for value in secrets_to_hide:
        text = text.replace(value, "***")
    return text


def _record_count(point: Any) -> tuple[str, int] | None:
    if not isinstance(point, dict) or point.get("metric") != "record_count":
        return None
    tags = point.get("tags") or {}
    stream, value = tags.get("stream"), point.get("value")
    if not isinstance(stream, str) or not isinstance(value, int) or isinstance(value, bool):
        return None
    return stream, value


def _display(entry: dict[str, Any]) -> str:
    """One readable line from a Meltano JSON log entry: who said what."""
    who = entry.get("name") or entry.get("string_id") or "meltano"
    text = _ANSI.sub("", str(entry.get("event", ""))).strip()
    if err := entry.get("err"):
        text = f"{text}: {err}"
    if isinstance(exc := entry.get("plugin_exception"), dict):
        text = f"{text}: {exc.get('type', '')} {exc.get('message', '')}".rstrip()
    return f"{who}: {text}"


def parse_line(line: str) -> tuple[str, tuple[str, int] | None]:
    """(readable text, (stream, records) if the line is the tap's `record_count` metric).

    The default commands run `meltano --log-format=json`: one JSON object per
    line, the SDK metric whole in `metric_info` (the console format drops the
    stream name once the tap logs structured). Other commands may print the
    SDK's plain `METRIC: {json}` text, so that is read too. SDK targets emit
    the same metric for what they load; the loader's lines are skipped so
    the count is of records read from Kaiten.
    """
    line = _ANSI.sub("", line)
    if line.startswith("{"):
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            from_loader = entry.get("consumer") is True or str(entry.get("name", "")).startswith(
                "target-"
            )
            counted = None if from_loader else _record_count(entry.get("metric_info"))
            return _display(entry), counted
    marker = line.find("METRIC:")
    if marker < 0 or _LOADER_LINE.search(line[:marker]) or "consumer=True" in line:
        return line, None
    start = line.find("{", marker)
    if start < 0:
        return line, None
    try:
        point, _ = json.JSONDecoder().raw_decode(line, start)
    except ValueError:
        return line, None
    return line, _record_count(point)


class SyncRunner:
    """Owns the only run, the pending webhook hints, and the run history."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.current: Run | None = None
        self.history: deque[Run] = deque(maxlen=settings.history_size)
        self.events_received = 0
        self.events_by_name: Counter[str] = Counter()
        self.recent_events: deque[dict[str, Any]] = deque(maxlen=20)
        self._pending_events = 0
        self._pending_since: float | None = None
        self._last_event: float | None = None
        self._retry_at: float | None = None
        self._wake = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._log: TextIO | None = None
        self._hide = secret_values(settings.child_env)
        self._stopping = False
        self.store = RunStore(settings.database_url)
        # Strong references: the loop keeps only weak ones to running tasks.
        self._saves: set[asyncio.Task[None]] = set()

    # --- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        rows = await self.store.load(self.settings.history_size)
        self.history.extend(Run.from_row(row, self.settings.log_dir) for row in rows)
        self._scheduler = asyncio.create_task(self._schedule_loop(), name="kaiten-sync-scheduler")

    async def stop(self) -> None:
        self._stopping = True
        if self._scheduler:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
        if self._process and self._process.returncode is None:
            log.warning(
                "service stopping: terminating run %s", self.current.id if self.current else "?"
            )
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self._process.wait(), TERMINATE_GRACE_SECONDS)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)
        if self._run_task:
            with contextlib.suppress(asyncio.CancelledError):
                await self._run_task
        if self._saves:
            await asyncio.wait(self._saves, timeout=TERMINATE_GRACE_SECONDS)

    def _save(self, run: Run) -> None:
        # In the background: a slow database must not hold up a run or a 409.
        task = asyncio.create_task(self.store.save(run.to_row()), name=f"save-run-{run.id}")
        self._saves.add(task)
        task.add_done_callback(self._saves.discard)

    # --- webhooks ----------------------------------------------------------
    def record_event(self, event: str, card_id: int | None) -> float:
        """Remember a webhook hint; returns seconds until the run it triggers, at the earliest."""
        now = time.monotonic()
        self.events_received += 1
        self.events_by_name[event] += 1
        self.recent_events.appendleft(
            {"event": event, "card_id": card_id, "received_at": _iso(_now())}
        )
        self._pending_events += 1
        if self._pending_since is None:
            self._pending_since = now
        self._last_event = now
        self._wake.set()
        return max(0.0, self._due() - now)

    def _due(self) -> float:
        assert self._pending_since is not None
        assert self._last_event is not None
        due = min(
            self._last_event + self.settings.debounce_seconds,
            self._pending_since + self.settings.max_delay_seconds,
        )
        return max(due, self._retry_at or 0.0)

    def pending(self) -> dict[str, Any] | None:
        if self._pending_since is None:
            return None
        due_in = max(0.0, self._due() - time.monotonic())
        return {
            "events": self._pending_events,
            # While a run is going, pending events wait for it to finish first.
            "run_due_in_seconds": round(due_in, 3),
            "waiting_for_current_run": self.current is not None,
            "waiting_for_pipeline_lock": self._retry_at is not None,
        }

    async def _schedule_loop(self) -> None:
        while True:
            self._wake.clear()
            if self._pending_since is None or self.current is not None:
                await self._wake.wait()
                continue
            delay = self._due() - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            if await self.locked_elsewhere():
                # Keep the hints: a run that started before they arrived may
                # not have seen their changes.
                self._retry_at = time.monotonic() + LOCKED_RETRY_SECONDS
                continue
            if self._pending_since is None:
                continue  # an API run started during the lock check took the hints
            try:
                self.start_run(RunKind.INCREMENTAL, trigger="webhook")
            except RunAlreadyGoingError:
                continue  # an API call started one while we checked the lock: it took the hints
            except Exception:
                # The scheduler must outlive one bad start (e.g. command missing);
                # the failure is already in the run history.
                log.exception("could not start a webhook-triggered run")

    # --- runs --------------------------------------------------------------
    async def locked_elsewhere(self) -> bool:
        """Whether a pipeline run outside this service holds the lock (`meltano run` from cron)."""
        if not self.settings.database_url or self.current is not None:
            return False
        try:
            return await asyncio.to_thread(sync_lock_held, self.settings.database_url)
        except Exception as exc:
            # Database unreachable: the run itself will fail and say why.
            log.warning("could not check the pipeline lock: %s", type(exc).__name__)
            return False

    def start_run(self, kind: RunKind, trigger: str) -> Run:
        if self.current is not None:
            raise RunAlreadyGoingError(self.current)
        # Any run reads everything changed since the bookmark (a full run reads
        # everything), so it answers every hint received up to its start.
        run = Run(
            id=f"{_now():%Y%m%dT%H%M%S}-{secrets.token_hex(3)}",
            kind=kind,
            trigger=trigger,
            started_at=_now(),
            events=self._pending_events,
        )
        self._pending_events = 0
        self._pending_since = None
        self._last_event = None
        self._retry_at = None
        self.current = run
        self._run_task = asyncio.create_task(self._execute(run), name=f"kaiten-sync-{run.id}")
        self._save(run)
        log.info(
            "run %s started: %s sync, trigger %s, %d webhook events",
            run.id,
            kind,
            trigger,
            run.events,
        )
        return run

    async def _execute(self, run: Run) -> None:
        command = (
            self.settings.full_sync_command
            if run.kind is RunKind.FULL
            else self.settings.sync_command
        )
        self._log = self._open_log(run)
        try:
            self._process = await asyncio.create_subprocess_exec(
                *command,
                cwd=self.settings.project_root,
                env=self.settings.child_env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                # Own process group: on shutdown the whole meltano tree (tap,
                # target, dbt) is signalled, not only its parent.
                start_new_session=True,
            )
            assert self._process.stdout is not None
            await self._consume_output(run, self._process.stdout)
            run.exit_code = await self._process.wait()
            run.outcome = "success" if run.exit_code == 0 else "failed"
            if run.exit_code != 0:
                run.error = self._failure_summary(run)
        except OSError as exc:
            run.outcome = "failed"
            run.error = redact(f"cannot start {command[0]!r}: {exc.strerror or exc}", self._hide)
        except asyncio.CancelledError:
            run.outcome = "cancelled"
            raise
        except Exception as exc:  # a bug here must not leave `current` set forever
            log.exception("run %s crashed", run.id)
            run.outcome = "failed"
            run.error = redact(f"service error while running the sync: {exc}", self._hide)
        finally:
            if self._stopping and run.outcome != "success":
                # Ended by our own shutdown: not a pipeline failure.
                run.outcome = "cancelled"
            run.ended_at = _now()
            if self._log:
                self._log.write(f"# {run.outcome}, exit code {run.exit_code}, {run.error or ''}\n")
                self._log.close()
                self._log = None
            self._process = None
            self.current = None
            self.history.appendleft(run)
            self._save(run)
            self._wake.set()
            log.info(
                "run %s %s in %.1fs: %d records%s",
                run.id,
                run.outcome,
                (run.ended_at - run.started_at).total_seconds(),
                sum(run.records.values()),
                f" ({run.error})" if run.error else "",
            )

    async def _consume_output(self, run: Run, stream: asyncio.StreamReader) -> None:
        buffer = b""
        while chunk := await stream.read(65536):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            if len(buffer) > MAX_LINE_BYTES:
                lines.append(buffer[:MAX_LINE_BYTES])
                buffer = b""
            for raw in lines:
                self._handle_line(run, raw.decode("utf-8", "replace").rstrip("\r"))
        if buffer:
            self._handle_line(run, buffer.decode("utf-8", "replace"))

    def _handle_line(self, run: Run, line: str) -> None:
        if not line.strip():
            return
        text, counted = parse_line(line)
        if counted:
            stream, value = counted
            run.records[stream] += value
            return  # hundreds of metric lines would push the useful tail out
        run.output_tail.append(text[:500])
        safe = redact(text, self._hide)
        if self._log:
            self._log.write(safe + "\n")
        log.debug("run %s | %s", run.id, safe)

    def _open_log(self, run: Run) -> TextIO | None:
        """This run's log file; older ones beyond the history size are removed."""
        directory = self.settings.log_dir
        try:
            directory.mkdir(parents=True, exist_ok=True)
            old = sorted(directory.glob("*.log"))[: -self.settings.history_size + 1 or None]
            for path in old:
                path.unlink(missing_ok=True)
            run.log_file = directory / f"{run.id}-{run.kind}.log"
            handle = run.log_file.open("w", encoding="utf-8", buffering=1)
        except OSError as exc:
            # No log file is no reason to skip the sync.
            log.warning("no log file for run %s: %s", run.id, exc)
            run.log_file = None
            return None
        handle.write(f"# run {run.id}: {run.kind} sync, trigger {run.trigger}\n")
        return handle

    def _failure_summary(self, run: Run) -> str:
        # The last lines that look like an error say most; fall back to the tail.
        lines = [
            line
            for line in run.output_tail
            if re.search(r"error|fail|refus|lock|denied", line, re.I)
        ]
        chosen = (lines or list(run.output_tail))[-4:]
        summary = " | ".join(line.strip() for line in chosen) or "no output"
        return redact(f"exit code {run.exit_code}: {summary}", self._hide)[:1000]

    def status(self) -> dict[str, Any]:
        return {
            "current_run": self.current.to_json() if self.current else None,
            "pending": self.pending(),
            "runs": [run.to_json() for run in self.history],
            "webhooks": {
                "received": self.events_received,
                "by_event": dict(sorted(self.events_by_name.items())),
                "recent": list(self.recent_events),
            },
        }
