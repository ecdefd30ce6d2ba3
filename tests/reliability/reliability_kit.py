"""Shared helpers of the reliability suite: runs, kills, database probes, comparisons.

The e2e machinery (throw-away Meltano projects, the truth comparison) is the pipeline
suite's: tests/pipeline/pipeline_helpers.py and truth.py are imported, not copied.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import psycopg
import yaml
from psycopg import sql

PIPELINE_TESTS = Path(__file__).resolve().parents[1] / "pipeline"
if str(PIPELINE_TESTS) not in sys.path:
    sys.path.insert(0, str(PIPELINE_TESTS))

import pipeline_helpers as e2e  # noqa: E402  (tests/pipeline, found through the path above)
import truth  # noqa: E402

from kaiten_local.postgres import ROOT  # noqa: E402
from kaiten_local.project import clean_environ  # noqa: E402

EL = e2e.EL
STATE_ID = e2e.STATE_ID
assert_ok = e2e.assert_ok
card_bookmarks = e2e.card_bookmarks
query = e2e.query
STREAMS = truth.STREAMS
FULL_REFRESH = {"MELTANO_RUN_FULL_REFRESH": "true"}


# Counters Kaiten derives from other cards: a child finishing changes its parent's
# `children_done` without touching the parent's `updated`, so no incremental read can see
# it until the parent changes or the nightly full sync re-reads it (a known limit).
DERIVED_FROM_OTHER_CARDS = ("children_done",)


def assert_tables_equal_truth(url: str, api_truth: dict[str, Any], *, full: bool = False) -> None:
    """The pipeline's value-by-value comparison; after incremental runs (`full` False) a
    derived counter may trail on a card whose own `updated` the table already has."""
    if not full:
        loaded = (
            {
                row[0]: (row[1], row[2:])
                for row in query(
                    url,
                    "select id, updated, "
                    + ", ".join(DERIVED_FROM_OTHER_CARDS)
                    + " from kaiten.cards where _sdc_deleted_at is null",
                )
            }
            if table_exists(url, "cards")
            else {}
        )
        api_truth = dict(api_truth, cards=[dict(card) for card in api_truth["cards"]])
        for card in api_truth["cards"]:
            row = loaded.get(card["id"])
            if row is not None and truth.same(card["updated"], row[0]):
                card.update(zip(DERIVED_FROM_OTHER_CARDS, row[1], strict=True))
    truth.assert_tables_equal_truth(url, api_truth)


def card_positions(state: dict[str, Any]) -> dict[int, tuple[str, int | None]]:
    """Where each cards partition (condition 1 live, 2 archived) resumes: the bookmark
    (`updated`) and the id of the last card emitted in that millisecond (`last_id`)."""
    out: dict[int, tuple[str, int | None]] = {}
    cards = state.get("bookmarks", {}).get("cards", {})
    for partition in cards.get("partitions", []):
        value = partition.get("replication_key_value")
        if value is not None:
            out[partition["context"]["condition"]] = (value, partition.get("last_id"))
    return out


def stored_state(url: str) -> dict[str, Any] | None:
    """The state row of the dev job straight from kaiten.sync_metadata (None before any)."""
    with psycopg.connect(url) as conn:
        exists = conn.execute("select to_regclass('kaiten.sync_metadata')").fetchone()
        if not exists or exists[0] is None:
            return None
        cur = conn.execute("select * from kaiten.sync_metadata where state_id = %s", (STATE_ID,))
        row = cur.fetchone()
        if row is None:
            return None
        names = [c.name for c in cur.description or []]
        return dict(zip(names, row, strict=True))


def committed_positions(url: str) -> dict[int, tuple[str, int | None]]:
    """Card positions a next run would start from: the partial state wins over the complete."""
    row = stored_state(url)
    if row is None:
        return {}
    merged: dict[int, tuple[str, int | None]] = {}
    for key in ("completed_state", "partial_state"):
        value = row.get(key) or {}
        if isinstance(value, str):
            value = json.loads(value)
        merged |= card_positions(value.get("singer_state", value) or {})
    return merged


def committed_bookmarks(url: str) -> dict[int, str]:
    """Card bookmarks a next run would start from: the partial state wins over the complete."""
    return {condition: value for condition, (value, _) in committed_positions(url).items()}


def table_exists(url: str, table: str, schema: str = "kaiten") -> bool:
    [(name,)] = query(url, "select to_regclass(%s)", (f"{schema}.{table}",))
    return name is not None


def duplicate_keys(url: str, schema: str = "kaiten") -> dict[str, int]:
    """Primary keys present more than once, per table (upserts must keep them unique)."""
    found: dict[str, int] = {}
    with psycopg.connect(url) as conn:
        for table in STREAMS:
            if conn.execute("select to_regclass(%s)", (f"{schema}.{table}",)).fetchone()[0] is None:
                continue
            stmt = sql.SQL("select count(*) - count(distinct id) from {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            extra = conn.execute(stmt).fetchone()[0]
            if extra:
                found[table] = extra
    return found


def bookmark_behind_committed_cards(
    url: str,
    cards_before_run: list[dict[str, Any]],
    positions: dict[int, tuple[str, int | None]],
) -> list[str]:
    """Cards a stored position promises that are not committed with that version.

    `cards_before_run` is the truth when the run started (nothing changes during it), so a
    position (B, last_id) promises: every card of that partition ordered at or before it,
    by (updated, id), is in the table. Cards of B's millisecond after last_id are not
    promised (a tie group the run was still walking).
    """
    if not positions:
        return []
    rows = (
        {r[0]: r[1] for r in query(url, "select id, version from kaiten.cards")}
        if table_exists(url, "cards")
        else {}
    )
    problems = []
    for card in cards_before_run:
        if card["condition"] not in positions:
            continue
        mark, last_id = positions[card["condition"]]
        updated, bookmark = truth._parse_ts(card["updated"]), truth._parse_ts(mark)
        if updated > bookmark or (
            updated == bookmark and last_id is not None and card["id"] > last_id
        ):
            continue
        if rows.get(card["id"]) is None or rows[card["id"]] < card["version"]:
            problems.append(
                f"card {card['id']} (updated {card['updated']}, condition "
                f"{card['condition']}) is at or before the stored position ({mark}, last_id "
                f"{last_id}): loaded version {rows.get(card['id'])}, API version {card['version']}"
            )
    return problems


def run_tap_from(project_root: Path, source: Path) -> None:
    """Make the project's tap-kaiten import `tap_kaiten` from `source` (a directory).

    Meltano drops PYTHONPATH before starting a plugin, so the project's copy of meltano.yml
    points the extractor at a wrapper script that sets it.
    """
    wrapper = project_root / "tap-kaiten-from-source"
    wrapper.write_text(
        f'#!/bin/sh\nPYTHONPATH="{source}" exec "{TAP_PYTHON}" -c "{TAP_CLI}" "$@"\n'
    )
    wrapper.chmod(0o755)
    set_tap_extras(project_root, executable=str(wrapper))


def set_tap_extras(project_root: Path, **extras: str) -> None:
    """Set keys of the tap-kaiten entry in the scratch project's own meltano.yml."""
    meltano_yml = project_root / "meltano.yml"
    project = yaml.safe_load(meltano_yml.read_text())
    [tap] = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-kaiten"]
    tap.update(extras)
    meltano_yml.write_text(yaml.safe_dump(project, sort_keys=False, allow_unicode=True))


