"""The hand-written baseline: page Kaiten's /cards with `requests`, load with PostgreSQL COPY.

What someone would write instead of a Singer pipeline: one `requests.Session`, the same
pinned order and keyset paging as the tap (live cards, then archived ones), and one COPY
stream into a plain table whose columns are typed from the first page (nested objects and
arrays as jsonb, timestamps as timestamptz). No upsert, no state, no schema messages: the
cheapest correct full load, so the pipeline's throughput can be compared with it.

    .venv/bin/python bench/baseline_copy.py --api-url URL --token TOKEN --database-url URL

Prints one JSON line: cards, seconds, requests, cards_per_second. With --fetch-only it
only pages the API (no database): what the sandbox serves to one sequential client.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterator

import orjson
import psycopg
import requests
from psycopg import sql
from psycopg.types.json import Jsonb

# Kaiten's timestamps: ISO 8601 UTC with milliseconds.
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$")
PAGE = 100


def pages(
    session: requests.Session, url: str, params: dict[str, str], counter: list[int]
) -> Iterator[list[dict]]:
    """Keyset paging on (updated, id): right whether updated_after is strict or inclusive."""
    after: tuple[str, int] | None = None
    while True:
        query = dict(params, order_by="updated,id", order_direction="asc,asc", limit=str(PAGE))
        if after:
            query["updated_after"] = after[0]
        response = session.get(url, params=query, timeout=60)
        counter[0] += 1
        response.raise_for_status()
        rows = response.json() or []
        fresh = [r for r in rows if after is None or (r["updated"], r["id"]) > after]
        if fresh:
            yield fresh
            after = (fresh[-1]["updated"], fresh[-1]["id"])
        if len(rows) < PAGE:
            return
        if not fresh:
            raise SystemExit("more than a page of cards share one millisecond: not handled here")


def column_type(values: list[object]) -> str:
    seen = [v for v in values if v is not None]
    if not seen:
        return "text"
    if all(isinstance(v, bool) for v in seen):
        return "boolean"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in seen):
        return "bigint"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in seen):
        return "double precision"
    if all(isinstance(v, (dict, list)) for v in seen):
        return "jsonb"
    if all(isinstance(v, str) and TIMESTAMP.match(v) for v in seen):
        return "timestamptz"
    return "text"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-url", help="company host, without /api/latest")
    parser.add_argument("--token")
    parser.add_argument("--database-url")
    parser.add_argument("--schema", default="baseline")
    parser.add_argument(
        "--fetch-only",
        action="store_true",
        help="page the API and decode the JSON, load nothing: the sandbox's one-client ceiling",
    )
    args = parser.parse_args()
    if args.fetch_only and args.api_url and args.token:
        return fetch_only(args.api_url, args.token)
    if not (args.api_url and args.token and args.database_url):
        # `make bench` runs every bench/*.py: this one is the baseline that
        # pipeline_bench.py runs beside the pipeline, on the same sandbox.
        print(
            "baseline_copy.py: run by bench/pipeline_bench.py (or pass --api-url, --token,"
            " --database-url)"
        )
        return 0

    started = time.perf_counter()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {args.token}"
    url = args.api_url.rstrip("/") + "/api/latest/cards"
    partitions = [{"condition": "1"}, {"condition": "2", "archived": "true"}]
    cards = 0
    counter = [0]
    with psycopg.connect(args.database_url) as conn:
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(args.schema)))
        table = sql.Identifier(args.schema, "cards")
        conn.execute(sql.SQL("drop table if exists {}").format(table))
        columns: list[str] | None = None
        jsonb: set[str] = set()
        copy_cm = copy = None
        for params in partitions:
            for rows in pages(session, url, params, counter):
                if columns is None:
                    # Typed from the first page: what a hand-written loader would do.
                    keys = list(dict.fromkeys(k for r in rows for k in r))
                    types = {k: column_type([r.get(k) for r in rows]) for k in keys}
                    columns = keys
                    jsonb = {k for k, t in types.items() if t == "jsonb"}
                    conn.execute(
                        sql.SQL("create table {} ({})").format(
                            table,
                            sql.SQL(", ").join(
                                sql.SQL("{} {}").format(sql.Identifier(k), sql.SQL(types[k]))
                                for k in keys
                            ),
                        )
                    )
                    copy_cm = conn.cursor().copy(
                        sql.SQL("copy {} ({}) from stdin").format(
                            table, sql.SQL(", ").join(map(sql.Identifier, keys))
                        )
                    )
                    copy = copy_cm.__enter__()
                for r in rows:
                    copy.write_row(
                        [
                            Jsonb(r.get(k), dumps=orjson.dumps) if k in jsonb else r.get(k)
                            for k in columns
                        ]
                    )
                cards += len(rows)
        if copy_cm is not None:
            copy_cm.__exit__(None, None, None)
        conn.commit()
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "cards": cards,
                "seconds": round(elapsed, 3),
                "requests": counter[0],
                "cards_per_second": round(cards / elapsed, 1),
            }
        )
    )
    return 0


def fetch_only(api_url: str, token: str) -> int:
    """The same requests and JSON decoding as main(), nothing loaded."""
    started = time.perf_counter()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    url = api_url.rstrip("/") + "/api/latest/cards"
    counter = [0]
    cards = 0
    for params in ({"condition": "1"}, {"condition": "2", "archived": "true"}):
        for rows in pages(session, url, params, counter):
            cards += len(rows)
    elapsed = time.perf_counter() - started
    print(json.dumps({"cards": cards, "seconds": round(elapsed, 3), "requests": counter[0],
                      "cards_per_second": round(cards / elapsed, 1)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
