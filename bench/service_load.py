"""Benchmark: the sync service under webhook load on loopback (issue #8).

Targets: 1,000 webhook calls answered within 10 s, none lost, memory stable;
a burst of 500 events coalesced into one or two runs. Bounded in count and in
time: it sends a fixed number of calls to 127.0.0.1 and stops by itself.

    .venv/bin/python bench/service_load.py [--calls 1000] [--threads 4]

The run command is a no-op (`python -c pass` after a short sleep): this
measures the service, not the pipeline. Exit code 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

# bench/ is on sys.path when a benchmark runs as a script: one way to start the service.
from service_webhook_latency import start_service as start_logged_service

TARGET_SECONDS = 10.0
DEADLINE_SECONDS = 60.0
NOOP_RUN = f"{sys.executable} -c 'import time; time.sleep(0.3)'"


def rss_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1))


def start_service(workdir: Path, secret: str) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAITEN_")}
    env.update(
        KAITEN_WEBHOOK_SECRET=secret,
        KAITEN_PROJECT_ROOT=str(workdir),
        KAITEN_SERVICE_SYNC_COMMAND=NOOP_RUN,
        KAITEN_SERVICE_FULL_SYNC_COMMAND=NOOP_RUN,
        KAITEN_SERVICE_DEBOUNCE_SECONDS="1",
        KAITEN_SERVICE_MAX_DELAY_SECONDS="5",
    )
    env.pop("DATABASE_URL", None)
    process, base = start_logged_service(env, workdir)
    while True:
        try:
            requests.get(base + "/healthz", timeout=1)
            return process, base
        except requests.ConnectionError:
            time.sleep(0.05)


def fire(url: str, calls: int, threads: int) -> tuple[list[int], list[float], float]:
    deadline = time.monotonic() + DEADLINE_SECONDS

    def worker(offset: int) -> list[tuple[int, float]]:
        out = []
        with requests.Session() as http:
            for n in range(offset, calls, threads):
                if time.monotonic() > deadline:
                    break
                body = {
                    "event": "card:update",
                    "data": {"old": {"id": n}, "changes": {"title": "x"}},
                }
                t0 = time.perf_counter()
                code = http.post(url, json=body, timeout=10).status_code
                out.append((code, time.perf_counter() - t0))
        return out

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = [r for chunk in pool.map(worker, range(threads)) for r in chunk]
    return [c for c, _ in results], [t for _, t in results], time.perf_counter() - started


def wait_idle(base: str, auth: dict[str, str]) -> dict:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        status = requests.get(base + "/api/sync/status", headers=auth, timeout=10).json()
        if status["current_run"] is None and status["pending"] is None:
            return status
        time.sleep(0.2)
    sys.exit("service never went idle")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    secret = secrets.token_urlsafe(24)
    auth = {"Authorization": f"Bearer {secret}"}
    ok = True
    with tempfile.TemporaryDirectory(prefix="kaiten-service-bench-") as tmp:
        process, base = start_service(Path(tmp), secret)
        url = f"{base}/api/webhooks/kaiten/{secret}"
        try:
            fire(url, 100, args.threads)  # warm-up
            wait_idle(base, auth)
            rss0 = rss_kib(process.pid)
            print(
                f"{'batch':<8}{'calls':>7}{'202s':>7}{'seconds':>9}{'calls/s':>9}"
                f"{'p50 ms':>8}{'p99 ms':>8}{'RSS MiB':>9}"
            )
            for batch in (1, 2, 3):
                codes, latencies, seconds = fire(url, args.calls, args.threads)
                status = wait_idle(base, auth)
                rss = rss_kib(process.pid)
                p99 = statistics.quantiles(latencies, n=100)[98] * 1000
                print(
                    f"{batch:<8}{len(codes):>7}{codes.count(202):>7}{seconds:>9.2f}"
                    f"{len(codes) / seconds:>9.0f}"
                    f"{statistics.median(latencies) * 1000:>8.1f}{p99:>8.1f}{rss / 1024:>9.1f}"
                )
                ok &= codes.count(202) == args.calls and seconds <= TARGET_SECONDS
            received = status["webhooks"]["received"]
            handed = sum(run["webhook_events"] for run in status["runs"])
            growth = (rss - rss0) / 1024
            print(
                f"received {received}, handed to runs {handed}, "
                f"runs {len(status['runs'])}, RSS growth {growth:+.1f} MiB"
            )
            ok &= received == handed == 100 + 3 * args.calls and growth < 8

            # A burst of 500 within a few seconds: how many runs does it cause?
            before = len(status["runs"])
            codes, _, seconds = fire(url, 500, args.threads)
            status = wait_idle(base, auth)
            burst_runs = len(status["runs"]) - before
            print(f"burst of 500 in {seconds:.2f}s -> {burst_runs} run(s)")
            ok &= codes.count(202) == 500 and 1 <= burst_runs <= 2
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)
    print("PASS" if ok else "FAIL: a target was missed")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
