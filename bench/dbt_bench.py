"""Benchmark the dbt transform: `dbt build` time at 10,000 and 100,000 cards.

For each size: a sandbox workspace is synced into a fresh PostgreSQL database
by the real loader (`meltano run tap-kaiten target-postgres`). Loading 100,000
cards through the tap takes most of an hour on a small machine (one history
and one comments request per card), so sizes above --load-cards are made by
loading --load-cards cards for real and copying the card, history and comment
rows in SQL with shifted ids (same table shapes, same distributions); the
boards and columns then hold proportionally more cards. Then timed:
- `dbt build` after the first (full) load: every model, schema test and unit test;
- `dbt build` again after an incremental sync of a small change (1 % of the cards
  updated, 1 % moved, 0.2 % archived), the every-15-minutes case.
Reported per run: wall time of `meltano invoke dbt-postgres build` and dbt's own
execution time of the heaviest models (from target/run_results.json).

PostgreSQL: DATABASE_URL when set (a database is created per size and dropped
after), otherwise an embedded server in a temporary directory.

Run: `make bench` or `.venv/bin/python bench/dbt_bench.py [--cards 10000 100000]`.
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
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from kaiten_local.postgres import EmbeddedPostgres, create_database, drop_database
from kaiten_local.project import PluginsNotInstalledError, clean_environ, scratch_project
from kaiten_sandbox import Sandbox

MELTANO = str(Path(sys.executable).parent / "meltano")
HEAVY_MODELS = ("cards", "card_column_durations", "board_columns", "boards", "spaces")
RAW_TABLES = ("cards", "card_location_history", "card_comments", "columns", "boards")
# Ids of copied rows: original + copy * ID_SHIFT (Kaiten ids are far below it).
ID_SHIFT = 1_000_000_000
# Per card table: the expression each id-like column gets in copy number `k`.
SHIFTED_ID = "id + {k}::bigint * {shift}"
SHIFTED_CARD_ID = "card_id + {k}::bigint * {shift}"
COPIED_COLUMNS = {
    "cards": {"id": SHIFTED_ID},
    "card_location_history": {"id": "id || '-copy{k}'", "card_id": SHIFTED_CARD_ID},
    "card_comments": {"id": SHIFTED_ID, "card_id": SHIFTED_CARD_ID},
}


def make_project(root: Path) -> Path:
    try:
        return scratch_project(root)
    except PluginsNotInstalledError as err:
        raise SystemExit(str(err)) from None


class Project:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = clean_environ() | env

    def meltano(self, *args: str) -> float:
        started = time.perf_counter()
        result = subprocess.run(  # noqa: S603 - our own meltano, fixed arguments
            [MELTANO, *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - started
        if result.returncode:
            log = Path(tempfile.gettempdir()) / f"dbt-bench-meltano-{os.getpid()}.log"
            log.write_text(result.stdout + result.stderr)
            errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
            sys.stderr.write("\n".join(errors[-20:]) + "\n")
            raise SystemExit(f"meltano {' '.join(args)} failed ({result.returncode}); log: {log}")
        return elapsed

    def run_results(self) -> tuple[float, dict[str, float]]:
        """dbt's own elapsed time for the last invocation, and each model's."""
        path = self.root / ".meltano" / "transformers" / "dbt" / "target" / "run_results.json"
        results = json.loads(path.read_text())
        models = {
            r["unique_id"].split(".")[-1]: r["execution_time"]
            for r in results["results"]
            if r["unique_id"].startswith("model.")
        }
        return results["elapsed_time"], models


def row_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {
            table: conn.execute(f"select count(*) from kaiten.{table}").fetchone()[0]  # noqa: S608
            for table in RAW_TABLES
        }


def replicate(url: str, copies: int) -> None:
    """Add `copies` copies of every card with its history and comments (shifted ids)."""
    with psycopg.connect(url) as conn:
        for table, shifted in COPIED_COLUMNS.items():
            columns = [
                row[0]
                for row in conn.execute(
                    "select column_name from information_schema.columns"
                    " where table_schema = 'kaiten' and table_name = %s order by ordinal_position",
                    (table,),
                )
            ]
            for k in range(1, copies + 1):
                select = ", ".join(
                    shifted[c].format(k=k, shift=ID_SHIFT) if c in shifted else f'"{c}"'
                    for c in columns
                )
                names = ", ".join(f'"{c}"' for c in columns)
                conn.execute(
                    f"insert into kaiten.{table} ({names}) select {select} from kaiten.{table}"  # noqa: S608
                    f" where {'card_id' if 'card_id' in shifted else 'id'} < {ID_SHIFT}"
                )
        conn.commit()
        conn.execute("analyze")


def bench_size(server_url: str, cards: int, load_cards: int, workdir: Path) -> dict[str, Any]:
    url = create_database(server_url)
    loaded = min(cards, load_cards)
    copies = max(cards // loaded - 1, 0)
    sandbox = Sandbox(seed=42, cards=loaded, rate_limit=0).start(port=0)
    try:
        project = Project(
            make_project(workdir / f"project-{cards}"),
            {
                "KAITEN_API_URL": sandbox.base_url,
                "KAITEN_API_TOKEN": sandbox.token,
                "DATABASE_URL": url,
                "TAP_KAITEN_REQUESTS_PER_SECOND": "1000",
                "DBT_LOG_PATH": str(workdir / f"dbt-logs-{cards}"),
            },
        )
        print(f"  loading {loaded:,} cards (tap -> target-postgres) ...", flush=True)
        load_s = project.meltano("run", "tap-kaiten", "target-postgres")
        if copies:
            print(f"  copying them {copies} more times in SQL ...", flush=True)
            replicate(url, copies)
        counts = row_counts(url)
        full_s = project.meltano("invoke", "dbt-postgres", "build")
        full_dbt_s, full_models = project.run_results()

        sandbox.mutate(update=loaded // 100, move=loaded // 100, archive=loaded // 500, seed=1)
        incremental_load_s = project.meltano("run", "tap-kaiten", "target-postgres")
        incremental_s = project.meltano("invoke", "dbt-postgres", "build")
        incremental_dbt_s, incremental_models = project.run_results()
    finally:
        sandbox.stop()
        drop_database(server_url, str(conninfo_to_dict(url)["dbname"]))
    return {
        "cards": cards,
        "loaded_by_pipeline": loaded,
        "changed_cards": loaded // 100 * 2 + loaded // 500,
        "rows": counts,
        "load_s": load_s,
        "build_s": full_s,
        "build_dbt_s": full_dbt_s,
        "models_s": full_models,
        "incremental_load_s": incremental_load_s,
        "incremental_build_s": incremental_s,
        "incremental_build_dbt_s": incremental_dbt_s,
        "incremental_models_s": incremental_models,
    }


def report(result: dict[str, Any]) -> None:
    rows = ", ".join(f"{table} {count:,}" for table, count in result["rows"].items())
    print(f"cards {result['cards']:,}  (raw rows: {rows})")
    print(
        f"  first load of {result['loaded_by_pipeline']:,} cards (tap -> target-postgres): "
        f"{result['load_s']:.1f} s"
    )
    print(
        f"  dbt build after the first load: {result['build_s']:.1f} s wall"
        f" ({result['build_dbt_s']:.1f} s inside dbt), of which models:"
    )
    for model in HEAVY_MODELS:
        print(f"      {model:<24} {result['models_s'].get(model, float('nan')):6.2f} s")
    print(
        f"  incremental load ({result['changed_cards']:,} cards changed):"
        f" {result['incremental_load_s']:.1f} s"
    )
    print(
        f"  dbt build after it: {result['incremental_build_s']:.1f} s wall"
        f" ({result['incremental_build_dbt_s']:.1f} s inside dbt), of which models:"
    )
    for model in HEAVY_MODELS:
        seconds = result["incremental_models_s"].get(model, float("nan"))
        print(f"      {model:<24} {seconds:6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--load-cards",
        type=int,
        default=10_000,
        help="load at most this many cards through the tap; larger sizes are copies",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dbt-bench-") as tmp:
        workdir = Path(tmp)
        server = None
        server_url = os.environ.get("DATABASE_URL")
        if not server_url:
            server = EmbeddedPostgres(workdir / "pgdata")
            server_url = server.start()
        try:
            results = []
            for cards in args.cards:
                result = bench_size(server_url, cards, args.load_cards, workdir)
                report(result)
                results.append(result)
        finally:
            if server is not None:
                server.destroy()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