TAP_PYTHON = ROOT / ".meltano" / "extractors" / "tap-kaiten" / "venv" / "bin" / "python"
TAP_CLI = "import sys; from tap_kaiten.tap import TapKaiten; sys.exit(TapKaiten.cli())"


def discover_catalog(workdir: Path) -> Path:
    """tap-kaiten's catalog (`--discover`) written to `workdir`; the tap comes from
    RELIABILITY_TAP_SOURCE when set, as in the suite's runs. Discovery reads no API."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "discover-config.json"
    config.write_text(
        json.dumps(
            {"api_url": "http://127.0.0.1:9", "api_token": "0" * 8 + "-0000-0000-0000-" + "0" * 12}
        )
    )
    env = clean_environ()
    if source := os.environ.get("RELIABILITY_TAP_SOURCE"):
        env["PYTHONPATH"] = source
    found = subprocess.run(
        [str(TAP_PYTHON), "-c", TAP_CLI, "--config", str(config), "--discover"],
        capture_output=True, text=True, env=env, check=False, timeout=120,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr[-3000:]
    catalog = workdir / "catalog.json"
    catalog.write_text(found.stdout)
    return catalog


def use_catalog(project_root: Path, catalog: Path) -> None:
    """Give the project's tap-kaiten a fixed catalog (Meltano's `catalog` extra).

    The extractor is installed editable, so Meltano never caches its catalog and would run
    discovery, one more process, before each of the suite's ~65 runs; its select and
    metadata rules still apply to the given catalog.
    """
    set_tap_extras(project_root, catalog=str(catalog))


# ---------------------------------------------------------------- processes
def plugin_processes(meltano: Background) -> dict[str, psutil.Process]:
    """The tap and target processes a `meltano run` started, by role."""
    found: dict[str, psutil.Process] = {}
    try:
        children = psutil.Process(meltano.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return found
    for child in children:
        try:
            cmd = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "tap-kaiten" in cmd and "tap" not in found:
            found["tap"] = child
        elif "target-postgres" in cmd and "target" not in found:
            found["target"] = child
    return found


def wait_until(predicate: Callable[[], bool], proc: Background, timeout: float) -> bool:
    """Poll `predicate` while `proc` runs; False if the process ended or time ran out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


