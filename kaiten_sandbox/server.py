"""HTTP side of the sandbox: routing, auth, rate limiting, fault injection, control API.

Stdlib ``ThreadingHTTPServer`` with HTTP/1.1 keep-alive and orjson bodies: no extra
dependency, and fast enough that the server is never the pipeline's bottleneck.
"""

from __future__ import annotations

import contextlib
import email.utils
import math
import queue
import random
import re
import socket
import sys
import threading
import time
import traceback
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from kaiten_sandbox.data import ORDER_FIELDS, BadRequest, Card, Workspace, parse_ts_param

HTML_429 = (
    b"<html><head><title>429 Too Many Requests</title></head><body>"
    b"<h1>Too many requests, please try again later.</h1></body></html>"
)
HTML_5XX = {
    502: b"<html><head><title>502 Bad Gateway</title></head><body><center>"
    b"<h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
    503: b"<html><head><title>503 Service Temporarily Unavailable</title></head><body>"
    b"<center><h1>503 Service Temporarily Unavailable</h1></center></body></html>",
}
MAX_BODY = 1_000_000  # control bodies are tiny JSON objects
MUTATE_KEYS = ("create", "update", "move", "archive", "unarchive", "delete", "touch_same_ms")


@dataclass
class SandboxConfig:
    """Everything ``POST /_sandbox/config`` can change while the server runs."""

    rate_limit: int = 0  # requests per token per sliding second; 0 = off
    fault_rate: float = 0.0  # share of API requests answered with one of fault_statuses
    fault_statuses: list[int] = field(default_factory=lambda: [500, 502, 503])
    latency_ms: int = 0  # added to every API request
    drop_rate: float = 0.0  # share of API requests whose connection is closed unanswered
    empty_body_rate: float = 0.0  # share of list answers sent as 200 with an empty body
    mutate_while_paging: int = 0  # cards updated before each /cards page with offset > 0
    updated_after: str = "inclusive"  # "inclusive" (>=) or "strict" (>)
    default_order: str = "created:desc"  # /cards order when the client pins none
    extra_tokens: list[str] = field(default_factory=list)  # more valid tokens (per-token tests)
    # Kaiten-shaped outgoing webhooks (card:add / card:update) POSTed here after each mutate.
    webhook_url: str | None = None
    # Deterministic faults: each entry answers the next `count` matching API requests.
    # Keys: count, status, headers, body, content_type, drop, empty_body, latency_ms,
    # path (substring of the request path).
    inject: list[dict[str, Any]] = field(default_factory=list)


_CONFIG_TYPES: dict[str, Callable[[Any], bool]] = {
    "rate_limit": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "fault_rate": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1,
    "fault_statuses": lambda v: isinstance(v, list)
    and bool(v)
    and all(isinstance(s, int) and 400 <= s <= 599 for s in v),
    "latency_ms": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "drop_rate": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1,
    "empty_body_rate": lambda v: isinstance(v, int | float)
    and not isinstance(v, bool)
    and 0 <= v <= 1,
    "mutate_while_paging": lambda v: isinstance(v, int) and v >= 0,
    "updated_after": lambda v: v in ("inclusive", "strict"),
    "default_order": lambda v: isinstance(v, str) and bool(v),
    "extra_tokens": lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v),
    "inject": lambda v: isinstance(v, list) and all(_valid_inject(e) for e in v),
    "webhook_url": lambda v: v is None
    or (isinstance(v, str) and v.startswith(("http://", "https://")) and len(v) > 8),
}
_INJECT_KEYS = {
    "count", "status", "headers", "body", "content_type",
    "drop", "empty_body", "latency_ms", "path", "retry_after_date_in",
}  # fmt: skip


def _valid_inject(entry: Any) -> bool:
    if not isinstance(entry, dict) or not set(entry) <= _INJECT_KEYS:
        return False
    count = entry.get("count", 1)
    status = entry.get("status")
    headers = entry.get("headers", {})
    return (
        isinstance(count, int)
        and count >= 1
        and (status is None or (isinstance(status, int) and 100 <= status <= 599))
        and isinstance(headers, dict)
        and all(isinstance(k, str) and isinstance(v, str | int) for k, v in headers.items())
        and isinstance(entry.get("body", ""), str)
        and isinstance(entry.get("content_type", ""), str)
        and isinstance(entry.get("path", ""), str)
        and isinstance(entry.get("latency_ms", 0), int)
        and isinstance(entry.get("retry_after_date_in", 0), int)
    )


# Requests kept in the log of ``GET /_sandbox/requests``: a long benchmark must not grow it
# without bound, and tests look at one run of a few thousand requests.
REQUEST_LOG_SIZE = 50_000


