"""The one base stream for Kaiten: URL, auth, paging, rate limits, retries and errors."""

from __future__ import annotations

import bisect
import collections
import contextlib
import datetime
import email.utils
import hashlib
import logging
import math
import random
import threading
import time
import typing as t
import weakref
from concurrent.futures import Future
from http import HTTPStatus
from urllib.parse import urlsplit

import msgspec
import requests
import urllib3
from singer_sdk.authenticators import BearerTokenAuthenticator
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.pagination import OffsetPaginator
from singer_sdk.streams import RESTStream
from typing_extensions import override

if t.TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Iterator

    from backoff.types import Details
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

API_PREFIX = "/api/latest"
CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
PROGRESS_LOG_SECONDS = 10.0
# A server-requested pause longer than this is cut short: the retry then meets the
# limit again and waits again, so a bogus header cannot stall a run for hours.
MAX_SERVER_WAIT_SECONDS = 120.0
MAX_ATTEMPTS = 8
# Requests in flight at once (max_parallel_requests). Little's law: in flight = rate x
# answer time; at Kaiten's measured 50/s and its 30-100 ms answers that is 1.5-5, and
# bursts reach 8 (bench/latency_bench.py: 16 is no faster at 100 ms). At the documented
# 5/s spacing alone keeps it at 1-2. 1 sends one request at a time.
DEFAULT_PARALLEL_REQUESTS = 8
_decode_json = msgspec.json.Decoder().decode
logger = logging.getLogger("tap-kaiten")


class KaitenAPIError(FatalAPIError):
    """A non-retriable Kaiten answer, worded for the person running the tap."""


class KaitenNotFoundError(KaitenAPIError):
    """404 after the first request: the object vanished while we were syncing."""


def parse_datetime(value: str) -> datetime.datetime:
    """Parse an ISO 8601 date or date-time; naive values are taken as UTC."""
    parsed = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.astimezone(datetime.UTC)


