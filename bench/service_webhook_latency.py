"""Benchmark: how long a card change takes to reach PostgreSQL through the webhook path.

Issue #8: "The card's new state reaches PostgreSQL within a minute at 5
requests/s." Starts the sandbox, an embedded PostgreSQL (or DATABASE_URL's
server), a throw-away copy of the Meltano project and the sync service running
the real `meltano run kaiten-sync`; loads once with a full sync; then for
--seconds changes one card every 1/--rate s and sends Kaiten's webhook for it,
and watches kaiten.cards until each change has landed. Bounded in count and
time; everything stays on 127.0.0.1.

    .venv/bin/python bench/service_webhook_latency.py [--rate 5] [--seconds 60] [--cards 1000]

Exit code 1 if any change took longer than --target seconds (default 60) or never landed.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psycopg
import requests

from kaiten_local.postgres import EmbeddedPostgres, create_database
from kaiten_local.project import PluginsNotInstalledError, clean_environ, scratch_project
from kaiten_sandbox import Sandbox


def meltano_project(root: Path) -> Path:
    try:
        return scratch_project(root)
    except PluginsNotInstalledError as err:
        sys.exit(str(err))


def start_service(env: dict[str, str], root: Path) -> tuple[subprocess.Popen[bytes], str]:
    log = root / "service.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "kaiten_service", "--port", "0", "--no-access-log"],
            env=env,
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 30
    while not (match := re.search(r"listening on (http://\S+) ", log.read_text())):
        if process.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"service did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return process, match.group(1)


def versions(database_url: str, ids: list[int]) -> dict[int, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("select id, version from kaiten.cards where id = any(%s)", [ids])
        return dict(rows.fetchall())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rate", type=float, default=5.0, help="card changes (and webhooks) per second"
    )
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="how long to keep changing cards"
    )
    parser.add_argument("--cards", type=int, default=1000, help="sandbox workspace size")
    parser.add_argument(
        "--api-rate", type=int, default=50, help="Kaiten requests/s (sandbox limit = tap limit)"
    )
    parser.add_argument(
        "--target", type=float, default=60.0, help="seconds a change may take to land"
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="kaiten-latency-"))
    server = None
    if not (base_url := os.environ.get("DATABASE_URL")):
        server = EmbeddedPostgres(tmp / "pg")
        base_url = server.start()
    database_url = create_database(base_url)
    sandbox = Sandbox(seed=5, cards=args.cards, rate_limit=args.api_rate).start(port=0)
    project = meltano_project(tmp / "project")
    secret = secrets.token_urlsafe(24)
    env = clean_environ()
    env.update(
        KAITEN_WEBHOOK_SECRET=secret,
        KAITEN_PROJECT_ROOT=str(project),
        KAITEN_API_URL=sandbox.base_url,
        KAITEN_API_TOKEN=sandbox.token,
        DATABASE_URL=database_url,
        TAP_KAITEN_REQUESTS_PER_SECOND=str(args.api_rate),
        DBT_LOG_PATH=str(project / ".meltano" / "dbt-logs"),
    )
    process, base = start_service(env, project)
    auth = {"Authorization": f"Bearer {secret}"}
    http = requests.Session()

    def status() -> dict:
        return http.get(base + "/api/sync/status", headers=auth, timeout=10).json()

    ok = True
    try:
        started = time.monotonic()
        http.post(base + "/api/sync/full", headers=auth, timeout=10).raise_for_status()
        while (s := status())["current_run"] is not None:
            time.sleep(1)
        full = s["runs"][0]
        print(
            f"full sync: {full['outcome']} in {full['duration_seconds']:.1f}s, "
            f"{full['records'].get('cards', 0)} cards"
        )
        if not full["records"].get("cards"):
            sys.exit(f"the full sync loaded no cards: {full['error']}")
        if full["outcome"] != "success":
            # Cards land before the transform runs: the latency is still measurable.
            print(f"warning: the full sync failed after loading: {full['error']}")

        # card id -> (version written, time sent); a later change of the same card supersedes.
        sent: dict[int, tuple[int, float]] = {}
        landed: dict[int, float] = {}
        latencies: list[float] = []
        url = f"{base}/api/webhooks/kaiten/{secret}"
        interval = 1.0 / args.rate
        next_at = time.monotonic()
        stop_sending = next_at + args.seconds
        hard_stop = stop_sending + max(3 * args.target, 180)
        last_check = 0.0
        while time.monotonic() < hard_stop:
            now = time.monotonic()
            if now < stop_sending and now >= next_at:
                [card_id] = sandbox.mutate(update=1)["updated"]
                version = next(
                    c["version"] for c in sandbox.truth("cards")["cards"] if c["id"] == card_id
                )
                body = {
                    "event": "card:update",
                    "data": {"old": {"id": card_id}, "changes": {"version": version}},
                }
                http.post(url, json=body, timeout=10).raise_for_status()
                sent[card_id] = (version, time.monotonic())
                landed.pop(card_id, None)
                next_at += interval
            if now - last_check >= 1.0:
                last_check = now
                waiting = [i for i in sent if i not in landed]
                for card_id, version in versions(database_url, waiting).items():
                    if version >= sent[card_id][0]:
                        landed[card_id] = time.monotonic()
                        latencies.append(landed[card_id] - sent[card_id][1])
                if now >= stop_sending and len(landed) == len(sent):
                    break
            time.sleep(min(0.02, max(0.0, next_at - time.monotonic())))
        lost = [i for i in sent if i not in landed]
        runs = [r for r in status()["runs"] if r["trigger"] == "webhook"]
        durations = [r["duration_seconds"] for r in runs]
        outcomes = Counter(r["outcome"] for r in runs)
        print(
            f"changes: {len(sent)} cards changed at {args.rate}/s for {args.seconds:.0f}s; "
            f"webhook runs: {len(runs)} {dict(outcomes)}"
        )
        if durations:
            print(
                f"webhook run duration: median {statistics.median(durations):.1f}s, "
                f"max {max(durations):.1f}s"
            )
        if latencies:
            print(
                f"change -> kaiten.cards: median {statistics.median(latencies):.1f}s, "
                f"max {max(latencies):.1f}s (±1 s polling), target {args.target:.0f}s"
            )
        if lost:
            print(f"never landed: {len(lost)} cards, e.g. {lost[:5]}")
        ok = not lost and bool(latencies) and max(latencies) <= args.target
        print(f"total bench time {time.monotonic() - started:.0f}s")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        sandbox.stop()
        if server:
            server.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
    print("PASS" if ok else "FAIL: a change took too long or never landed")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
