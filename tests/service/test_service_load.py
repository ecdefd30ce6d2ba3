"""Load on loopback, bounded in count and time: every webhook answered, none lost, no leak.

Throughput targets (1,000 calls within 10 s) are measured by bench/service_load.py;
this test checks what must hold at any speed.
"""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor

import requests

CALLS = 1_000
THREADS = 4
# Only a guard so the loop always ends; nothing here is asserted on speed.
DEADLINE_SECONDS = 120
# Everything the service keeps per event is bounded (counters, a 20-entry
# list); a leak of even 8 KiB per call would show as 8 MiB per batch.
MAX_RSS_GROWTH_KIB = 8 * 1024


def fire(service, calls, first_card_id):
    deadline = time.monotonic() + DEADLINE_SECONDS

    def worker(offset):
        codes = []
        with requests.Session() as http:
            for n in range(offset, calls, THREADS):
                if time.monotonic() > deadline:
                    break
                body = {
                    "event": "card:update",
                    "data": {"old": {"id": first_card_id + n}, "changes": {}},
                }
                codes.append(http.post(service.webhook_url(), json=body, timeout=10).status_code)
        return codes

    with ThreadPoolExecutor(THREADS) as pool:
        return [code for codes in pool.map(worker, range(THREADS)) for code in codes]


def test_a_thousand_webhooks_are_all_answered_none_lost_and_memory_stays_flat(service_factory):
    service = service_factory(
        KAITEN_SERVICE_DEBOUNCE_SECONDS="0.5", KAITEN_SERVICE_MAX_DELAY_SECONDS="3"
    )
    assert fire(service, 200, 0) == [202] * 200  # warm-up: imports, buffers, first run
    service.wait_idle()
    rss_before = service.rss_kib()

    assert fire(service, CALLS, 1_000) == [202] * CALLS
    status = service.wait_idle()
    rss_after_first = service.rss_kib()
    assert fire(service, CALLS, 10_000) == [202] * CALLS
    status = service.wait_idle()
    rss_after_second = service.rss_kib()

    total = 200 + 2 * CALLS
    assert status["webhooks"]["received"] == total
    # None lost: every hint was handed to exactly one run.
    assert sum(run["webhook_events"] for run in status["runs"]) == total
    assert all(run["outcome"] == "success" for run in status["runs"])
    runs_in_db = service.db_runs()
    assert len(runs_in_db) == len(status["runs"])
    # Coalesced: far fewer runs than calls, and never two at once.
    assert len(runs_in_db) < 60
    for earlier, later in itertools.pairwise(runs_in_db):
        assert earlier["ended_at"] <= later["started_at"]
    assert rss_after_second - rss_after_first < MAX_RSS_GROWTH_KIB, (
        rss_before,
        rss_after_first,
        rss_after_second,
    )
    assert service.http.get(service.url("/healthz")).status_code == 200