class Background:
    """A `meltano` run in the background, its output going to files.

    Not pipes: a test that polls the database while the run goes on would stop reading
    them, Meltano would block on a full pipe and the run would hang.
    """

    def __init__(
        self, project: Any, *args: str, env: dict[str, str] | None = None, sandbox: Any = None
    ) -> None:
        # /cards requests the sandbox had counted before this run (for request budgets)
        self.card_requests_before = card_requests(sandbox) if sandbox is not None else 0
        self.out_path = project.root / f"bg-{time.monotonic_ns()}.out"
        self.err_path = self.out_path.with_suffix(".err")
        with self.out_path.open("w") as out, self.err_path.open("w") as err:
            self.proc = project.popen(*args, env=env, stdout=out, stderr=err)
        self.pid = self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()


def kill_run(run: Background) -> None:
    """SIGKILL a run and every process it started."""
    try:
        procs = [*psutil.Process(run.pid).children(recursive=True), psutil.Process(run.pid)]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    run.proc.wait()


CARD_LIST = "/api/latest/cards"


def card_requests(sandbox: Any) -> int:
    return sandbox.stats()["requests_by_path"].get(CARD_LIST, 0)


def finish_within_card_budget(
    run: Background, sandbox: Any, budget: int, timeout: float = 600
) -> tuple[int, str, str]:
    """Wait for a run, stopping (and failing) it as soon as it has made more than `budget`
    /cards list requests since it started: a tap paging in circles or chasing edits made
    after its start fails in seconds, not on a timeout."""
    if wait_until(lambda: card_requests(sandbox) - run.card_requests_before > budget, run, timeout):
        kill_run(run)
        raise AssertionError(
            f"the tap made more than {budget} /cards requests for "
            f"{len(sandbox.truth('cards')['cards'])} cards: it pages in circles or reads "
            "cards changed after the run started"
        )
    return finish(run, timeout=60)


def run_with_card_request_budget(
    project: Any, sandbox: Any, budget: int, *args: str, timeout: float = 600
) -> tuple[int, str, str]:
    """A `meltano run` held to a /cards request budget (finish_within_card_budget)."""
    return finish_within_card_budget(
        Background(project, *args, sandbox=sandbox), sandbox, budget, timeout
    )


def why_it_failed(stderr: str, lines: int = 12) -> str:
    """The error lines of a failed run's output (the tail alone is the loader's metrics)."""
    found = [
        line[:400]
        for line in stderr.splitlines()
        if ("error" in line.lower() or "exception" in line.lower()) and "METRIC" not in line
    ]
    return "\n".join(found[-lines:]) or stderr[-3000:]


def finish(run: Background, timeout: float = 600) -> tuple[int, str, str]:
    """Wait for a background run; (exit code, stdout, stderr)."""
    try:
        run.proc.wait(timeout=timeout)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()
    return run.proc.returncode, run.out_path.read_text(), run.err_path.read_text()


