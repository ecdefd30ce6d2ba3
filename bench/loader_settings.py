"""Benchmark: target-postgres load time for the loader choices in meltano.yml.

Captures the tap's output for one sandbox workspace once, then feeds the same Singer
messages to target-postgres (through the DATABASE_URL wrapper, as Meltano runs it) with
`use_copy` and `validate_records` switched, each into a fresh database.

    .venv/bin/python bench/loader_settings.py [--cards 5000]

Needs `make install` (the Meltano plugin venvs). Uses DATABASE_URL's server when set,
else an embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kaiten_pgenv import libpq_env

from kaiten_local.postgres import ROOT, EmbeddedPostgres, create_database, drop_database
from kaiten_sandbox import Sandbox

TAP = ROOT / ".meltano/extractors/tap-kaiten/venv/bin/tap-kaiten"
TARGET = ROOT / ".meltano/loaders/target-postgres/venv/bin/target-postgres"
# meltano.yml's loader config, minus the switches measured here.
BASE = {
    "sqlalchemy_url": "postgresql+psycopg://",
    "default_target_schema": "kaiten",
    "load_method": "upsert",
    "add_record_metadata": True,
    "activate_version": True,
    "hard_delete": True,
    "sanitize_null_text_characters": True,
}
VARIANTS = {
    "COPY, no validation (meltano.yml)": {"use_copy": True, "validate_records": False},
    "INSERT, no validation": {"use_copy": False, "validate_records": False},
    "COPY, validate_records": {"use_copy": True, "validate_records": True},
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cards", type=int, default=5000)
    args = parser.parse_args()
    for exe in (TAP, TARGET):
        if not exe.exists():
            print(f"error: {exe} missing: run make install", file=sys.stderr)
            return 1
    work = Path(tempfile.mkdtemp(prefix="kaiten-bench-"))
    server = None
    if not (server_url := os.environ.get("DATABASE_URL", "")):
        server = EmbeddedPostgres(work / "pg")
        server_url = server.start()
    try:
        messages = work / "messages.jsonl"
        with Sandbox(seed=11, cards=args.cards) as sandbox:
            config = {"api_url": sandbox.base_url, "api_token": sandbox.token}
            (work / "tap.json").write_text(json.dumps(config | {"requests_per_second": 1000}))
            with messages.open("w") as out:
                subprocess.run(  # noqa: S603
                    [str(TAP), "--config", str(work / "tap.json")],
                    stdout=out,
                    stderr=subprocess.DEVNULL,
                    check=True,
                )
        records = sum(1 for line in messages.open() if '"RECORD"' in line[:40])
        print(f"{records} records from {args.cards} cards; load time per loader setting:")
        for name, switches in VARIANTS.items():
            url = create_database(server_url)
            (work / "target.json").write_text(json.dumps(BASE | switches))
            env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | libpq_env(url)
            started = time.monotonic()
            with messages.open() as stdin:
                done = subprocess.run(  # noqa: S603
                    [str(TARGET), "--config", str(work / "target.json")],
                    stdin=stdin,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                    check=False,
                )
            elapsed = time.monotonic() - started
            status = "" if done.returncode == 0 else f"  (exit {done.returncode})"
            print(f"  {name:<36} {elapsed:7.1f} s  {records / elapsed:8.0f} records/s{status}")
            drop_database(server_url, url.rsplit("/", 1)[1].split("?")[0])
    finally:
        if server is not None:
            server.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
