"""Benchmark tap-kaiten alone: records/s and peak memory against the sandbox.

The tap runs as its own process (`tap-kaiten --config ... --catalog ...`) writing to
/dev/null, against a sandbox in another process (`kaiten-sandbox --rate-limit 0`), so
neither competes for the other's interpreter. The tap's memory is sampled from /proc
every 20 ms (its own RSS, not inherited from this process). Reported:
- records/s for the cards stream at 100,000 cards (the issue's figure; checklists off);
- the tap process's peak RSS at 10,000 and 100,000 cards (must not grow with cards);
- for context, a full sync of every stream (card children included) at 10,000 cards;
- how much of a rate-limited API's bound a full sync uses (sandbox and tap both at 5/s).

Run: `make bench` or `.venv/bin/python bench/tap_bench.py [--cards 100000 --small 10000]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import requests

TAP_BIN = Path(sys.executable).with_name("tap-kaiten")
SANDBOX_BIN = Path(sys.executable).with_name("kaiten-sandbox")


class SandboxProcess:
    """`kaiten-sandbox` on a free port, stopped with SIGTERM on exit."""

    def __init__(self, cards: int, rate_limit: int = 0) -> None:
        self.cards = cards
        self.rate_limit = rate_limit

    def __enter__(self) -> SandboxProcess:
        self.process = subprocess.Popen(  # noqa: S603
            [
                str(SANDBOX_BIN),
                *("--port", "0", "--cards", str(self.cards)),
                *("--rate-limit", str(self.rate_limit)),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        values = {}
        while len(values) < 2:
            line = self.process.stdout.readline()
            if not line:
                raise SystemExit("kaiten-sandbox exited before printing its URL")
            key, _, value = line.strip().partition("=")
            if key in {"KAITEN_API_URL", "KAITEN_API_TOKEN"}:
                values[key] = value
        self.base_url, self.token = values["KAITEN_API_URL"], values["KAITEN_API_TOKEN"]
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)

    def control(self, method: str, path: str) -> dict:
        response = requests.request(method, self.base_url + path, timeout=300)
        response.raise_for_status()
        return response.json()

    def truth(self) -> dict:
        return self.control("GET", "/_sandbox/state")

    def stats(self) -> dict:
        return self.control("GET", "/_sandbox/stats")

    def reset_stats(self) -> None:
        self.control("POST", "/_sandbox/stats/reset")


def watch(
    process: subprocess.Popen, on_tick: Callable[[], None] | None = None
) -> tuple[int, Any, int]:
    """Wait for the process to end: its wait status, its own rusage and its peak RSS.

    wait4 gives the child's own CPU time once it ends; its RSS is sampled meanwhile
    (ru_maxrss would carry this process's own peak across fork).
    """
    peak_rss = 0
    watched = psutil.Process(process.pid)
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            return status, usage, peak_rss
        with contextlib.suppress(psutil.NoSuchProcess):
            peak_rss = max(peak_rss, watched.memory_info().rss)
        if on_tick is not None:
            on_tick()
        time.sleep(0.02)


def catalog_for(config_path: Path, streams: set[str] | None) -> dict:
    discovered = subprocess.run(  # noqa: S603
        [str(TAP_BIN), "--config", str(config_path), "--discover"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    catalog = json.loads(discovered)
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = streams is None or entry["tap_stream_id"] in streams
    return catalog


def run_tap(
    sandbox: SandboxProcess, workdir: Path, streams: set[str] | None, rate: int = 1000
) -> dict:
    """One tap run to /dev/null; wall time and the tap's own peak RSS."""
    settings = {
        "api_url": sandbox.base_url,
        "api_token": sandbox.token,
        "requests_per_second": rate,  # 1000: the client-side limit is effectively off
    }
    if streams == {"cards"}:
        # The cards figure measures the /cards list itself; checklists would add one
        # GET /cards/{id} per card that has some (they are in the all-streams run).
        settings["include_checklists"] = False
    config = workdir / "config.json"
    config.write_text(json.dumps(settings))
    catalog = workdir / "catalog.json"
    catalog.write_text(json.dumps(catalog_for(config, streams)))
    sandbox.reset_stats()
    env = {**os.environ, "TAP_KAITEN_LOGLEVEL": "WARNING"}
    with open(os.devnull, "wb") as devnull, open(workdir / "stderr.log", "wb") as errors:
        started = time.perf_counter()
        process = subprocess.Popen(  # noqa: S603
            [str(TAP_BIN), "--config", str(config), "--catalog", str(catalog)],
            stdout=devnull,
            stderr=errors,
            env=env,
        )
        first_request_at = None

        def note_first_request() -> None:
            nonlocal first_request_at
            if first_request_at is None and sandbox.stats()["requests_total"]:
                first_request_at = time.perf_counter()  # interpreter start-up is over

        status, usage, peak_rss = watch(process, note_first_request)
        finished = time.perf_counter()
        elapsed = finished - started
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = (workdir / "stderr.log").read_text()[-2000:]
        raise SystemExit(f"tap-kaiten failed:\n{tail}")
    stats = sandbox.stats()
    return {
        "seconds_after_first_request": finished - (first_request_at or started),
        "rate_limited": stats["rate_limited"],
        "max_requests_in_any_1s": stats["max_requests_in_any_1s"],
        "seconds": elapsed,
        "peak_rss_mib": peak_rss / 2**20,
        "tap_cpu_seconds": usage.ru_utime + usage.ru_stime,
        "requests": stats["requests_total"],
    }


def expected_records(sandbox: SandboxProcess, streams: set[str] | None) -> int:
    truth = sandbox.truth()
    if streams is None:
        flat_columns = sum(1 + len(c["subcolumns"]) for c in truth["columns"])
        skip = {"deleted_card_ids", "space_boards", "columns"}
        return flat_columns + sum(len(v) for k, v in truth.items() if k not in skip)
    return sum(len(truth[name]) for name in streams)


def measure(cards: int, streams: set[str] | None, label: str) -> dict:
    print(f"[{label}] starting sandbox with {cards:,} cards ...", file=sys.stderr)
    with SandboxProcess(cards) as sandbox, tempfile.TemporaryDirectory(prefix="tap-bench-") as tmp:
        records = expected_records(sandbox, streams)
        result = run_tap(sandbox, Path(tmp), streams)
    result.update(label=label, cards=cards, records=records)
    result["records_per_second"] = records / result["seconds"]
    # Throughput the tap itself sustains, whatever the sandbox's rendering speed.
    result["records_per_tap_cpu_second"] = records / result["tap_cpu_seconds"]
    print(
        f"[{label}] {records:,} records in {result['seconds']:.1f} s = "
        f"{result['records_per_second']:,.0f} records/s "
        f"(tap CPU {result['tap_cpu_seconds']:.1f} s = "
        f"{result['records_per_tap_cpu_second']:,.0f} records per CPU-second); "
        f"peak RSS {result['peak_rss_mib']:.0f} MiB; {result['requests']:,} requests",
        file=sys.stderr,
    )
    return result


def measure_rate_limited(cards: int, limit: int) -> dict:
    """A full sync against a sandbox limiting at `limit`/s, the tap set to the same rate."""
    label = f"rate-limited-{limit}"
    print(f"[{label}] starting sandbox with {cards:,} cards ...", file=sys.stderr)
    with (
        SandboxProcess(cards, rate_limit=limit) as sandbox,
        tempfile.TemporaryDirectory(prefix="tap-bench-") as tmp,
    ):
        result = run_tap(sandbox, Path(tmp), None, rate=limit)
    # Counted from the first request the sandbox saw: interpreter start-up is not the
    # limiter's doing (it is within `seconds`).
    result.update(label=label, cards=cards, limit=limit)
    busy = result["seconds_after_first_request"]
    result["utilisation"] = (result["requests"] - 1) / busy / limit
    print(
        f"[{label}] {result['requests']:,} requests in {busy:.1f} s = "
        f"{result['utilisation']:.2f}x the {limit}/s bound; {result['rate_limited']} answered 429; "
        f"busiest second {result['max_requests_in_any_1s']}",
        file=sys.stderr,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--skip-full", action="store_true", help="skip the all-streams run")
    args = parser.parse_args()

    results = [
        measure(args.small, {"cards"}, "cards-small"),
        measure(args.cards, {"cards"}, "cards-large"),
    ]
    if not args.skip_full:
        results.append(measure(args.small, None, "all-streams-small"))
    limited = measure_rate_limited(60, 5)
    small, large = results[0], results[1]
    summary = {
        "records_per_second_cards": round(large["records_per_second"]),
        "records_per_tap_cpu_second_cards": round(large["records_per_tap_cpu_second"]),
        "peak_rss_mib": {
            f"{small['cards']}": round(small["peak_rss_mib"], 1),
            f"{large['cards']}": round(large["peak_rss_mib"], 1),
        },
        "rss_growth_ratio": round(large["peak_rss_mib"] / small["peak_rss_mib"], 2),
        "rate_limited_utilisation": round(limited["utilisation"], 2),
        "rate_limited_429s": limited["rate_limited"],
        "runs": [*results, limited],
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
