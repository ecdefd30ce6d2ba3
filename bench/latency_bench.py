"""Benchmark tap-kaiten alone against a rate-limited API that answers slowly (issue #7).

Real Kaiten answers in 30-100 ms or more; the sandbox answers in ~1 ms. This runs the tap
(`tap-kaiten --config ...`, every stream, full sync, output to /dev/null) against
`kaiten-sandbox --rate-limit RATE` with `latency_ms` added to every answer (before the
sandbox admits the request: the worst case for a client-side limiter), once one request
at a time (`max_parallel_requests` 1) and once with requests in flight together (the
tap's default, or --parallel). Reported per run: wall time of the tap process, the API
bound (the fewest requests that read the workspace, counted from the sandbox's truth as
in pipeline_bench.py, divided by RATE), their ratio, requests made, 429s, the busiest
second as the sandbox counted it, the most requests the sandbox handled at once, and the
tap process's CPU seconds and peak RSS.

Run: `.venv/bin/python bench/latency_bench.py` (defaults: 1,000 cards at 50/s with 0, 30
and 100 ms, and 300 cards at 5/s with 100 ms; ~10 min), or e.g.
`.venv/bin/python bench/latency_bench.py --runs 1000@50:30 --parallel 1 8`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline_bench import SandboxProcess, minimum_requests
from tap_bench import watch
from tap_kaiten.client import DEFAULT_PARALLEL_REQUESTS

TAP_BIN = Path(sys.executable).with_name("tap-kaiten")
DEFAULT_RUNS = ["1000@50:0", "1000@50:30", "1000@50:100", "300@5:100"]


def most_in_flight(log: list[dict]) -> int:
    events = sorted([(e["at"], 1) for e in log] + [(e["answered_at"], -1) for e in log])
    current = most = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


def run_tap(sandbox: SandboxProcess, workdir: Path, rate: int, parallel: int) -> dict:
    config = workdir / "config.json"
    config.write_text(
        json.dumps(
            {
                "api_url": sandbox.url,
                "api_token": sandbox.token,
                "requests_per_second": rate,
                "max_parallel_requests": parallel,
            }
        )
    )
    sandbox.control("POST", "/_sandbox/stats/reset")
    env = {**os.environ, "TAP_KAITEN_LOGLEVEL": "WARNING"}
    with open(os.devnull, "wb") as devnull, open(workdir / "stderr.log", "wb") as errors:
        started = time.perf_counter()
        process = subprocess.Popen(  # noqa: S603
            [str(TAP_BIN), "--config", str(config)], stdout=devnull, stderr=errors, env=env
        )
        status, usage, peak_rss = watch(process)
        seconds = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit("tap-kaiten failed:\n" + (workdir / "stderr.log").read_text()[-2000:])
    stats = sandbox.control("GET", "/_sandbox/stats")
    log = sandbox.control("GET", "/_sandbox/requests")
    log = log["requests"] if isinstance(log, dict) else log
    return {
        "seconds": seconds,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": peak_rss / 2**20,
        "requests": stats["requests_total"],
        "rate_limited": stats["rate_limited"],
        "busiest_second": stats["max_requests_in_any_1s"],
        "most_in_flight": most_in_flight([e for e in log if e.get("answered_at")]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, help="CARDS@RATE:LATENCY_MS")
    parser.add_argument("--parallel", nargs="+", type=int, default=[1, DEFAULT_PARALLEL_REQUESTS])
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(
        f"tap-kaiten alone (output to /dev/null), every stream, full sync; {platform.node()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, load average {load:.2f} "
        f"at start; command: {' '.join(['.venv/bin/python', *sys.argv])}\n"
    )
    print(
        "| cards | limit | latency ms | max_parallel_requests | wall s | minimum requests | "
        "API bound s | ratio | requests | 429s | busiest 1 s | most in flight | tap CPU s | "
        "tap peak RSS MiB | load |"
    )
    print("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for spec in args.runs:
        cards_rate, _, latency = spec.partition(":")
        cards, _, rate = cards_rate.partition("@")
        cards_n, rate_n, latency_ms = int(cards), int(rate), int(latency or 0)
        sandbox = SandboxProcess(cards_n, rate_limit=rate_n)
        try:
            with tempfile.TemporaryDirectory(prefix="latency-bench-") as tmp:
                measure(sandbox, Path(tmp), args.parallel, cards_n, rate_n, latency_ms)
        finally:
            sandbox.stop()


def measure(
    sandbox: SandboxProcess,
    workdir: Path,
    parallels: list[int],
    cards_n: int,
    rate_n: int,
    latency_ms: int,
) -> None:
    minimum = sum(minimum_requests(sandbox).values())
    bound = minimum / rate_n
    sandbox.control("POST", "/_sandbox/config", {"latency_ms": latency_ms})
    for parallel in parallels:
        load = os.getloadavg()[0]
        result = run_tap(sandbox, workdir, rate_n, parallel)
        print(
            f"| {cards_n:,} | {rate_n}/s | {latency_ms} | {parallel} | "
            f"{result['seconds']:.1f} | {minimum:,} | {bound:.1f} | "
            f"**{result['seconds'] / bound:.3f}** | {result['requests']:,} | "
            f"{result['rate_limited']} | {result['busiest_second']} | "
            f"{result['most_in_flight']} | {result['cpu']:.1f} | {result['peak_rss_mib']:.0f} | "
            f"{load:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
