"""A stand-in for `meltano run kaiten-sync` that really writes to PostgreSQL.

The service tests inject it through KAITEN_SERVICE_SYNC_COMMAND so they can
check what the service does with a run (when it starts one, that runs never
overlap, how output and exit codes are reported) without the full pipeline.
Each run is a row in `service_test_runs`; like the pipeline it refuses to run
while another run holds the advisory lock.

    python fake_sync.py <kind>
    env: DATABASE_URL, FAKE_SYNC_SECONDS (default 0.3), FAKE_SYNC_EXIT (default 0),
         FAKE_SYNC_PRINT (an extra line to print, e.g. to test redaction)
"""

from __future__ import annotations

import json
import os
import sys
import time

import psycopg

LOCK_KEY = 4_242_001


def main() -> int:
    kind = sys.argv[1] if len(sys.argv) > 1 else "incremental"
    seconds = float(os.environ.get("FAKE_SYNC_SECONDS", "0.3"))
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "create table if not exists service_test_runs ("
            " id serial primary key, kind text not null, pid int not null,"
            " started_at timestamptz not null default clock_timestamp(), ended_at timestamptz)"
        )
        if not conn.execute("select pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()[0]:
            print("ERROR another sync run holds the lock: refusing to start", flush=True)
            return 3
        run_id = conn.execute(
            "insert into service_test_runs (kind, pid) values (%s, %s) returning id",
            [kind, os.getpid()],
        ).fetchone()[0]
        print(f"fake sync {run_id} ({kind}) started", flush=True)
        if extra := os.environ.get("FAKE_SYNC_PRINT"):
            print(extra, flush=True)
        time.sleep(seconds)
        # What `meltano --log-format=json run` prints (captured from a real run):
        # the tap's metric, then the loader's echo of it, which must not count twice.
        tap = {"consumer": False, "producer": True, "string_id": "tap-kaiten", "name": "tap-kaiten"}
        loader = {"consumer": True, "producer": False, "string_id": "target-postgres"}
        loader["name"] = "target-postgres"
        for who in (tap, loader):
            point = {
                "type": "counter",
                "metric": "record_count",
                "value": 7,
                "tags": {"stream": "cards"},
            }
            print(json.dumps({**who, "metric_info": point, "event": "METRIC"}), flush=True)
        # The SDK's plain text form, as a command without JSON logs prints it.
        prefix = "2026-12-04T20:21:09.711065Z [info     ]"
        point = {
            "type": "counter",
            "metric": "record_count",
            "value": 3,
            "tags": {"stream": "users"},
        }
        print(f"{prefix} tap-kaiten   METRIC: {json.dumps(point)}", flush=True)
        print(f"{prefix} target-postgres METRIC: {json.dumps(point)}", flush=True)
        conn.execute(
            "update service_test_runs set ended_at = clock_timestamp() where id = %s", [run_id]
        )
    return int(os.environ.get("FAKE_SYNC_EXIT", "0"))


if __name__ == "__main__":
    raise SystemExit(main())