class Stats:
    """Counters a test or benchmark reads back through ``GET /_sandbox/stats``, and the
    request log of ``GET /_sandbox/requests``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            self.requests_total = 0
            self.requests_by_path: dict[str, int] = {}
            self.requests_by_token: dict[str, int] = {}
            self.responses_by_status: dict[str, int] = {}
            self.rate_limited = 0
            self.max_in_1s = 0
            self.faults: dict[str, int] = {}
            self.webhooks_sent = 0
            self.webhooks_failed = 0
            self._window: deque[float] = deque()
            self.log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)

    def record(self, path: str, token: str) -> dict[str, Any]:
        """Count a request; returns its log entry, which `answered` completes."""
        now = time.monotonic()
        # Wall-clock times: a test compares them with Retry-After HTTP dates.
        entry: dict[str, Any] = {
            "at": time.time(),
            "path": path,
            "status": None,
            "answered_at": None,
            "retry_after": None,
        }
        with self.lock:
            self.log.append(entry)
            self.requests_total += 1
            self.requests_by_path[path] = self.requests_by_path.get(path, 0) + 1
            self.requests_by_token[token] = self.requests_by_token.get(token, 0) + 1
            window = self._window
            window.append(now)
            while window and window[0] <= now - 1.0:
                window.popleft()
            self.max_in_1s = max(self.max_in_1s, len(window))
        return entry

    @staticmethod
    def answered(entry: dict[str, Any], code: int, retry_after: str | None) -> None:
        """The answer to a logged request left (a dropped request keeps status None)."""
        entry.update(status=code, answered_at=time.time(), retry_after=retry_after)

    def requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(entry) for entry in self.log]

    def status(self, code: int) -> None:
        with self.lock:
            key = str(code)
            self.responses_by_status[key] = self.responses_by_status.get(key, 0) + 1
            if code == 429:
                self.rate_limited += 1

    def webhook(self, *, ok: bool) -> None:
        with self.lock:
            if ok:
                self.webhooks_sent += 1
            else:
                self.webhooks_failed += 1

    def fault(self, kind: str) -> None:
        with self.lock:
            self.faults[kind] = self.faults.get(kind, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests_total": self.requests_total,
                "requests_by_path": dict(self.requests_by_path),
                "requests_by_token": dict(self.requests_by_token),
                "responses_by_status": dict(self.responses_by_status),
                "rate_limited": self.rate_limited,
                "max_requests_in_any_1s": self.max_in_1s,
                "faults_injected": dict(self.faults),
                "webhooks_sent": self.webhooks_sent,
                "webhooks_failed": self.webhooks_failed,
            }


class RateLimiter:
    """Sliding one-second window per token; only admitted requests count."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.windows: dict[str, deque[float]] = {}

    def check(self, token: str, limit: int) -> tuple[bool, dict[str, str]]:
        now = time.time()
        with self.lock:
            if len(self.windows) > 1000:
                # Clients inventing tokens must not grow this forever: drop idle windows.
                idle = [t for t, w in self.windows.items() if not w or w[-1] <= now - 1.0]
                for stale in idle:
                    del self.windows[stale]
            window = self.windows.setdefault(token, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            admitted = len(window) < limit
            if admitted:
                window.append(now)
            reset = window[0] + 1.0 if window else now + 1.0
            headers = {
                "x-ratelimit-limit": str(limit),
                "x-ratelimit-remaining": str(max(0, limit - len(window))),
                "x-ratelimit-reset": str(math.ceil(reset)),
            }
        return admitted, headers


class Response:
    __slots__ = ("body", "content_type", "headers", "list_endpoint", "status")

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/json; charset=utf-8",
        headers: dict[str, str] | None = None,
        *,
        list_endpoint: bool = False,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}
        self.list_endpoint = list_endpoint


def json_response(data: Any, status: int = 200, *, list_endpoint: bool = False) -> Response:
    return Response(status, orjson.dumps(data), list_endpoint=list_endpoint)


def message(status: int, text: str) -> Response:
    return json_response({"message": text}, status)


class NotFoundError(Exception):
    """Entity id well-formed but unknown: 404 with no body, as Kaiten often answers."""


# ---------------------------------------------------------------------- query parsing
def _int_param(name: str, raw: str, *, minimum: int = 0) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise BadRequest(f"{name} must be {minimum} or more, got {value}")
    return value


def _id_list(name: str, raw: str) -> frozenset[int]:
    parts = [p for p in raw.split(",") if p.strip()]
    if not parts:
        raise BadRequest(f"{name} must be a comma-separated list of integers, got {raw!r}")
    return frozenset(_int_param(name, p) for p in parts)