# ---------------------------------------------------------------- direct Singer runs
def loader_config(schema: str) -> dict[str, Any]:
    """target-postgres settings exactly as meltano.yml has them, into another schema."""
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    [loader] = [p for p in project["plugins"]["loaders"] if p["name"] == "target-postgres"]
    return loader["config"] | {"default_target_schema": schema}


def direct_full_sync(sandbox: Any, database_url: str, schema: str, workdir: Path) -> None:
    """tap-kaiten | target-postgres without Meltano and without state: a fresh full sync.

    Used as the reference the incremental pipeline must equal; it shares no state, no
    systemdb and no schema with the pipeline under test.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    tap_cfg = workdir / "tap.json"
    target_cfg = workdir / "target.json"
    tap_cfg.write_text(
        json.dumps(
            {"api_url": sandbox.base_url, "api_token": sandbox.token, "requests_per_second": 1000}
        )
    )
    target_cfg.write_text(json.dumps(loader_config(schema)))
    tap_bin = ROOT / ".meltano" / "extractors" / "tap-kaiten" / "venv" / "bin" / "tap-kaiten"
    if not tap_bin.exists():
        tap_bin = Path(sys.executable).parent / "tap-kaiten"
    target_bin = (
        ROOT / ".meltano" / "loaders" / "target-postgres" / "venv" / "bin" / "target-postgres-dburl"
    )
    env = clean_environ() | {"DATABASE_URL": database_url}
    if source := os.environ.get("RELIABILITY_TAP_SOURCE"):
        env["PYTHONPATH"] = source  # the same tap the Meltano runs use (conftest)
    with (workdir / "tap.err").open("w") as tap_err, (workdir / "target.err").open("w") as t_err:
        tap = subprocess.Popen(
            [str(tap_bin), "--config", str(tap_cfg)],
            stdout=subprocess.PIPE,
            stderr=tap_err,
            env=env,
        )
        target = subprocess.run(
            [str(target_bin), "--config", str(target_cfg)],
            stdin=tap.stdout,
            stdout=subprocess.DEVNULL,
            stderr=t_err,
            env=env,
            check=False,
            timeout=600,
        )
        assert tap.stdout is not None
        tap.stdout.close()
        tap_rc = tap.wait(timeout=60)
    assert tap_rc == 0, (workdir / "tap.err").read_text()[-3000:]
    assert target.returncode == 0, (workdir / "target.err").read_text()[-3000:]


def schema_rows(url: str, schema: str, table: str) -> dict[Any, dict[str, Any]]:
    """Rows keyed by id, loader bookkeeping columns left out."""
    with psycopg.connect(url) as conn:
        cur = conn.execute(
            sql.SQL("select * from {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        )
        names = [c.name for c in cur.description or []]
        out = {}
        for row in cur.fetchall():
            record = dict(zip(names, row, strict=True))
            if record.get("_sdc_deleted_at") is not None:
                continue
            out[record["id"]] = {k: v for k, v in record.items() if not k.startswith("_sdc_")}
        return out


def diff_schemas(url: str, left: str, right: str) -> list[str]:
    """Every table of `left` equal to `right`, row by row and column by column."""
    problems = []
    for table in STREAMS:
        a, b = schema_rows(url, left, table), schema_rows(url, right, table)
        if a.keys() != b.keys():
            only_a, only_b = (
                sorted(a.keys() - b.keys(), key=str),
                sorted(b.keys() - a.keys(), key=str),
            )
            problems.append(f"{table}: only in {left}: {only_a[:5]}, only in {right}: {only_b[:5]}")
            continue
        for key in a:
            columns = a[key].keys() | b[key].keys()
            differ = [c for c in sorted(columns) if a[key].get(c) != b[key].get(c)]
            if table == "cards" and a[key].get("updated") == b[key].get("updated"):
                differ = [c for c in differ if c not in DERIVED_FROM_OTHER_CARDS]
            if differ:
                c = differ[0]
                problems.append(
                    f"{table} id {key}: {c} = {a[key].get(c)!r:.80} in {left}, "
                    f"{b[key].get(c)!r:.80} in {right}"
                )
                break
    return problems
