"""Fewer log lines per card: the SDK logs each child sync like a whole stream's sync.

A child stream (a card's history and comments, a board's columns and lanes) is synced once
per parent record, and for each the SDK logs "Beginning sync of ...", a `sync_duration`
timer, an `http_request_count` counter and a `record_count` counter: ~9 lines per card,
800,000 at 100,000 cards, each one parsed and written again by Meltano (measured on an
all-streams sync of 1,713 cards: Meltano 3.4 -> 2.1 CPU-s and the tap 6.4 -> 5.4 with the
tap's INFO lines off). Kept: the first "Beginning sync" of each child stream, every
`http_request_duration` timer (one per request), and each `record_count` that counted
something (the sync service adds them up per stream); the tap's own progress line reports
records and requests per stream every 10 s.
"""

from __future__ import annotations

import logging
import typing as t

from singer_sdk.metrics import Metric, MetricExclusionFilter, Point, Tag, get_metrics_logger

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.streams import Stream

_PER_SYNC = frozenset({Metric.SYNC_DURATION, Metric.HTTP_REQUEST_COUNT})


class ChildSyncMetricsFilter(MetricExclusionFilter):
    """Drops the per-parent timers and counters of child streams (see the module)."""

    def __init__(self, child_streams: Iterable[str]) -> None:
        super().__init__()
        self.child_streams = frozenset(child_streams)

    def _exclude_point(self, point: Point) -> bool:
        if point.tags.get(Tag.STREAM) not in self.child_streams:
            return super()._exclude_point(point)
        if point.metric in _PER_SYNC:
            return True
        return point.metric is Metric.RECORD_COUNT and point.value == 0


class FirstSyncStartOnly(logging.Filter):
    """Lets a child stream's "Beginning sync of ..." through once, not once per parent."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Beginning sync of"):
            return True
        if self.seen:
            return False
        self.seen = True
        return True


def quiet_child_syncs(streams: Iterable[Stream]) -> None:
    """Install the filters above for these streams (again: replaces earlier ones)."""
    children = [stream for stream in streams if stream.parent_stream_type is not None]
    metrics_logger = get_metrics_logger()
    for old in [f for f in metrics_logger.filters if isinstance(f, ChildSyncMetricsFilter)]:
        metrics_logger.removeFilter(old)
    metrics_logger.addFilter(ChildSyncMetricsFilter(stream.name for stream in children))
    for stream in children:
        for old in [f for f in stream.logger.filters if isinstance(f, FirstSyncStartOnly)]:
            stream.logger.removeFilter(old)
        stream.logger.addFilter(FirstSyncStartOnly())