def _paging(q: dict[str, str], cap: int) -> tuple[int, int]:
    limit = _int_param("limit", q["limit"], minimum=1) if "limit" in q else 100
    offset = _int_param("offset", q["offset"]) if "offset" in q else 0
    # Kaiten clamps an oversized limit silently instead of rejecting it.
    return min(limit, cap), offset


def _path_id(kind: str, raw: str) -> int:
    if not raw.isdigit() or (raw.startswith("0") and raw != "0"):
        raise BadRequest(f"{kind} id must be a positive integer, got {raw!r}")
    return int(raw)


def _bool_param(raw: str | None) -> bool:
    return raw is not None and raw.strip().lower() in ("true", "1")


class WebhookSender:
    """Posts webhook bodies one by one from a background thread, like Kaiten: no
    retries, a short timeout, failures only counted (never raised into a mutate)."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.queue: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def send_all(self, url: str, events: list[dict[str, Any]]) -> None:
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._run, name="kaiten-sandbox-webhooks", daemon=True
                )
                self.thread.start()
        for event in events:
            self.queue.put((url, orjson.dumps(event)))

    def flush(self, timeout: float) -> bool:
        """Wait until every queued webhook was attempted; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def _run(self) -> None:
        while True:
            url, body = self.queue.get()
            ok = False
            try:
                request = urllib.request.Request(  # noqa: S310 - http(s) checked in config
                    url, data=body, method="POST", headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                    ok = 200 <= response.status < 300
            except (OSError, ValueError):  # HTTPError, URLError, timeouts, bad URLs
                ok = False
            finally:
                # Count before task_done(), so flush() returning means the stats are final.
                self.stats.webhook(ok=ok)
                self.queue.task_done()


_INDEX_ORDERS = ([("updated", False), ("id", False)], [("updated", True), ("id", True)])
_POPULATION_TEST: dict[str, Callable[[Card], bool]] = {
    "all": lambda c: True,
    "live": lambda c: not c.archived_flag,
    "archived": lambda c: c.archived_flag,
    "none": lambda c: False,
}


@dataclass
class CardQuery:
    """A validated /cards request: which cards (population, updated bounds, other
    predicates) in which order; `key` identifies it for the result cache."""

    key: tuple[Any, ...]
    population: str  # "live", "archived", "all" or "none"
    updated_after: float | None
    updated_before: float | None
    strict: bool
    other_preds: list[Callable[[Card], bool]]
    order: list[tuple[str, bool]]
    cards: dict[int, Card]

    def build(self) -> list[Card]:
        """Every matching card, fully sorted: the general (slow) path."""
        preds = [_POPULATION_TEST[self.population], *self.other_preds]
        after, before = self.updated_after, self.updated_before
        if after is not None:
            preds.append(
                (lambda c: c.updated > after) if self.strict else (lambda c: c.updated >= after)
            )
        if before is not None:
            preds.append(lambda c: c.updated < before)
        rows = [c for c in self.cards.values() if all(p(c) for p in preds)]
        for name, descending in reversed(self.order):
            rows.sort(key=ORDER_FIELDS[name], reverse=descending)
        return rows


class App:
    """Server-wide state shared by every request thread."""

    def __init__(self, workspace: Workspace, config: SandboxConfig) -> None:
        self.ws = workspace
        self.config = config
        self.config_lock = threading.Lock()
        self.stats = Stats()
        self.limiter = RateLimiter()
        self.rng = random.Random(workspace.seed ^ 0x5A5A)  # noqa: S311 - reproducible faults
        self.rng_lock = threading.Lock()
        self.webhooks = WebhookSender(self.stats)

    # ------------------------------------------------------------------ control
    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(changes, dict):
            raise BadRequest("config body must be a JSON object")
        unknown = sorted(set(changes) - set(_CONFIG_TYPES))
        if unknown:
            raise BadRequest(
                f"unknown config key(s) {', '.join(unknown)}; known: {', '.join(_CONFIG_TYPES)}"
            )
        for key, value in changes.items():
            if not _CONFIG_TYPES[key](value):
                hint = ""
                if key == "inject":
                    hint = (
                        "; expected a list of objects with keys "
                        f"{', '.join(sorted(_INJECT_KEYS))} (count >= 1, status 100-599)"
                    )
                raise BadRequest(f"invalid value for {key}: {value!r}{hint}")
        with self.config_lock:
            for key, value in changes.items():
                if key == "inject":
                    value = [dict(e, count=e.get("count", 1)) for e in value]
                elif key == "mutate_while_paging" and value is True:
                    value = 5
                setattr(self.config, key, value)
            return asdict(self.config)

    def mutate(self, body: Any) -> dict[str, list[int]]:
        if not isinstance(body, dict):
            raise BadRequest("mutate body must be a JSON object of counts")
        unknown = sorted(set(body) - {*MUTATE_KEYS, "seed"})
        if unknown:
            raise BadRequest(
                f"unknown mutate key(s) {', '.join(unknown)}; known: {', '.join(MUTATE_KEYS)}"
            )
        counts: dict[str, int] = {}
        for key in MUTATE_KEYS:
            value = body.get(key, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise BadRequest(f"{key} must be a non-negative integer, got {value!r}")
            counts[key] = value
        seed = body.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise BadRequest(f"seed must be an integer, got {seed!r}")
        url = self.config.webhook_url
        if url is None:
            return self.ws.mutate(counts, seed)
        before: dict[int, dict[str, Any]] = {}
        result = self.ws.mutate(counts, seed, before=before)
        # Queued only now: a receiver that re-reads the card at once sees the new state.
        self.webhooks.send_all(url, self._webhook_events(result, before))
        return result

    def _webhook_events(
        self, result: dict[str, list[int]], before: dict[int, dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Kaiten's payloads: card:add with the card, card:update with old + changes.
        Deletions send nothing: Kaiten has no card:remove event."""
        ws = self.ws
        events: list[dict[str, Any]] = []
        with ws.lock:
            author = ws.user_short(ws.current_user_id)
            for cid in result["created"]:
                data = dict(ws.render_card(ws.cards[cid]), author=author)
                events.append({"event": "card:add", "data": data})
            for cid, old in before.items():
                card = ws.cards.get(cid)
                if card is None:
                    continue
                new = ws.render_card(card)
                changes = {k: v for k, v in new.items() if old.get(k) != v}
                data = {"old": old, "changes": changes, "author": author}
                events.append({"event": "card:update", "data": data})
        return events

    def valid_tokens(self) -> set[str]:
        return {self.ws.token, *self.config.extra_tokens}

    def chance(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self.rng_lock:
            return self.rng.random() < rate

    def take_injected(self, path: str) -> dict[str, Any] | None:
        with self.config_lock:
            for entry in self.config.inject:
                if entry.get("path", "") in path:
                    entry["count"] -= 1
                    if entry["count"] <= 0:
                        self.config.inject.remove(entry)
                    return entry
        return None

    # ------------------------------------------------------------------ API routes
    def route(self, method: str, path: str, q: dict[str, str]) -> Response:
        """Answer an authenticated API request; `path` is relative to /api/latest."""
        parts = [p for p in path.split("/") if p]
        for pattern, methods, handler in ROUTES:
            match = pattern.fullmatch("/" + "/".join(parts))
            if match is None:
                continue
            if method not in methods:
                return Response(405, b"", headers={"Allow": ", ".join(sorted(methods)) or "none"})
            return handler(self, q, *match.groups())
        return Response(404, f"Cannot {method} /api/latest{path}".encode(), "text/plain")

    def r_current_user(self, q: dict[str, str]) -> Response:
        return json_response(self.ws.users[self.ws.current_user_id])

    def r_users(self, q: dict[str, str]) -> Response:
        limit, offset = _paging(q, 100)
        inactive = _bool_param(q.get("include_inactive"))
        users = [u for u in self.ws.users.values() if inactive or u["activated"]]
        return json_response(users[offset : offset + limit], list_endpoint=True)

    def r_spaces(self, q: dict[str, str]) -> Response:
        with self.ws.lock:
            data = [self.ws.space_json(s, with_boards=True) for s in self.ws.space_order]
        return json_response(data, list_endpoint=True)

    def _space(self, raw: str) -> int:
        sid = _path_id("space", raw)
        if sid not in self.ws.spaces:
            raise NotFoundError
        return sid

    def _board(self, raw: str) -> int:
        bid = _path_id("board", raw)
        if bid not in self.ws.boards:
            raise NotFoundError
        return bid

    def _card(self, raw: str) -> Card:
        card = self.ws.cards.get(_path_id("card", raw))
        if card is None:
            raise NotFoundError
        return card

    def r_space(self, q: dict[str, str], sid: str) -> Response:
        return json_response(self.ws.space_json(self._space(sid), with_boards=False))

    def r_space_boards(self, q: dict[str, str], sid: str) -> Response:
        space_id = self._space(sid)
        with self.ws.lock:
            data = [
                self.ws.board_json(b, with_cards=False)
                for s, b in self.ws.space_boards
                if s == space_id
            ]
        return json_response(data, list_endpoint=True)

    def r_board(self, q: dict[str, str], bid: str) -> Response:
        board_id = self._board(bid)
        with self.ws.lock:
            return json_response(self.ws.board_json(board_id, with_cards=True))

    def r_board_columns(self, q: dict[str, str], bid: str) -> Response:
        return json_response(self.ws.columns_json(self._board(bid)), list_endpoint=True)

    def r_board_lanes(self, q: dict[str, str], bid: str) -> Response:
        return json_response(self.ws.lanes_json(self._board(bid)), list_endpoint=True)

    def r_subcolumns(self, q: dict[str, str], cid: str) -> Response:
        column_id = _path_id("column", cid)
        if column_id not in self.ws.sub_columns:
            raise NotFoundError
        subs = [dict(self.ws.columns[s]) for s in self.ws.sub_columns[column_id]]
        return json_response(subs, list_endpoint=True)

    def r_card(self, q: dict[str, str], cid: str) -> Response:
        with self.ws.lock:
            return json_response(self.ws.render_card(self._card(cid)))

    def r_card_comments(self, q: dict[str, str], cid: str) -> Response:
        with self.ws.lock:
            return json_response(self.ws.comments(self._card(cid)), list_endpoint=True)

    def r_card_history(self, q: dict[str, str], cid: str) -> Response:
        with self.ws.lock:
            return json_response(self.ws.location_history(self._card(cid)), list_endpoint=True)

    def r_card_members(self, q: dict[str, str], cid: str) -> Response:
        with self.ws.lock:
            return json_response(
                self.ws.render_card(self._card(cid))["members"], list_endpoint=True
            )

    def r_card_tags(self, q: dict[str, str], cid: str) -> Response:
        with self.ws.lock:
            return json_response(self.ws.render_card(self._card(cid))["tags"], list_endpoint=True)

    def r_card_blockers(self, q: dict[str, str], cid: str) -> Response:
        with self.ws.lock:
            return json_response(
                self.ws.render_card(self._card(cid))["blockers"], list_endpoint=True
            )

    def r_card_children(self, q: dict[str, str], cid: str) -> Response:
        with self.ws.lock:
            card = self._card(cid)
            children = [
                self.ws.render_card(self.ws.cards[child], detail=False, description=False)
                for child in card.children_ids
                if child in self.ws.cards
            ]
        return json_response(children, list_endpoint=True)

    def r_card_empty_list(self, q: dict[str, str], cid: str) -> Response:
        with self.ws.lock:
            self._card(cid)  # unknown card: 404 like the other sub-resources
        return json_response([], list_endpoint=True)

    def r_tags(self, q: dict[str, str]) -> Response:
        limit, offset = _paging(q, 100)
        with self.ws.lock:
            tags = self.ws.visible_tags()
            if "space_id" in q:
                sid = _int_param("space_id", q["space_id"])
                boards = {b for s, b in self.ws.space_boards if s == sid}
                used = {
                    t for c in self.ws.cards.values() if c.board_id in boards for t in c.tag_ids
                }
                tags = [t for t in tags if t["id"] in used]
        return json_response(tags[offset : offset + limit], list_endpoint=True)

    def r_card_types(self, q: dict[str, str]) -> Response:
        limit, offset = _paging(q, 100)
        types = list(self.ws.card_types.values())
        return json_response(types[offset : offset + limit], list_endpoint=True)

    def r_custom_properties(self, q: dict[str, str]) -> Response:
        limit, offset = _paging(q, 500)
        include = _bool_param(q.get("include_values"))
        props = [
            self.ws.custom_property_json(p, include_values=include)
            for p in self.ws.custom_properties
        ]
        return json_response(props[offset : offset + limit], list_endpoint=True)

    def r_not_allowed(self, q: dict[str, str], *_: str) -> Response:
        return Response(405, b"")

    def r_cards(self, q: dict[str, str]) -> Response:
        limit, offset = _paging(q, 100)
        query = self._card_query(q)
        wants_description = "description" in q.get("additional_card_fields", "").split(",")
        paging_mutations = self.config.mutate_while_paging
        if offset > 0 and paging_mutations:
            # Someone edits cards between two pages: offset paging must cope with the shift.
            self.mutate({"update": paging_mutations})
            self.stats.fault("mutate_while_paging")
        with self.ws.lock:
            if query.order in _INDEX_ORDERS:
                # Keyset paging sends a new updated_after on every page: answer from the
                # (updated, id) index instead of filtering and sorting every card each time.
                rows = self.ws.index_page(
                    query.population,
                    after=query.updated_after,
                    strict=query.strict,
                    before=query.updated_before,
                    preds=query.other_preds,
                    descending=query.order[0][1],
                    offset=offset,
                    limit=limit,
                )
            else:
                rows = self.ws.query_cards(query.key, query.build)[offset : offset + limit]
            page = [
                self.ws.render_card(c, detail=False, description=wants_description) for c in rows
            ]
        return json_response(page, list_endpoint=True)

    def _card_query(self, q: dict[str, str]) -> CardQuery:
        """Validate /cards filters into a query the workspace can answer."""
        preds: list[Callable[[Card], bool]] = []
        key: list[Any] = []
        include_archived = _bool_param(q.get("archived"))
        key.append(("archived", include_archived))
        condition = None
        if "condition" in q:
            condition = _int_param("condition", q["condition"])
            if condition not in (1, 2):
                raise BadRequest(f"condition must be 1 (on board) or 2 (archived), got {condition}")
            key.append(("condition", condition))
        # Archived cards only show with archived=true; condition then narrows further.
        if not include_archived:
            population = "none" if condition == 2 else "live"
        else:
            population = {None: "all", 1: "live", 2: "archived"}[condition]
        strict = self.config.updated_after == "strict"
        bounds: dict[str, float] = {}
        for name in ("updated_after", "updated_before", "created_after", "created_before"):
            if name in q:
                bounds[name] = parse_ts_param(name, q[name])
                key.append((name, bounds[name], strict))
        if "created_after" in bounds:
            low = bounds["created_after"]
            preds.append((lambda c: c.created > low) if strict else (lambda c: c.created >= low))
        if "created_before" in bounds:
            high = bounds["created_before"]
            preds.append(lambda c: c.created < high)
        for name, attr in (
            ("board_id", "board_id"),
            ("column_id", "column_id"),
            ("lane_id", "lane_id"),
            ("type_id", "type_id"),
            ("owner_id", "owner_id"),
        ):
            if name in q:
                value = _int_param(name, q[name])
                key.append((name, value))
                preds.append(lambda c, g=ORDER_FIELDS[attr], v=value: g(c) == v)
        for name, attr in (
            ("type_ids", "type_id"),
            ("owner_ids", "owner_id"),
            ("states", "state"),
            ("exclude_board_ids", "board_id"),
            ("exclude_lane_ids", "lane_id"),
            ("exclude_column_ids", "column_id"),
            ("exclude_owner_ids", "owner_id"),
            ("exclude_card_ids", "id"),
        ):
            if name in q:
                values = _id_list(name, q[name])
                key.append((name, values))
                getter = ORDER_FIELDS[attr]
                if name.startswith("exclude_"):
                    preds.append(lambda c, g=getter, v=values: g(c) not in v)
                else:
                    preds.append(lambda c, g=getter, v=values: g(c) in v)
        if "space_id" in q:
            sid = _int_param("space_id", q["space_id"])
            boards = frozenset(b for s, b in self.ws.space_boards if s == sid)
            key.append(("space_id", sid))
            preds.append(lambda c: c.board_id in boards)
        if "member_ids" in q:
            members = _id_list("member_ids", q["member_ids"])
            key.append(("member_ids", members))
            preds.append(lambda c: any(u in members for u, _ in c.members))
        if "tag_ids" in q:
            tag_ids = _id_list("tag_ids", q["tag_ids"])
            key.append(("tag_ids", tag_ids))
            preds.append(lambda c: any(t in tag_ids for t in c.tag_ids))
        if "external_id" in q:
            ext = q["external_id"]
            key.append(("external_id", ext))
            preds.append(lambda c: c.external_id == ext)
        if q.get("query"):
            text = q["query"].casefold()
            key.append(("query", text))
            preds.append(lambda c: text in c.title.casefold())
        order = self._order(q)
        key.append(("order", tuple(order)))
        return CardQuery(
            key=tuple(key),
            population=population,
            updated_after=bounds.get("updated_after"),
            updated_before=bounds.get("updated_before"),
            strict=strict,
            other_preds=preds,
            order=order,
            cards=self.ws.cards,
        )

    def _order(self, q: dict[str, str]) -> list[tuple[str, bool]]:
        if "order_by" in q:
            fields = [f.strip() for f in q["order_by"].split(",")]
            directions = [d.strip().lower() for d in q.get("order_direction", "").split(",")]
        else:
            pairs = [p.split(":") for p in self.config.default_order.split(",")]
            fields = [p[0] for p in pairs]
            directions = [p[1] if len(p) > 1 else "asc" for p in pairs]
        order: list[tuple[str, bool]] = []
        for i, name in enumerate(fields):
            if name not in ORDER_FIELDS:
                raise BadRequest(
                    f"order_by: unknown field {name!r}; allowed: {', '.join(ORDER_FIELDS)}"
                )
            direction = directions[i] if i < len(directions) and directions[i] else "asc"
            if direction not in ("asc", "desc"):
                raise BadRequest(f"order_direction must be asc or desc, got {direction!r}")
            order.append((name, direction == "desc"))
        return order


def _route(
    pattern: str, handler: Callable[..., Response], methods: tuple[str, ...] = ("GET",)
) -> tuple[re.Pattern[str], frozenset[str], Callable[..., Response]]:
    regex = re.compile(pattern.replace("{id}", "([^/]+)"))
    return regex, frozenset(methods), handler


# Order matters: fixed words ("removed", "current") before {id}.
ROUTES = [
    _route("/users/current", App.r_current_user),
    _route("/users", App.r_users),
    _route("/spaces", App.r_spaces),
    _route("/spaces/{id}", App.r_space),
    _route("/spaces/{id}/boards", App.r_space_boards),
    _route("/boards/removed", App.r_not_allowed, ()),
    _route("/boards/{id}", App.r_board),
    _route("/boards/{id}/columns", App.r_board_columns),
    _route("/boards/{id}/lanes", App.r_board_lanes),
    _route("/columns/{id}/subcolumns", App.r_subcolumns),
    _route("/cards", App.r_cards),
    _route("/cards/removed", App.r_not_allowed, ()),
    _route("/cards/{id}", App.r_card),
    _route("/cards/{id}/comments", App.r_card_comments),
    _route("/cards/{id}/location-history", App.r_card_history),
    _route("/cards/{id}/members", App.r_card_members),
    _route("/cards/{id}/tags", App.r_card_tags),
    _route("/cards/{id}/blockers", App.r_card_blockers),
    _route("/cards/{id}/children", App.r_card_children),
    # The sandbox models no external links or time logs: real-shaped, always empty.
    _route("/cards/{id}/external-links", App.r_card_empty_list),
    _route("/cards/{id}/time-logs", App.r_card_empty_list),
    _route("/cards/{id}/checklists", App.r_not_allowed, ()),
    _route("/tags", App.r_tags),
    _route("/card-types", App.r_card_types),
    _route("/company/custom-properties", App.r_custom_properties),
]
API_PREFIX = re.compile(r"/api/(?:latest|v1)(/.*)?")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
    server_version = "kaiten-sandbox"
    disable_nagle_algorithm = True
    server: SandboxHTTPServer
    # The request log entry of the API request being answered (see Stats.record).
    log_entry: dict[str, Any] | None = None

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a request log on every call would swamp test output

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def _dispatch(self, method: str) -> None:
        app = self.server.app
        try:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                self.close_connection = True  # the body's end is unknown: cannot keep alive
                self._send(message(400, "Content-Length must be a whole number"))
                return
            if length > MAX_BODY:
                self.close_connection = True  # do not read (or wait for) a huge body
                self._send(message(400, f"request body over {MAX_BODY} bytes"))
                return
            body = self.rfile.read(length) if length > 0 else b""
            split = urlsplit(self.path)
            path = split.path
            query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
            if path.startswith("/_sandbox"):
                self._send(self._control(app, method, path, body, query))
                return
            match = API_PREFIX.fullmatch(path)
            if match is None:
                self._send(Response(404, f"Cannot {method} {path}".encode(), "text/plain"))
                return
            self._api(app, method, match.group(1) or "/", path, query)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            # Log for the developer; the client only gets a short JSON message.
            traceback.print_exc(file=sys.stderr)
            try:
                self._send(message(500, "Internal server error"))
            except OSError:
                self.close_connection = True

    def _api(self, app: App, method: str, rel: str, path: str, q: dict[str, str]) -> None:
        auth = self.headers.get("Authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        self.log_entry = app.stats.record(path, token)
        config = app.config

        injected = app.take_injected(path)
        if injected is not None:
            app.stats.fault("injected")
            if injected.get("latency_ms"):
                time.sleep(injected["latency_ms"] / 1000)
            if injected.get("drop"):
                self._drop()
                return
            if injected.get("status") is not None:
                status = injected["status"]
                body = injected.get("body")
                if body is None:
                    raw, ctype = _default_error_body(status)
                else:
                    raw = body.encode()
                    ctype = injected.get("content_type") or _guess_content_type(raw)
                headers = {k: str(v) for k, v in injected.get("headers", {}).items()}
                if "retry_after_date_in" in injected:
                    # An HTTP date that lies ahead when it is served, however late that is.
                    when = time.time() + injected["retry_after_date_in"]
                    headers["Retry-After"] = email.utils.formatdate(when, usegmt=True)
                self._send(Response(status, raw, ctype, headers))
                return
        if app.chance(config.drop_rate):
            app.stats.fault("drop")
            self._drop()
            return
        if config.latency_ms:
            app.stats.fault("latency")
            time.sleep(config.latency_ms / 1000)

        rate_headers: dict[str, str] = {}
        if config.rate_limit > 0:
            admitted, rate_headers = app.limiter.check(token, config.rate_limit)
            if not admitted:
                headers = dict(rate_headers, **{"Retry-After": "1"})
                self._send(Response(429, HTML_429, "text/html; charset=utf-8", headers))
                return
        if app.chance(config.fault_rate):
            with app.rng_lock:
                status = app.rng.choice(config.fault_statuses)
            app.stats.fault(str(status))
            raw, ctype = _default_error_body(status)
            self._send(Response(status, raw, ctype, rate_headers))
            return
        if not auth:
            self._send(Response(401, b"Unauthorized", "text/plain; charset=utf-8", rate_headers))
            return
        if token not in app.valid_tokens():
            self._send(Response(401, b"Invalid token", "text/plain; charset=utf-8", rate_headers))
            return
        try:
            response = app.route(method, rel, q)
        except BadRequest as exc:
            response = message(400, str(exc))
        except NotFoundError:
            response = Response(404, b"")
        response.headers.update(rate_headers)
        if injected is not None:
            # A scripted entry without a status decorates the real answer (e.g. headers).
            response.headers.update({k: str(v) for k, v in injected.get("headers", {}).items()})
        empty = injected is not None and injected.get("empty_body")
        if (
            response.status == 200
            and response.list_endpoint
            and (empty or app.chance(config.empty_body_rate))
        ):
            app.stats.fault("empty_body")
            response.body = b""
        self._send(response)

    def _control(
        self, app: App, method: str, path: str, body: bytes, query: dict[str, str]
    ) -> Response:
        routes: dict[str, dict[str, Callable[[], Response]]] = {
            "/_sandbox/state": {"GET": lambda: json_response(app.ws.truth(_streams(query)))},
            "/_sandbox/stats": {"GET": lambda: json_response(app.stats.snapshot())},
            "/_sandbox/stats/reset": {"POST": lambda: (app.stats.reset(), json_response({}))[1]},
            "/_sandbox/requests": {"GET": lambda: json_response(app.stats.requests())},
            "/_sandbox/config": {
                "GET": lambda: json_response(asdict(app.config)),
                "POST": lambda: json_response(app.configure(_json_body(body))),
            },
            "/_sandbox/mutate": {"POST": lambda: json_response(app.mutate(_json_body(body)))},
        }
        methods = routes.get(path.rstrip("/"))
        if methods is None:
            return Response(404, f"Cannot {method} {path}".encode(), "text/plain")
        if method not in methods:
            return Response(405, b"", headers={"Allow": ", ".join(methods)})
        try:
            return methods[method]()
        except BadRequest as exc:
            return message(400, str(exc))

    def _drop(self) -> None:
        # Close without a byte of answer, like a proxy that resets the connection.
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, response: Response) -> None:
        if not self.path.startswith("/_sandbox"):
            self.server.app.stats.status(response.status)
        entry, self.log_entry = self.log_entry, None
        if entry is not None:
            self.server.app.stats.answered(
                entry, response.status, response.headers.get("Retry-After")
            )
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if response.body and self.command != "HEAD":
            self.wfile.write(response.body)


def _streams(query: dict[str, str]) -> list[str] | None:
    raw = query.get("streams")
    return None if raw is None else [s.strip() for s in raw.split(",") if s.strip()]


def _json_body(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("request body must be valid JSON") from None


def _guess_content_type(raw: bytes) -> str:
    """Scripted bodies that parse as JSON are served as JSON, anything else as text."""
    if not raw.strip():
        return "application/json; charset=utf-8"
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "text/plain; charset=utf-8"
    return "application/json; charset=utf-8"


def _default_error_body(status: int) -> tuple[bytes, str]:
    if status == 429:
        return HTML_429, "text/html; charset=utf-8"
    if status in HTML_5XX:
        return HTML_5XX[status], "text/html; charset=utf-8"
    if status == 401:
        return b"Unauthorized", "text/plain; charset=utf-8"
    if status >= 500:
        return orjson.dumps({"message": "Internal server error"}), "application/json"
    return orjson.dumps({"message": f"HTTP {status}"}), "application/json"


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, Handler)

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._conn_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close_all(self) -> None:
        """Close idle keep-alive connections so stop() leaves no thread blocked on a read."""
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
