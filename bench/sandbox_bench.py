"""Benchmark the Kaiten sandbox: start-up time and memory at 100,000 cards, and the
requests/s it serves with rate limiting off (100-card pages, several concurrent clients).

Not a test: it prints figures. The sandbox runs as its own process (the CLI), as in the
demo, so its memory is measured alone and clients do not share its interpreter lock.

    .venv/bin/python bench/sandbox_bench.py [--cards 100000] [--clients 4] [--seconds 8]
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import requests

PINNED = {"order_by": "updated,id", "order_direction": "asc,asc", "archived": "true"}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User+system CPU the process has used: unlike wall time, not inflated by a busy box."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_sandbox(cards: int) -> tuple[subprocess.Popen[str], str, str, float]:
    began = time.perf_counter()
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "kaiten_sandbox", "--port", "0", "--cards", str(cards),
         "--rate-limit", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    settings = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(2))
    elapsed = time.perf_counter() - began
    return proc, settings["KAITEN_API_URL"], settings["KAITEN_API_TOKEN"], elapsed


def _client(url: str, token: str, total: int, start: int, seconds: float) -> tuple[int, int]:
    """Page /cards back to back for `seconds`; return (requests, bytes). Runs in its own
    process with a bare http.client so the client, not the server, stays cheap."""
    split = urlsplit(url)
    conn = http.client.HTTPConnection(split.hostname, split.port, timeout=60)
    headers = {"Authorization": f"Bearer {token}"}
    query = "&".join(f"{k}={v}" for k, v in PINNED.items())
    done = size = 0
    offset = start % max(total, 1)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        conn.request("GET", f"/api/latest/cards?{query}&limit=100&offset={offset}", headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status} from the sandbox")
        done += 1
        size += len(body)
        offset = offset + 100 if offset + 100 < total else 0
    conn.close()
    return done, size


def load(url: str, token: str, total: int, clients: int, seconds: float) -> tuple[int, int, float]:
    """`clients` processes page /cards concurrently, each from its own offset range."""
    with ProcessPoolExecutor(max_workers=clients) as pool:
        began = time.perf_counter()
        futures = [
            pool.submit(_client, url, token, total, n * total // clients, seconds)
            for n in range(clients)
        ]
        results = [f.result() for f in futures]
        elapsed = time.perf_counter() - began
    return sum(r[0] for r in results), sum(r[1] for r in results), elapsed


def first_page_seconds(url: str, token: str, order: dict[str, str]) -> float:
    began = time.perf_counter()
    response = requests.get(
        f"{url}/api/latest/cards",
        params={**PINNED, **order, "updated_after": "2025-01-01T00:00:00.000Z"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    response.raise_for_status()
    return time.perf_counter() - began


def state_seconds(url: str) -> tuple[float, int]:
    """GET /_sandbox/state?streams=cards: what tests and benchmarks use as ground truth."""
    split = urlsplit(url)
    conn = http.client.HTTPConnection(split.hostname, split.port, timeout=300)
    began = time.perf_counter()
    conn.request("GET", "/_sandbox/state?streams=cards")
    size = len(conn.getresponse().read())
    conn.close()
    return time.perf_counter() - began, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()

    proc, url, token, startup = start_sandbox(args.cards)
    try:
        print(f"sandbox start-up, {args.cards:,} cards: {startup:.2f} s (process start to serving)")
        print(f"sandbox RSS after start-up: {rss_mb(proc.pid):.0f} MB")
        first = first_page_seconds(url, token, {})
        print(f"first /cards page ordered by updated,id (builds the index): {first:.3f} s")
        other = first_page_seconds(url, token, {"order_by": "created", "order_direction": "asc"})
        print(f"first /cards page of an unindexed order (filter + sort all): {other:.3f} s")
        for clients in sorted({1, args.clients}):
            cpu_before = cpu_seconds(proc.pid)
            done, size, elapsed = load(url, token, args.cards, clients, args.seconds)
            cpu_per_request = (cpu_seconds(proc.pid) - cpu_before) / max(done, 1)
            print(
                f"{clients} client process(es), rate limit off, 100-card pages: "
                f"{done / elapsed:.0f} requests/s ({done * 100 / elapsed:,.0f} cards/s, "
                f"{size / elapsed / 1e6:.0f} MB/s); server CPU {cpu_per_request * 1000:.1f} ms"
                f"/request = {1 / max(cpu_per_request, 1e-9):.0f} requests/s per free core"
            )
        print(f"sandbox RSS after load: {rss_mb(proc.pid):.0f} MB")
        seconds, size = state_seconds(url)
        print(
            f"ground truth of all cards (/_sandbox/state?streams=cards): {seconds:.1f} s, "
            f"{size / 1e6:.0f} MB; RSS after: {rss_mb(proc.pid):.0f} MB"
        )
        load_avg = os.getloadavg()[0]
        print(f"(machine: {os.cpu_count()} CPUs, load average {load_avg:.1f} before this ended)")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