def format_datetime(value: datetime.datetime) -> str:
    """Kaiten's own timestamp form: UTC, milliseconds, Z."""
    value = value.astimezone(datetime.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def describe_transport_error(exc: BaseException) -> str:
    """One line for a network failure that outlived the retries."""
    if isinstance(exc, requests.exceptions.Timeout):
        return "Kaiten API Error: no answer before the timeout, after retries (try again later)"
    if isinstance(exc, requests.exceptions.ConnectionError):
        url = getattr(exc.request, "url", None) or ""
        host = urlsplit(url).hostname or "the Kaiten host"
        return (
            f"Kaiten API Error: cannot connect to {host}: check the company domain in "
            "KAITEN_API_URL and the network"
        )
    return f"Kaiten API Error: {type(exc).__name__}"


class RateLimiter:
    """Spaces requests evenly at a rate; shared by every stream of the process.

    Even spacing (not bursts) keeps any 1-second window at or under the limit, so
    a sliding-window server never has to answer 429, and the API's bound is used
    in full. Several requests may be in flight (max_parallel_requests); they still
    leave one at a time, each in its own slot.
    """

    # The spacing only spreads requests evenly, so its margin is small: each per cent
    # of it is a per cent of every rate-limited sync's time. The answer window (see
    # `_delay`) is what keeps every server window at N, with this much to spare.
    SAFETY_SHARE = 0.005
    SAFETY_SECONDS = 0.002
    # A request late for its slot (a slow answer, a pause of the machine) may be followed
    # by up to this many seconds' worth of requests sent back to back, so that short
    # stalls cost no throughput; the answer window still caps every second at N.
    CATCH_UP_SECONDS = 0.1
    # A request is counted as admitted as late as its answer minus this share of the
    # fastest round trip among the last RECENT_ANSWERS (see `answered`).
    ADMISSION_CREDIT_SHARE = 0.5
    RECENT_ANSWERS = 20

    def __init__(self, requests_per_second: float, max_in_flight: int = 1) -> None:
        self._state = threading.Condition(threading.Lock())
        # One request at a time is placed in a slot; the others queue here, so
        # answers, pauses and header updates never wait behind a sleeping request.
        self._turn = threading.Lock()
        # Latest possible server admission of the last N answered requests, ascending.
        self._admitted: list[float] = []
        self._round_trips: collections.deque[float] = collections.deque(maxlen=self.RECENT_ANSWERS)
        self._in_flight = 0
        self._next_at = 0.0
        self._last_at = 0.0
        self.configured = requests_per_second
        self.rate = requests_per_second
        self.interval = self._interval(requests_per_second)
        self.max_in_flight = max_in_flight

    def configure(self, requests_per_second: float, max_in_flight: int = 1) -> None:
        """Take the configured rate (a new run may configure another)."""
        if max_in_flight != self.max_in_flight:
            with self._state:
                self.max_in_flight = max_in_flight
                self._state.notify_all()
        if requests_per_second != self.configured:
            self.configured = requests_per_second
            self._set_rate(requests_per_second)

    def _set_rate(self, requests_per_second: float) -> None:
        with self._state:
            self.rate = requests_per_second
            self.interval = self._interval(requests_per_second)
            # The next request keeps the new spacing from the last one already sent.
            self._next_at = max(self._next_at, self._last_at + self.interval)
            self._state.notify_all()

    @classmethod
    def _interval(cls, requests_per_second: float) -> float:
        exact = 1.0 / requests_per_second
        return exact * (1 + cls.SAFETY_SHARE)

    def wait(self) -> float:
        """Block until a request may leave; returns the ticket to pass to `answered`."""
        with self._turn, self._state:
            while True:
                delay = self.delay()
                if delay <= 0:
                    return self.grant()
                # Woken early by an answer (a place in flight, an answer window that
                # moved) or a pause: the delay is worked out again.
                self._state.wait(None if delay == math.inf else delay)

    def delay(self) -> float:
        """Seconds until the next request may leave (inf: until an answer comes back).

        Called with the state lock held (or on a simulated clock, without threads).
        """
        now = time.monotonic()
        if self._in_flight >= self.max_in_flight:
            return math.inf
        delay = self._next_at - now
        # The answer window. Even spacing counts from when requests left, but the server
        # counts when it admitted them: one held up on its way (a slow proxy, a busy
        # server) lands closer to the next ones (measured: 9-15 answers 429 in a
        # 1,000-card sync at 5/s without this, each costing a second). A request was
        # admitted before its answer came back: so a new request leaves only when at most
        # N-1 others can still be in the server's window: those in flight, and those
        # answered less than a second ago.
        window = self._window()
        room = window - self._in_flight
        if room <= 0:
            return math.inf
        if len(self._admitted) >= room:
            oldest = self._admitted[-room]
            delay = max(delay, oldest + 1.0 + self.SAFETY_SECONDS - now)
        return delay

    def grant(self) -> float:
        """Let one request leave now (after `delay` reached 0); returns its ticket."""
        now = time.monotonic()
        self._in_flight += 1
        self._last_at = now
        # The next slot counts from this one, not from when the wait returned: its
        # overshoot (ms on a busy machine) must not add up, or 50/s becomes ~37/s.
        # Behind schedule, the slots lost are made up for up to CATCH_UP_SECONDS
        # (at least one slot), never beyond what the answer window allows.
        credit = max(self.interval, self.CATCH_UP_SECONDS)
        self._next_at = max(self._next_at + self.interval, now + self.interval - credit)
        return now

    def _window(self) -> int:
        return max(int(self.rate), 1)

    def answered(self, ticket: float) -> None:
        """An answer (or an error) came back for the request `wait` returned `ticket` to.

        The server admitted it somewhere between the ticket and now. Counting it as
        admitted now would cost one round trip per N requests (10 % at 100 ms answers);
        a round trip is way in plus way back, each at least a share of the fastest one
        seen, so the admission is counted ADMISSION_CREDIT_SHARE of that fastest round
        trip earlier. With a fixed delay all on the way in (the sandbox's latency_ms, the
        worst case) that still holds: the next request's way in is as long. No credit
        before RECENT_ANSWERS answers: one slow first answer cannot vouch for itself.
        """
        with self._state:
            now = time.monotonic()
            self._in_flight = max(self._in_flight - 1, 0)
            self._round_trips.append(now - ticket)
            credit = 0.0
            if len(self._round_trips) == self.RECENT_ANSWERS:
                # Only from a full sample: a first answer held up on its way must not
                # vouch for itself.
                credit = self.ADMISSION_CREDIT_SHARE * min(self._round_trips)
            bisect.insort(self._admitted, now - credit)
            excess = len(self._admitted) - self._window()
            if excess > 0:
                del self._admitted[:excess]
            self._state.notify_all()

    def pause(self, seconds: float) -> None:
        """Hold every stream's next request for `seconds` from now."""
        with self._state:
            self._next_at = max(self._next_at, time.monotonic() + seconds)
            self._state.notify_all()

    def observe(self, response: requests.Response) -> None:
        """Follow the X-RateLimit-* headers of every answer.

        A server limit below our rate slows us down to it. "Remaining: 0" means wait
        for the reset, except when our even spacing is already within the server's
        advertised limit: then it only marks the edge of the window that our next
        (spaced) request finds free again, and waiting for the reset, which is rounded
        up to whole seconds, would halve the throughput.
        """
        headers = response.headers
        limit = _header_number(headers.get("X-RateLimit-Limit"))
        if limit is not None and 0 < limit < self.rate:
            logger.warning(
                "Kaiten allows %g requests per second; slowing down from %g", limit, self.rate
            )
            self._set_rate(limit)
        if _header_number(headers.get("X-RateLimit-Remaining")) != 0:
            return
        if limit is not None and self.rate <= limit:
            return
        seconds = seconds_until_reset(response)
        if seconds is not None:
            self.pause(min(seconds, MAX_SERVER_WAIT_SECONDS))


def _header_number(value: str | None) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


_LIMITERS: dict[tuple[str, str], RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def shared_limiter(
    api_url: str, token: str, requests_per_second: float, max_in_flight: int = 1
) -> RateLimiter:
    """The process-wide limiter for one (Kaiten host, token): Kaiten limits per token."""
    key = (api_url, hashlib.sha256(token.encode()).hexdigest())
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(key)
        if limiter is None:
            limiter = _LIMITERS[key] = RateLimiter(requests_per_second, max_in_flight)
        else:
            limiter.configure(requests_per_second, max_in_flight)
        return limiter


def seconds_until_reset(response: requests.Response) -> float | None:
    """X-RateLimit-Reset is a UTC epoch in seconds; None when absent or unreadable."""
    reset = response.headers.get("X-RateLimit-Reset")
    if not reset:
        return None
    try:
        return max(0.0, float(reset) - time.time())
    except ValueError:
        return None


def retry_after_seconds(response: requests.Response) -> float | None:
    """Retry-After as seconds (0 is taken as 1) or an HTTP date; None when absent."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        seconds = (when - datetime.datetime.now(datetime.UTC)).total_seconds()
    # "Retry-After: 0" and past dates would make us hammer the API: wait a second.
    return max(seconds, 1.0)


class EmptyBodyError(RetriableAPIError):
    """200 with an empty body on a list page: asked again once before it counts as []."""


# A worker thread's own HTTP session (requests.Session is not meant to be shared).
_WORKER = threading.local()


class _Lane:
    """A queue of calls and the worker threads that run them, started as work arrives."""

    def __init__(self, name: str, workers: int) -> None:
        self._name = name
        self._max_workers = workers
        self._workers = 0
        self._idle = 0
        self._tasks: collections.deque[tuple[Future, Callable[[], t.Any]]] = collections.deque()
        self._ready = threading.Condition()
        self._closed = False

    def submit(self, future: Future, call: Callable[[], t.Any]) -> None:
        with self._ready:
            self._tasks.append((future, call))
            if self._idle == 0 and self._workers < self._max_workers:
                self._workers += 1
                # Daemon: a run that fails exits at once instead of waiting for other
                # cards' retries, whose answers would be thrown away anyway.
                threading.Thread(
                    target=self._work, name=f"{self._name}-{self._workers}", daemon=True
                ).start()
            self._ready.notify()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            for future, _ in self._tasks:
                future.cancel()
            self._tasks.clear()
            self._ready.notify_all()

    def _work(self) -> None:
        _WORKER.session = requests.Session()
        try:
            while True:
                with self._ready:
                    self._idle += 1
                    while not self._tasks and not self._closed:
                        self._ready.wait()
                    self._idle -= 1
                    if self._closed:
                        return
                    future, call = self._tasks.popleft()
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    result = call()
                except BaseException as exc:  # handed to the reader as is
                    future.set_exception(exc)
                else:
                    future.set_result(result)
        finally:
            _WORKER.session.close()


class Prefetcher:
    """Worker threads that send requests before the stream that reads them asks.

    Each request is registered under its URL when submitted; the stream's own request
    for that URL then takes the outcome (the response, or the exception its retries
    ended in) instead of asking again. Pages have a thread of their own, so the next
    page never waits behind a page's worth of card requests (and its large answers are
    always allocated by the same thread: one more malloc arena, not one per worker).
    """

    def __init__(self, workers: int) -> None:
        self._pages = _Lane("tap-kaiten-pages", 1)
        self._cards = _Lane("tap-kaiten-requests", workers)
        self._pending: dict[str, collections.deque[Future]] = {}
        self._pending_lock = threading.Lock()

    def submit(self, url: str, call: Callable[[], t.Any], *, page: bool = False) -> None:
        """Run `call` on a worker; `page`: on the pages thread."""
        future: Future = Future()
        with self._pending_lock:
            self._pending.setdefault(url, collections.deque()).append(future)
        (self._pages if page else self._cards).submit(future, call)

    def take(self, url: str) -> Future | None:
        """The outcome submitted for `url` (oldest first), if any."""
        with self._pending_lock:
            waiting = self._pending.get(url)
            if not waiting:
                return None
            future = waiting.popleft()
            if not waiting:
                del self._pending[url]
            return future

    def close(self) -> None:
        """Cancel what has not started; workers stop after their current request."""
        self._pages.close()
        self._cards.close()
        with self._pending_lock:
            self._pending.clear()


class _RunState:
    """What all streams of one tap run share."""

    def __init__(self) -> None:
        # Requests sent ahead for the cards being read (max_parallel_requests > 1).
        self.prefetcher: Prefetcher | None = None
        self.first_response_seen = False
        self.refused_before_first_response = 0
        # `/spaces` answers both the spaces and the boards stream: read it once.
        self.spaces_payload: list[dict] | None = None
        # Columns and lanes that came embedded in a board, until their streams use them.
        self.board_parts: dict[int, dict[str, list[dict]]] = {}


_RUN_STATES: weakref.WeakKeyDictionary[Tap, _RunState] = weakref.WeakKeyDictionary()


class KaitenPaginator(OffsetPaginator):
    """limit/offset paging: Kaiten's only end signal is a page shorter than `limit`."""

    @override
    def has_more(self, response: requests.Response) -> bool:
        records = getattr(response, "kaiten_records", [])
        # A page longer than asked for means the endpoint ignores limit/offset and
        # already returned everything.
        return len(records) == self.page_size


class KaitenStream(RESTStream[int]):
    """Everything Kaiten streams share."""

    page_size: int | None = 100  # None: the endpoint is not paginated
    # Records are JSON straight from Kaiten, already of their schema's types, and
    # post_process() leaves only schema keys (unknown ones go to `extra_fields`):
    # the SDK's per-field conformance would cost a third of the run for nothing.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    # Tests shorten these; production waits 1, 2, 4 ... 30 s between attempts.
    retry_base_seconds: float = 1.0
    retry_cap_seconds: float = 30.0
    # Child streams turn a 404 (parent deleted meanwhile) into "no records".
    not_found_is_empty = False

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._previous_page_digest: bytes | None = None
        # Per thread: requests of one stream may be in flight on several threads.
        self._local = threading.local()
        self._requests_made = 0
        self._count_lock = threading.Lock()
        self._records_read = 0
        self._last_progress_log = time.monotonic()

    @property
    @override
    def url_base(self) -> str:
        return self.config["api_url"] + API_PREFIX

    @property
    @override
    def authenticator(self) -> BearerTokenAuthenticator:
        return BearerTokenAuthenticator(token=self.config["api_token"])

    @property
    @override
    def http_headers(self) -> dict:
        return {"Accept": "application/json"}

    @property
    @override
    def timeout(self) -> tuple[float, float]:  # type: ignore[override]
        return (CONNECT_TIMEOUT, float(self.config.get("request_timeout") or DEFAULT_READ_TIMEOUT))

    @property
    @override
    def requests_session(self) -> requests.Session:
        # A prefetch worker sends on its own session.
        session = getattr(_WORKER, "session", None)
        return session if session is not None else super().requests_session

    @property
    def max_parallel_requests(self) -> int:
        return int(self.config.get("max_parallel_requests") or DEFAULT_PARALLEL_REQUESTS)

    @property
    def rate_limiter(self) -> RateLimiter:
        limiter = self.__dict__.get("_rate_limiter")
        if limiter is None:  # a stream's settings never change: looked up once
            limiter = self.__dict__["_rate_limiter"] = shared_limiter(
                self.config["api_url"],
                self.config["api_token"],
                float(self.config.get("requests_per_second") or 5),
                self.max_parallel_requests,
            )
        return limiter

    @property
    def run_state(self) -> _RunState:
        state = _RUN_STATES.get(self._tap)
        if state is None:
            state = _RUN_STATES[self._tap] = _RunState()
        return state

    @override
    def get_new_paginator(self) -> KaitenPaginator | None:
        self._previous_page_digest = None
        if self.page_size is None:
            return None
        return KaitenPaginator(start_value=0, page_size=self.page_size)

    @override
    def get_url_params(self, context: Context | None, next_page_token: int | None) -> dict:
        if self.page_size is None:
            return {}
        return {"limit": self.page_size, "offset": next_page_token or 0}

    @override
    def request_decorator(self, func: Callable) -> Callable:
        retried = self.retried_request(func)

        def prefetched_or_sent(
            prepared_request: requests.PreparedRequest, context: Context | None
        ) -> requests.Response:
            prefetcher = self.run_state.prefetcher
            if prefetcher is not None:
                future = prefetcher.take(prepared_request.url or "")
                if future is not None:
                    # Sent ahead through retried_request: its answer, or the very
                    # exception its retries ended in.
                    return future.result()  # type: ignore[no-any-return]
            return retried(prepared_request, context)  # type: ignore[no-any-return]

        return prefetched_or_sent

    def send_ahead(
        self,
        prepared_request: requests.PreparedRequest,
        context: Context | None,
        *,
        missing_ok: bool | None = None,
    ) -> requests.Response:
        """What the stream's own request would do (limiter, retries, errors), on a worker."""
        with self.missing_ok(self.not_found_is_empty if missing_ok is None else missing_ok):
            return self.retried_request(self._request)(prepared_request, context)  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def missing_ok(self, value: bool = True) -> Iterator[None]:
        """On this thread, a 404 means "deleted meanwhile" (KaitenNotFoundError)."""
        before = getattr(self._local, "missing_ok", None)
        self._local.missing_ok = value
        try:
            yield
        finally:
            self._local.missing_ok = before

    def _not_found_is_empty_now(self) -> bool:
        value = getattr(self._local, "missing_ok", None)
        return self.not_found_is_empty if value is None else bool(value)

    def retried_request(self, func: Callable) -> Callable:
        """`func` behind the shared rate limiter and the SDK's retries."""
        limiter = self.rate_limiter

        def rate_limited(prepared_request: requests.PreparedRequest, context: Context | None):  # noqa: ANN202
            ticket = limiter.wait()
            with self._count_lock:
                self._requests_made += 1
            try:
                try:
                    return func(prepared_request, context)
                finally:
                    limiter.answered(ticket)
            except requests.exceptions.ConnectionError as exc:
                # A host that does not resolve before anything ever answered is a
                # typo in KAITEN_API_URL, not a network blip: fail now, not after retries.
                run = self.run_state
                if not run.first_response_seen:
                    host = urlsplit(prepared_request.url or "").netloc
                    if _unknown_host(exc):
                        msg = (
                            f"Kaiten API Error: the host {host} does not exist: check the "
                            "company domain in KAITEN_API_URL"
                        )
                        raise KaitenAPIError(msg) from None
                    if _refused(exc):
                        run.refused_before_first_response += 1
                    if run.refused_before_first_response > 1:
                        # Nothing has ever answered: a wrong port or host, not a blip.
                        msg = (
                            f"Kaiten API Error: cannot connect to {host}: check "
                            "KAITEN_API_URL and the network"
                        )
                        raise KaitenAPIError(msg) from None
                raise

        return super().request_decorator(rate_limited)

    @override
    def validate_response(self, response: requests.Response) -> None:
        self.rate_limiter.observe(response)
        status = response.status_code
        first_response = not self.run_state.first_response_seen
        path = urlsplit(response.url).path
        if status == HTTPStatus.UNAUTHORIZED:
            msg = (
                "Kaiten API Error [401]: the token is invalid or expired: create a new one "
                "in Kaiten (profile -> API keys) and set KAITEN_API_TOKEN without the word "
                "'Bearer'"
            )
            raise KaitenAPIError(msg)
        if status == HTTPStatus.NOT_FOUND and first_response:
            msg = "Kaiten API Error [404]: check the company domain in KAITEN_API_URL"
            raise KaitenAPIError(msg)
        if status == HTTPStatus.TOO_MANY_REQUESTS or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            raise RetriableAPIError(f"[{status}] {response.reason} on {path}", response)
        if status == HTTPStatus.NOT_FOUND and self._not_found_is_empty_now():
            raise KaitenNotFoundError(f"Kaiten API Error [404] on {path}")
        if status >= HTTPStatus.BAD_REQUEST:
            msg = f"Kaiten API Error [{status}] on {path}: {kaiten_message(response)}"
            raise KaitenAPIError(msg)
        self.run_state.first_response_seen = True
        # Decode here, inside the retried call: a body cut short by a dropped
        # connection is retried like any other transient failure.
        body = response.content
        if not body.strip():
            # Kaiten sometimes answers a list with an empty body. Taken at face value
            # mid-paging it would end the stream early, so ask once more; a second
            # empty answer really means [].
            if response.url != getattr(self._local, "empty_body_url", None):
                self._local.empty_body_url = response.url
                raise EmptyBodyError(f"empty body from {path}", response)
            body = b"[]"
        self._local.empty_body_url = None
        try:
            payload = _decode_json(body)
        except msgspec.DecodeError:
            raise RetriableAPIError(f"unreadable JSON from {path}", response) from None
        response.kaiten_records = self.extract_records(payload)  # type: ignore[attr-defined]

    def extract_records(self, payload: t.Any) -> list[dict]:
        """The list of records in a decoded response."""
        if isinstance(payload, dict):
            return [payload]
        if not isinstance(payload, list):
            msg = f"Kaiten API Error: unexpected response from {self.path}: not a JSON list"
            raise KaitenAPIError(msg)
        return payload

    @override
    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        records: list[dict] = response.kaiten_records  # type: ignore[attr-defined]
        if self.page_size is not None and records:
            # Some endpoints ignore offset and return the same page forever.
            digest = hashlib.blake2b(response.content, digest_size=16).digest()
            if digest == self._previous_page_digest:
                self.logger.warning(
                    "%s: the API repeated the previous page; paging stopped", self.name
                )
                return []
            self._previous_page_digest = digest
        self._records_read += len(records)
        self.log_progress()
        return records

    @property
    @override
    def emit_activate_version_messages(self) -> bool:
        # The SDK would write ACTIVATE_VERSION at the start of every sync() call, which
        # for child streams is once per board or card: the target would mark rows
        # deleted in the middle of the run, and an incremental run would delete the
        # history of every card it did not re-read. complete_read() writes one at the
        # end of a complete read instead.
        return False

    @property
    def marks_deletions(self) -> bool:
        """Whether complete reads end with ACTIVATE_VERSION (rows not re-read: deleted)."""
        return bool(self.config.get("emit_activate_version_messages", True))

    def start_table_version(self) -> None:
        """Records of a complete read carry this run's table version."""
        if self.marks_deletions and self._stream_version is None:
            self._stream_version = self._tap.initialized_at  # ms: unique per run

    def activate_table_version(self) -> None:
        """After a complete read, rows of an older version are gone from Kaiten."""
        if not (self.marks_deletions and self.selected and self._stream_version is not None):
            return
        self._write_activate_version_message(self._stream_version)

    def complete_read(
        self, records: Iterable[dict], children: Iterable[KaitenStream] = ()
    ) -> Iterator[dict]:
        """Yield a whole table's records (and its children's), then ACTIVATE_VERSION.

        Nothing is activated if the read fails half-way: the exception skips it.
        """
        streams = [self, *children]
        for stream in streams:
            stream.start_table_version()
        yield from records
        for stream in streams:
            stream.activate_table_version()

    def spaces_with_boards(self) -> list[dict]:
        """The `/spaces` answer (boards embedded), requested once per run."""
        if self.run_state.spaces_payload is None:
            spaces_stream = self._tap.streams["spaces"]
            self.run_state.spaces_payload = list(spaces_stream.request_records(None))
        return self.run_state.spaces_payload

    def prepare_one(self, path: str) -> requests.PreparedRequest:
        """The request fetch_one(path) makes."""
        return self.build_prepared_request(
            method="GET", url=self.url_base + path, headers=self.http_headers
        )

    def fetch_one(self, path: str) -> dict | None:
        """GET one object outside the stream's own paging: same limiter, retries, errors.

        Returns None on 404 (the object was deleted meanwhile).
        """
        try:
            with self.missing_ok():
                response = self.request_decorator(self._request)(self.prepare_one(path), None)
        except KaitenNotFoundError:
            return None
        records = records_of(response)
        return records[0] if records else None

    @override
    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        # Fields the schema does not know are kept in `extra_fields` instead of
        # being dropped by the SDK.
        known = self._known_properties
        if known.issuperset(row):  # the usual case, checked in C (a Python scan per key
            return row  # was ~4 % of the tap's CPU on cards)
        unknown = [key for key in row if key not in known]
        row["extra_fields"] = {key: row.pop(key) for key in unknown}
        return row

    @property
    def _known_properties(self) -> frozenset[str]:
        known = self.__dict__.get("_known_properties_cache")
        if known is None:
            known = self.__dict__["_known_properties_cache"] = frozenset(self.schema["properties"])
        return known

    def log_progress(self, *, force: bool = False) -> None:
        """One line per stream at least every 10 s: records so far, requests made."""
        now = time.monotonic()
        if force or now - self._last_progress_log >= PROGRESS_LOG_SECONDS:
            self._last_progress_log = now
            self.logger.info(
                "Progress %s: %d records so far, %d requests made",
                self.name,
                self._records_read,
                self._requests_made,
            )

    @override
    def backoff_wait_generator(self) -> Generator[float, t.Any, None]:
        attempt = 0
        exception = yield 0.0  # primed by backoff before the first failure
        while True:
            attempt += 1
            exception = yield self.retry_wait_seconds(exception, attempt)

    def retry_wait_seconds(self, exception: BaseException, attempt: int) -> float:
        """How long to wait before attempt `attempt + 1`."""
        response = getattr(exception, "response", None)
        if isinstance(exception, EmptyBodyError):
            return 0.1
        wait = min(self.retry_cap_seconds, self.retry_base_seconds * 2 ** (attempt - 1))
        wait *= random.uniform(0.8, 1.0)  # noqa: S311  (jitter, not crypto)
        if isinstance(exception, RetriableAPIError) and response is not None:
            server_wait = retry_after_seconds(response)
            if server_wait is None and response.status_code == HTTPStatus.TOO_MANY_REQUESTS:
                # No Retry-After: the quota's reset if given, else the back-off; never less
                # than Kaiten's sliding one-second window, or we ask inside the one that
                # refused us.
                reset = seconds_until_reset(response)
                server_wait = max(wait if reset is None else reset, 1.0)
            if server_wait is not None:
                server_wait = min(server_wait, MAX_SERVER_WAIT_SECONDS)
                self.rate_limiter.pause(server_wait)
                return server_wait
        return wait

    @override
    def backoff_jitter(self, value: float) -> float:
        # Jitter is applied in retry_wait_seconds: a server's Retry-After is obeyed exactly.
        return value

    @override
    def backoff_max_tries(self) -> int:
        return MAX_ATTEMPTS

    @override
    def backoff_handler(self, details: Details) -> None:
        exception = details.get("exception")
        response = getattr(exception, "response", None)
        reason = (
            f"HTTP {response.status_code}" if response is not None else type(exception).__name__
        )
        self.logger.warning(
            "%s: %s, retrying in %.1f s (attempt %d of %d)",
            self.name,
            reason,
            details.get("wait") or 0.0,
            details.get("tries", 0) + 1,
            MAX_ATTEMPTS,
        )


def _unknown_host(exc: requests.exceptions.ConnectionError) -> bool:
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NameResolutionError)


def _refused(exc: requests.exceptions.ConnectionError) -> bool:
    # Not even a TCP connection (refused, unreachable); a dropped one is another matter.
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def kaiten_message(response: requests.Response) -> str:
    """Kaiten's own explanation: JSON `message`, else a short plain body."""
    try:
        body = _decode_json(response.content) if response.content.strip() else None
    except msgspec.DecodeError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:300]
    if isinstance(body, str) and body:
        return body[:300]
    text = response.text.strip() if "html" not in response.headers.get("Content-Type", "") else ""
    return text[:300] if text else (response.reason or "no message")


def records_of(response: requests.Response) -> list[dict]:
    """The decoded records stored on a validated response."""
    return response.kaiten_records  # type: ignore[attr-defined,no-any-return]
