"""The rate limiter's rules, on a simulated clock: exact, repeatable, no real waiting.

A sequential tap is simulated request by request: the limiter lets a request go, the
server admits it after a random delay (the moment its sliding window counts), the answer
comes back, the tap spends some time on the records, sometimes stalls. Requests in flight
together (max_parallel_requests) are simulated event by event: a request leaves whenever
the limiter allows, answers come back in their own time. The server's own window is then
replayed: no second may ever hold more than the limit.
"""

from __future__ import annotations

import heapq
import math
import random
import types
from collections import deque
from itertools import pairwise

import pytest

from tap_kaiten import client
from tap_kaiten.client import RateLimiter


class SimulatedClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


@pytest.fixture
def clock(monkeypatch):
    simulated = SimulatedClock()
    fake_time = types.SimpleNamespace(monotonic=simulated.monotonic, sleep=simulated.sleep)
    monkeypatch.setattr(client, "time", fake_time)
    return simulated


def wait_for_slot(clock: SimulatedClock, limiter: RateLimiter) -> float:
    """RateLimiter.wait() on the simulated clock (one thread: the delay is slept through)."""
    while (delay := limiter.delay()) > 0:
        assert delay != math.inf, "a lone request can never be kept waiting for an answer"
        clock.sleep(delay)
    return limiter.grant()


def run_requests(
    clock: SimulatedClock,
    limiter: RateLimiter,
    count: int,
    *,
    seed: int = 1,
    admission_delay: float = 0.0,
    answer_time: float = 0.002,
    work: float = 0.001,
    stall_every: int = 0,
    stall: float = 0.0,
) -> tuple[list[float], list[float]]:
    """Sequential requests; returns when each left the tap and when the server admitted it."""
    rng = random.Random(seed)
    sent, admitted = [], []
    for n in range(count):
        ticket = wait_for_slot(clock, limiter)
        sent.append(clock.now)
        # Held up on the way by up to `admission_delay`: the server counts it only then.
        admitted.append(clock.now + rng.uniform(0, admission_delay))
        clock.now = admitted[-1] + answer_time
        limiter.answered(ticket)
        clock.now += work
        if stall_every and n % stall_every == stall_every - 1:
            clock.now += stall
    return sent, admitted


def busiest_server_second(admitted: list[float]) -> int:
    """The server's sliding window (an entry leaves it once a full second old)."""
    window: deque[float] = deque()
    busiest = 0
    for at in sorted(admitted):
        window.append(at)
        while window[0] <= at - 1.0:
            window.popleft()
        busiest = max(busiest, len(window))
    return busiest


@pytest.mark.parametrize("rate", [5, 50])
def test_requests_come_within_half_a_percent_of_the_rate(clock, rate):
    limiter = RateLimiter(rate)
    sent, admitted = run_requests(clock, limiter, rate * 40)
    span = sent[-1] - sent[0]
    assert (len(sent) - 1) / span >= rate / 1.006
    assert busiest_server_second(admitted) <= rate


@pytest.mark.parametrize("rate", [5, 50])
def test_requests_held_up_on_their_way_never_overfill_a_server_second(clock, rate):
    # Admission delays of up to 30 ms are many times the spacing's margin: spacing alone
    # would let N+1 requests into some server second; the answer window must not.
    limiter = RateLimiter(rate)
    _, admitted = run_requests(clock, limiter, rate * 40, admission_delay=0.03)
    assert busiest_server_second(admitted) <= rate


def test_slots_lost_to_a_short_stall_are_made_up_for(clock):
    # 50/s with a 60 ms stall (three slots) every 25 requests: without catching up
    # every stall costs its slots, ~12 % of the run.
    limiter = RateLimiter(50)
    sent, admitted = run_requests(clock, limiter, 1_000, stall_every=25, stall=0.06)
    assert (len(sent) - 1) / (sent[-1] - sent[0]) >= 50 / 1.01
    assert busiest_server_second(admitted) <= 50


def test_catching_up_is_capped_at_a_tenth_of_a_second_of_requests(clock):
    limiter = RateLimiter(50)
    run_requests(clock, limiter, 60)  # on schedule, past the first second
    clock.now += 1.0  # a long pause (the target was busy): 50 slots lost
    sent, _ = run_requests(clock, limiter, 10, answer_time=0.0, work=0.0)
    back_to_back = sum(1 for a, b in pairwise(sent) if b - a < 0.001)
    assert back_to_back == 5  # 0.1 s worth at 50/s, then even spacing again
    assert sent[-1] - sent[5] == pytest.approx(4 * limiter.interval)


def test_at_5_per_second_a_late_request_is_followed_by_one_slot_at_most(clock):
    limiter = RateLimiter(5)
    run_requests(clock, limiter, 10)
    clock.now += 1.0
    sent, _ = run_requests(clock, limiter, 4, answer_time=0.0, work=0.0)
    assert sent[1] - sent[0] < 0.001
    assert sent[2] - sent[1] == pytest.approx(limiter.interval)
    assert sent[3] - sent[2] == pytest.approx(limiter.interval)


# ------------------------------------------------------------------ requests in flight
def run_in_flight(
    clock: SimulatedClock,
    limiter: RateLimiter,
    count: int,
    *,
    way_in: float,
    way_back: float = 0.0005,
    jitter: float = 0.002,
    held_every: int = 0,
    held: float = 0.0,
    seed: int = 1,
) -> tuple[list[float], list[float], int]:
    """Requests sent as soon as the limiter allows, answers back in their own time.

    Each request spends `way_in` (+ jitter) before the server admits it and `way_back`
    (+ jitter) after: the sandbox's latency_ms is all on the way in, the worst case for
    the answer window. Every `held_every`-th request is held up `held` more on its way in.
    Returns send and admission times and the most requests ever in flight at once.
    """
    rng = random.Random(seed)
    answers: list[tuple[float, int, float]] = []  # (answer time, n, ticket)
    sent: list[float] = []
    admitted: list[float] = []
    most_in_flight = 0
    while len(sent) < count or answers:
        delay = limiter.delay() if len(sent) < count else math.inf
        next_answer = answers[0][0] if answers else math.inf
        if delay != math.inf and clock.now + max(delay, 0.0) <= next_answer:
            clock.now += max(delay, 0.0)
            ticket = limiter.grant()
            sent.append(clock.now)
            extra = held if held_every and (len(sent) - 1) % held_every == 0 else 0.0
            admitted.append(clock.now + way_in + extra + rng.uniform(0, jitter))
            answer_at = admitted[-1] + way_back + rng.uniform(0, jitter)
            heapq.heappush(answers, (answer_at, len(sent), ticket))
            most_in_flight = max(most_in_flight, len(answers))
        else:
            answer_at, _, ticket = heapq.heappop(answers)
            clock.now = max(clock.now, answer_at)
            limiter.answered(ticket)
    return sent, admitted, most_in_flight


@pytest.mark.parametrize("rate", [5, 50])
@pytest.mark.parametrize("latency", [0.03, 0.1])
def test_requests_in_flight_together_keep_the_rate_and_every_server_second(clock, rate, latency):
    # Sequentially a 100 ms answer alone costs 10 % (the next slot waits for it); in
    # flight together the rate stays within 6 % of the limit, the window still at N.
    limiter = RateLimiter(rate, max_in_flight=8)
    sent, admitted, _ = run_in_flight(clock, limiter, rate * 40, way_in=latency)
    assert busiest_server_second(admitted) <= rate
    achieved = (len(sent) - 1) / (sent[-1] - sent[0])
    assert achieved >= rate / (1.006 + latency * limiter.ADMISSION_CREDIT_SHARE + 0.01)


@pytest.mark.parametrize("rate", [5, 50])
def test_requests_held_up_among_requests_in_flight_never_overfill_a_server_second(clock, rate):
    # Every 7th request held 0.4 s on its way in, the first one included: its own slow
    # round trip must not count as proof that it was admitted early.
    limiter = RateLimiter(rate, max_in_flight=8)
    _, admitted, _ = run_in_flight(
        clock, limiter, rate * 40, way_in=0.03, held_every=7, held=0.4, jitter=0.01
    )
    assert busiest_server_second(admitted) <= rate
    # The first request of a run held up alone (one in flight): nothing else vouches
    # for a shorter way in yet.
    limiter = RateLimiter(rate, max_in_flight=1)
    _, admitted, _ = run_in_flight(clock, limiter, rate * 4, way_in=0.0, held_every=1_000, held=0.4)
    assert busiest_server_second(admitted) <= rate


def test_no_more_requests_in_flight_than_allowed(clock):
    # Slow answers (0.5 s) at 50/s would need 25 in flight; the setting caps it.
    limiter = RateLimiter(50, max_in_flight=3)
    sent, _, most = run_in_flight(clock, limiter, 200, way_in=0.5)
    assert most == 3
    limiter = RateLimiter(50, max_in_flight=1)
    sent, _, most = run_in_flight(clock, limiter, 50, way_in=0.01)
    assert most == 1
    assert all(b - a >= 0.01 for a, b in pairwise(sent))  # one at a time: after each answer


def test_a_pause_holds_requests_already_waiting_for_their_slot(clock):
    limiter = RateLimiter(50, max_in_flight=8)
    wait_for_slot(clock, limiter)
    limiter.pause(2.0)
    assert limiter.delay() == pytest.approx(2.0)
