"""Benchmark the whole pipeline (issue #7): `meltano run` against the sandbox into PostgreSQL.

Every figure comes from the real pipeline: `meltano run tap-kaiten target-postgres` in a
throw-away Meltano project (meltano.yml copied, plugin venvs linked), the Kaiten sandbox
as its own process (`kaiten-sandbox`), PostgreSQL from DATABASE_URL (a database per
scenario, dropped after) or an embedded server. The Meltano process tree is sampled from
/proc every 50 ms: peak RSS and CPU seconds of the tap, the target and dbt.

Sections (one table each, printed and written to bench/results.md):
1. Full sync with the sandbox limiting at 5 and 50 requests/s (tap configured the same):
   wall time beside the API bound = the minimum requests for that workspace / rate.
   The minimum is counted from the sandbox's ground truth (pages of each list, one
   location-history request per card, comments and checklists only where the card has
   some), and requests beyond it (429s, retries, empty pages) are shown as waste.
2. Rate limiting off, cards stream: end-to-end cards/s into kaiten.cards, tap and target
   CPU seconds, beside bench/baseline_copy.py (requests + COPY) on the same sandbox.
   Plus one all-streams full sync with `dbt build` after it: where the time goes.
3. Incremental runs on the largest loaded workspace: nothing changed, then 1 % of cards
   changed; /cards requests, all requests and wall time (Meltano start-up included).
4. Peak RSS of the tap and of the target per size (section 2's runs).

    .venv/bin/python bench/pipeline_bench.py                 # the issue's sizes (long)
    .venv/bin/python bench/pipeline_bench.py --quick         # small sizes, a few minutes
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import psutil
import psycopg
import requests
from psycopg.conninfo import conninfo_to_dict

from kaiten_local.postgres import ROOT, EmbeddedPostgres, create_database, drop_database
from kaiten_local.project import PluginsNotInstalledError, clean_environ, scratch_project

BIN = Path(sys.executable).parent
MELTANO = str(BIN / "meltano")
SANDBOX_BIN = str(BIN / "kaiten-sandbox")
BASELINE = Path(__file__).with_name("baseline_copy.py")
RESULTS = Path(__file__).with_name("results.md")
UNLIMITED = "1000"  # tap-side requests/s (its maximum): the client-side limiter is effectively off
CARDS_ONLY = '["cards.*"]'


# --- processes ---------------------------------------------------------------------------


class SandboxProcess:
    """`kaiten-sandbox` in its own process, so it never shares an interpreter with us."""

    def __init__(self, cards: int, rate_limit: int, seed: int = 42) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own console script
            [SANDBOX_BIN, "--port", "0", "--seed", str(seed), "--cards", str(cards),
             "--rate-limit", str(rate_limit)],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        values: dict[str, str] = {}
        assert self.process.stdout is not None
        while len(values) < 2:
            line = self.process.stdout.readline()
            if not line:
                raise SystemExit("kaiten-sandbox exited before printing its URL")
            key, _, value = line.strip().partition("=")
            values[key] = value
        self.url, self.token = values["KAITEN_API_URL"], values["KAITEN_API_TOKEN"]
        self.http = requests.Session()

    def control(self, method: str, path: str, body: dict | None = None) -> dict:
        response = self.http.request(method, self.url + path, json=body, timeout=600)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict:
        return self.control("GET", "/_sandbox/stats")

    def reset_stats(self) -> None:
        self.control("POST", "/_sandbox/stats/reset")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


class TreeMonitor(threading.Thread):
    """Samples a process tree: peak RSS and CPU seconds per role (tap, target, dbt)."""

    # By the plugin venv the interpreter runs from (`meltano run tap-kaiten ...` itself
    # must not count as the tap): .meltano/<kind>/<plugin>/venv/bin/python.
    ROLES: ClassVar[dict[str, str]] = {"extractors": "tap", "loaders": "target", "utilities": "dbt"}

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak_rss: dict[str, int] = defaultdict(int)
        self.cpu: dict[int, tuple[str, float]] = {}
        self.stopped = threading.Event()

    def role(self, proc: psutil.Process) -> str | None:
        cmdline = proc.cmdline()
        if not cmdline:
            # A process caught between fork and exec, or a zombie: no command line, so no
            # role; its sample is skipped (it must not overwrite the tap's or target's).
            return None
        parts = Path(cmdline[0]).parts
        if ".meltano" in parts:
            kind = parts[parts.index(".meltano") + 1 : parts.index(".meltano") + 2]
            return self.ROLES.get(kind[0], "other") if kind else "other"
        return "other"

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                # A child that ended mid-walk (the discovery run, say): sample again.
                if not self.root.is_running():
                    return
                time.sleep(0.01)
                continue
            for proc in procs:
                try:
                    role = self.role(proc)
                    if role is None:
                        continue
                    with proc.oneshot():
                        rss = proc.memory_info().rss
                        times = proc.cpu_times()
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
                self.peak_rss[role] = max(self.peak_rss[role], rss)
                self.cpu[proc.pid] = (role, times.user + times.system)
            time.sleep(0.05)

    def cpu_by_role(self) -> dict[str, float]:
        total: dict[str, float] = defaultdict(float)
        for role, seconds in self.cpu.values():
            total[role] += seconds
        return dict(total)


class Project:
    """A throw-away Meltano project wired to one sandbox and one database."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        try:
            scratch_project(root)
        except PluginsNotInstalledError as err:
            raise SystemExit(str(err)) from None
        self.root = root
        self.env = clean_environ() | env
        if self.env.get("PYTHONPYCACHEPREFIX"):
            self.env.pop("PYTHONDONTWRITEBYTECODE", None)

    def run(self, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        """One meltano command, monitored; its wall time, CPU and peak RSS per role."""
        log = self.root / "last-run.log"
        with log.open("wb") as output:
            started = time.perf_counter()
            process = subprocess.Popen(  # noqa: S603 - our own meltano, fixed arguments
                [MELTANO, *args],
                cwd=self.root,
                env=self.env | (env or {}),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            monitor = TreeMonitor(process.pid)
            monitor.start()
            returncode = process.wait()
            elapsed = time.perf_counter() - started
            monitor.stopped.set()
            monitor.join()
        if keep := os.environ.get("PIPELINE_BENCH_LOGS"):
            Path(keep).mkdir(parents=True, exist_ok=True)
            name = f"{self.root.name}-{'-'.join(args)}-{time.time():.0f}.log"
            shutil.copy(log, Path(keep) / name)
        if returncode:
            sys.stderr.write(log.read_text(errors="replace")[-4000:])
            raise SystemExit(f"meltano {' '.join(args)} failed ({returncode})")
        cpu = monitor.cpu_by_role()
        return {
            "seconds": elapsed,
            "cpu": {
                role: round(cpu.get(role, 0.0), 2) for role in ("tap", "target", "dbt", "other")
            },
            "peak_rss_mib": {
                role: round(monitor.peak_rss.get(role, 0) / 2**20, 1)
                for role in ("tap", "target", "dbt")
            },
        }


# --- what the API allows -----------------------------------------------------------------


def pages(count: int, limit: int) -> int:
    """Kaiten's only end signal is a page shorter than `limit`: count // limit + 1 pages."""
    return count // limit + 1


def spaces_to_cover(truth: dict) -> int:
    boards_of: dict[int, set[int]] = defaultdict(set)
    for space_id, board_id in truth["space_boards"]:
        boards_of[space_id].add(board_id)
    read: set[int] = set()
    needed = 0
    for space in truth["spaces"]:
        if boards_of[space["id"]] - read:
            needed += 1
            read |= boards_of[space["id"]]
    return needed


def minimum_requests(sandbox: SandboxProcess, cards_only: bool = False) -> dict[str, int]:
    """The fewest requests that can read this workspace, from the sandbox's ground truth."""
    truth = sandbox.control("GET", "/_sandbox/state")
    cards = truth["cards"]
    live = sum(1 for c in cards if c["condition"] == 1)
    need = {"/cards": pages(live, 100) + pages(len(cards) - live, 100)}
    if cards_only:
        return need
    need |= {
        "/spaces": 1,
        # Full boards (columns and lanes embedded) come per space: the spaces, in order,
        # that still hold a board not yet read.
        "/spaces/{id}/boards": spaces_to_cover(truth),
        "/users": pages(len(truth["users"]), 100),
        "/tags": pages(len(truth["tags"]), 100),
        "/card-types": pages(len(truth["card_types"]), 100),
        "/company/custom-properties": pages(len(truth["custom_properties"]), 500),
        "/cards/{id}/location-history": len(cards),
        "/cards/{id}/comments": sum(1 for c in cards if c.get("comments_total")),
        "/cards/{id}": sum(1 for c in cards if c.get("checklists_total")),
    }
    return need


def cards_requests(stats: dict) -> int:
    return sum(
        n for path, n in stats["requests_by_path"].items() if path.rstrip("/").endswith("/cards")
    )


def process_cpu(proc: psutil.Process, reaped_children: bool = False) -> float:
    times = proc.cpu_times()
    total = times.user + times.system
    if reaped_children:
        total += times.children_user + times.children_system
    return total


def server_cpu(sandbox: SandboxProcess) -> dict[str, float]:
    """CPU seconds so far of the sandbox and of PostgreSQL (postmaster, live and ended
    backends: the postmaster reaps its backends, so their time is in its children_*)."""
    sandbox_cpu = process_cpu(psutil.Process(sandbox.process.pid))
    postgres = 0.0
    if POSTMASTER is not None:
        postgres = process_cpu(POSTMASTER, reaped_children=True)
        for child in POSTMASTER.children():
            with contextlib.suppress(psutil.Error):
                postgres += process_cpu(child)
    return {"sandbox": sandbox_cpu, "postgres": postgres}


def cpu_since(before: dict[str, float], sandbox: SandboxProcess) -> dict[str, float]:
    after = server_cpu(sandbox)
    return {key: round(after[key] - before[key], 2) for key in after}


# --- scenarios ---------------------------------------------------------------------------


class Bench:
    def __init__(self, server_url: str, workdir: Path, env: dict[str, str]) -> None:
        self.server_url = server_url
        self.env = env
        self.workdir = workdir
        self.serial = 0

    def setup(self, sandbox: SandboxProcess, env: dict[str, str]) -> tuple[Project, str]:
        self.serial += 1
        url = create_database(self.server_url)
        project = Project(
            self.workdir / f"project-{self.serial}",
            {
                "KAITEN_API_URL": sandbox.url,
                "KAITEN_API_TOKEN": sandbox.token,
                "DATABASE_URL": url,
                "TAP_KAITEN_LOGLEVEL": "WARNING",
                "DBT_LOG_PATH": str(self.workdir / f"dbt-logs-{self.serial}"),
            }
            | self.env
            | env,
        )
        return project, url

    def drop(self, url: str) -> None:
        drop_database(self.server_url, str(conninfo_to_dict(url)["dbname"]))

    def rate_limited(self, cards: int, rate: int) -> dict[str, Any]:
        """Section 1: a full sync of every stream against a sandbox limiting at `rate`."""
        sandbox = SandboxProcess(cards, rate_limit=rate)
        try:
            need = minimum_requests(sandbox)
            project, url = self.setup(sandbox, {"TAP_KAITEN_REQUESTS_PER_SECOND": str(rate)})
            sandbox.reset_stats()
            run = project.run("run", "tap-kaiten", "target-postgres")
            stats = sandbox.stats()
            loaded = count_cards(url)
            self.drop(url)
        finally:
            sandbox.stop()
        minimum = sum(need.values())
        bound = minimum / rate
        return {
            "cards": cards,
            "rate": rate,
            "loaded": loaded,
            "seconds": run["seconds"],
            "minimum_requests": minimum,
            "requests": stats["requests_total"],
            "rate_limited_429": stats["rate_limited"],
            "busiest_second": stats["max_requests_in_any_1s"],
            "bound_seconds": bound,
            "ratio": run["seconds"] / bound,
            "tap_cpu": run["cpu"]["tap"],
            "target_cpu": run["cpu"]["target"],
        }

    def throughput(self, cards: int, runs: int, keep_last: bool) -> dict[str, Any]:
        """Section 2 + 4: cards stream, limit off, pipeline vs baseline, same sandbox."""
        sandbox = SandboxProcess(cards, rate_limit=0)
        pipeline_runs, baseline_runs = [], []
        kept = None
        try:
            truth_updated = sample_truth(sandbox)
            for n in range(runs):
                project, url = self.setup(
                    sandbox,
                    {
                        "TAP_KAITEN_REQUESTS_PER_SECOND": UNLIMITED,
                        "TAP_KAITEN_INCLUDE_CHECKLISTS": "false",
                        "TAP_KAITEN__SELECT": CARDS_ONLY,
                    },
                )
                sandbox.reset_stats()
                before = server_cpu(sandbox)
                run = project.run("run", "tap-kaiten", "target-postgres")
                run["server_cpu"] = cpu_since(before, sandbox)
                run["requests"] = sandbox.stats()["requests_total"]
                run["loaded"] = count_cards(url)
                run["timestamps_ok"] = check_timestamps(url, truth_updated)
                pipeline_runs.append(run)
                before = server_cpu(sandbox)
                baseline = run_baseline(sandbox, url)
                baseline["server_cpu"] = cpu_since(before, sandbox)
                baseline_runs.append(baseline)
                if keep_last and n == runs - 1:
                    kept = (project, url)
                else:
                    self.drop(url)
            before = server_cpu(sandbox)
            ceiling = run_baseline(sandbox, None)
            ceiling["server_cpu"] = cpu_since(before, sandbox)
            incremental = self.incremental(sandbox, *kept, cards) if kept else None
            if kept:
                self.drop(kept[1])
        finally:
            sandbox.stop()
        pipe_s = statistics.median(r["seconds"] for r in pipeline_runs)
        base_s = statistics.median(r["seconds"] for r in baseline_runs)
        return {
            "cards": cards,
            "runs": len(pipeline_runs),
            "pipeline_seconds": [round(r["seconds"], 2) for r in pipeline_runs],
            "pipeline_cards_per_second": cards / pipe_s,
            "baseline_seconds": [round(r["seconds"], 2) for r in baseline_runs],
            "baseline_cards_per_second": cards / base_s,
            "ratio_to_baseline": base_s / pipe_s,
            "tap_cpu": statistics.median(r["cpu"]["tap"] for r in pipeline_runs),
            "target_cpu": statistics.median(r["cpu"]["target"] for r in pipeline_runs),
            "tap_peak_rss_mib": max(r["peak_rss_mib"]["tap"] for r in pipeline_runs),
            "target_peak_rss_mib": max(r["peak_rss_mib"]["target"] for r in pipeline_runs),
            "loaded": [r["loaded"] for r in pipeline_runs],
            "timestamps_ok": all(r["timestamps_ok"] for r in pipeline_runs),
            "requests": pipeline_runs[-1]["requests"],
            # CPU seconds per component (medians): where a 2-core machine's time goes.
            "cpu": {
                "pipeline": {
                    "tap": median_of(pipeline_runs, "cpu", "tap"),
                    "target": median_of(pipeline_runs, "cpu", "target"),
                    "meltano": median_of(pipeline_runs, "cpu", "other"),
                    "sandbox": median_of(pipeline_runs, "server_cpu", "sandbox"),
                    "postgres": median_of(pipeline_runs, "server_cpu", "postgres"),
                },
                "baseline": {
                    "script": median_of(baseline_runs, "cpu"),
                    "sandbox": median_of(baseline_runs, "server_cpu", "sandbox"),
                    "postgres": median_of(baseline_runs, "server_cpu", "postgres"),
                },
            },
            "fetch_only": {
                "seconds": ceiling["seconds"],
                "cards_per_second": cards / ceiling["seconds"],
                "client_cpu": ceiling["cpu"],
                "sandbox_cpu": ceiling["server_cpu"]["sandbox"],
            },
            "incremental": incremental,
        }

    def incremental(
        self, sandbox: SandboxProcess, project: Project, url: str, cards: int
    ) -> dict[str, Any]:
        """Section 3: the every-15-minutes run, every stream, after the cards-only full load.

        Nothing changed runs at Kaiten's documented 5/s and its measured 50/s. 1 % changed
        needs a history and maybe a comments and a checklist request per changed card
        (~2,500 requests at 100,000 cards: ~8 minutes at 5/s), so it runs at 50/s, and
        again with the limit off.
        """
        env = {"TAP_KAITEN__SELECT": '["*.*"]', "TAP_KAITEN_INCLUDE_CHECKLISTS": "true"}
        results = {}
        cases = (("nothing changed", 0, "5"), ("nothing changed", 0, "50"),
                 ("1% changed", cards // 100, "50"),
                 ("1% changed", cards // 100, UNLIMITED))  # fmt: skip
        for n, (label, changed, rate) in enumerate(cases):
            if changed:
                sandbox.control("POST", "/_sandbox/mutate", {"update": changed, "seed": n})
            need = self.changed_minimum(sandbox, changed) if changed else None
            sandbox.reset_stats()
            run = project.run(
                "run", "tap-kaiten", "target-postgres",
                env=env | {"TAP_KAITEN_REQUESTS_PER_SECOND": rate},
            )  # fmt: skip
            stats = sandbox.stats()
            results[f"{label} @{'off' if rate == UNLIMITED else rate + '/s'}"] = {
                "changed": changed,
                "rate": "off" if rate == UNLIMITED else f"{rate}/s",
                "seconds": run["seconds"],
                "cards_requests": cards_requests(stats),
                "requests": stats["requests_total"],
                "minimum_requests": need,
            }
        return results

    @staticmethod
    def changed_minimum(sandbox: SandboxProcess, changed: int) -> int:
        """Full-table lists + cards pages + per changed card: history, comments, checklists."""
        truth = sandbox.control("GET", "/_sandbox/state")
        newest = sorted(truth["cards"], key=lambda c: c["updated"])[-changed:]
        live = sum(1 for c in newest if c["condition"] == 1)
        small = (
            1 + spaces_to_cover(truth) + pages(len(truth["users"]), 100)
            + pages(len(truth["tags"]), 100) + pages(len(truth["card_types"]), 100)
            + pages(len(truth["custom_properties"]), 500)
        )  # fmt: skip
        per_card = sum(
            1 + bool(c.get("comments_total")) + bool(c.get("checklists_total")) for c in newest
        )
        return small + pages(live, 100) + pages(changed - live, 100) + per_card

    def all_streams(self, cards: int) -> dict[str, Any]:
        """Section 2, where the time goes: every stream, limit off, then `dbt build`."""
        sandbox = SandboxProcess(cards, rate_limit=0)
        try:
            project, url = self.setup(sandbox, {"TAP_KAITEN_REQUESTS_PER_SECOND": UNLIMITED})
            sandbox.reset_stats()
            el = project.run("run", "tap-kaiten", "target-postgres")
            requests_total = sandbox.stats()["requests_total"]
            dbt = project.run("invoke", "dbt-postgres", "build")
            self.drop(url)
        finally:
            sandbox.stop()
        return {
            "cards": cards,
            "el_seconds": el["seconds"],
            "requests": requests_total,
            "tap_cpu": el["cpu"]["tap"],
            "target_cpu": el["cpu"]["target"],
            "tap_peak_rss_mib": el["peak_rss_mib"]["tap"],
            "target_peak_rss_mib": el["peak_rss_mib"]["target"],
            "dbt_seconds": dbt["seconds"],
            "dbt_cpu": dbt["cpu"]["dbt"],
        }


def count_cards(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("select count(*) from kaiten.cards").fetchone()[0]


def sample_truth(sandbox: SandboxProcess) -> dict[int, str]:
    cards = sandbox.control("GET", "/_sandbox/state?streams=cards")["cards"]
    return {c["id"]: c["updated"] for c in cards[:: max(len(cards) // 500, 1)]}


def check_timestamps(url: str, truth: dict[int, str]) -> bool:
    """kaiten.cards.updated is the same instant as Kaiten's (whatever the column type)."""
    with psycopg.connect(url) as conn:
        conn.execute("set time zone 'UTC'")
        rows = conn.execute(
            "select id, updated::timestamptz from kaiten.cards where id = any(%s)", (list(truth),)
        ).fetchall()
    got = {i: ts for i, ts in rows}
    return len(got) == len(truth) and all(
        got[i] == datetime.fromisoformat(v.replace("Z", "+00:00")) for i, v in truth.items()
    )


def median_of(runs: list[dict[str, Any]], key: str, role: str | None = None) -> float:
    return statistics.median(r[key][role] if role else r[key] for r in runs)


def run_baseline(sandbox: SandboxProcess, url: str | None) -> dict[str, Any]:
    """baseline_copy.py on this sandbox into `url`; with url None, --fetch-only."""
    sandbox.reset_stats()
    target = ["--database-url", url] if url else ["--fetch-only"]
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - our own script
        [sys.executable, str(BASELINE), "--api-url", sandbox.url, "--token", sandbox.token,
         *target],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    peak = 0
    cpu = 0.0
    watched = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)
            cpu = process_cpu(watched)
        except psutil.Error:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    assert process.stdout is not None
    out = process.stdout.read()
    if process.returncode:
        raise SystemExit(f"baseline_copy.py failed ({process.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result["seconds"] = elapsed  # process start to exit, like `meltano run`'s figure
    result["peak_rss_mib"] = peak / 2**20
    result["cpu"] = round(cpu, 2)  # sampled every 50 ms: the last few ms are missing
    return result


# --- report ------------------------------------------------------------------------------


def machine() -> str:
    load = os.getloadavg()
    ram = psutil.virtual_memory().total / 2**30
    versions = ", ".join(
        f"{name} {metadata.version(name)}" for name in ("meltano", "singer-sdk", "psycopg")
    )
    target = subprocess.run(  # noqa: S603
        [str(ROOT / ".meltano/loaders/target-postgres/venv/bin/python"), "-c",
         "from importlib.metadata import version as v; print(v('meltanolabs-target-postgres'))"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    with psycopg.connect(SERVER_URL) as conn:
        pg = conn.execute("show server_version").fetchone()[0]
    return (
        f"{platform.node()}: {os.cpu_count()} CPUs, {ram:.0f} GiB RAM, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start; Python "
        f"{platform.python_version()}, {versions}, target-postgres {target or '?'}, "
        f"PostgreSQL {pg}"
    )


def render(command: str, started: str, info: str, results: dict[str, Any]) -> str:
    out = [
        "# Pipeline benchmark (issue #7)",
        "",
        f"Command: `{command}`  ",
        f"Run: {started} UTC, {time.time() - START:.0f} s  ",
        f"Machine: {info}",
        "",
    ]
    if results.get("rate_limited"):
        out += [
            "## 1. Full sync against a rate-limited API (every stream)",
            "",
            "| cards | limit | wall s | minimum requests | API bound s | ratio | requests made"
            " | 429s | busiest 1 s | cards loaded | tap CPU s | target CPU s |",
            "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for r in results["rate_limited"]:
            out.append(
                f"| {r['cards']:,} | {r['rate']}/s | {r['seconds']:.1f} | {r['minimum_requests']:,}"
                f" | {r['bound_seconds']:.1f} | **{r['ratio']:.3f}** | {r['requests']:,}"
                f" | {r['rate_limited_429']} | {r['busiest_second']} | {r['loaded']:,}"
                f" | {r['tap_cpu']:.1f} | {r['target_cpu']:.1f} |"
            )
        out.append("")
    if results.get("throughput"):
        out += [
            "## 2. Rate limiting off: cards into kaiten.cards, pipeline vs requests+COPY baseline",
            "",
            "| cards | pipeline s (runs) | pipeline cards/s | baseline s (runs) | baseline cards/s"
            " | pipeline / baseline | tap CPU s | target CPU s | UTC timestamps |",
            "|--:|--:|--:|--:|--:|--:|--:|--:|:--|",
        ]
        for r in results["throughput"]:
            out.append(
                f"| {r['cards']:,} | {fmt_runs(r['pipeline_seconds'])}"
                f" | **{r['pipeline_cards_per_second']:,.0f}** | {fmt_runs(r['baseline_seconds'])}"
                f" | {r['baseline_cards_per_second']:,.0f} | **{r['ratio_to_baseline']:.2f}**"
                f" | {r['tap_cpu']:.1f} | {r['target_cpu']:.1f}"
                f" | {'exact' if r['timestamps_ok'] else 'WRONG'} |"
            )
        out += [
            "",
            "Medians of the runs listed; seconds are process start to exit (Meltano"
            " start-up included for the pipeline, Python start-up for the baseline).",
            "",
            "CPU seconds per component (medians of the same runs; PostgreSQL only when"
            " embedded), and the sandbox's ceiling: `baseline_copy.py --fetch-only`, the same"
            " requests from one sequential client, nothing loaded:",
            "",
            "| cards | pipeline: tap | target | meltano | sandbox | PostgreSQL | all"
            " | baseline: script | sandbox | PostgreSQL | all | fetch-only s | fetch-only cards/s"
            " | its sandbox CPU s |",
            "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for r in results["throughput"]:
            p, b, f = r["cpu"]["pipeline"], r["cpu"]["baseline"], r["fetch_only"]
            out.append(
                f"| {r['cards']:,} | {p['tap']:.1f} | {p['target']:.1f} | {p['meltano']:.1f}"
                f" | {p['sandbox']:.1f} | {p['postgres']:.1f} | **{sum(p.values()):.1f}**"
                f" | {b['script']:.1f} | {b['sandbox']:.1f} | {b['postgres']:.1f}"
                f" | **{sum(b.values()):.1f}** | {f['seconds']:.1f}"
                f" | {f['cards_per_second']:,.0f} | {f['sandbox_cpu']:.1f} |"
            )
        out.append("")
    if results.get("all_streams"):
        r = results["all_streams"]
        out += [
            "Where the time goes, full sync of every stream then `dbt build`, limit off:",
            "",
            "| cards | requests | EL wall s | tap CPU s | target CPU s | dbt build wall s"
            " | dbt CPU s |",
            "|--:|--:|--:|--:|--:|--:|--:|",
            f"| {r['cards']:,} | {r['requests']:,} | {r['el_seconds']:.1f} | {r['tap_cpu']:.1f}"
            f" | {r['target_cpu']:.1f} | {r['dbt_seconds']:.1f} | {r['dbt_cpu']:.1f} |",
            "",
        ]
    incremental = [r for r in results.get("throughput", []) if r.get("incremental")]
    if incremental:
        r = incremental[-1]
        out += [
            f"## 3. Incremental runs at {r['cards']:,} cards (every stream, `meltano run"
            " tap-kaiten target-postgres`)",
            "",
            "| case | tap limit | cards changed | /cards requests | all requests"
            " | minimum requests | wall s |",
            "|:--|--:|--:|--:|--:|--:|--:|",
        ]
        for label, i in r["incremental"].items():
            out.append(
                f"| {label} | {i['rate']} | {i['changed']:,} | **{i['cards_requests']}**"
                f" | {i['requests']:,} | {i['minimum_requests'] or '-'} | **{i['seconds']:.1f}** |"
            )
        out.append("")
    if results.get("throughput"):
        rows = results["throughput"]
        out += [
            "## 4. Peak memory (RSS, MiB; section 2's runs)",
            "",
            "| cards | tap | target |",
            "|--:|--:|--:|",
            *(
                f"| {r['cards']:,} | {r['tap_peak_rss_mib']:.0f} | {r['target_peak_rss_mib']:.0f} |"
                for r in rows
            ),
        ]
        if len(rows) > 1:
            small, large = rows[0], rows[-1]
            out.append(
                f"\nGrowth {small['cards']:,} → {large['cards']:,} cards: tap "
                f"{large['tap_peak_rss_mib'] / small['tap_peak_rss_mib']:.2f}x, target "
                f"{large['target_peak_rss_mib'] / small['target_peak_rss_mib']:.2f}x."
            )
        out.append("")
    out += verdicts(results)
    return "\n".join(out)


def verdicts(results: dict[str, Any]) -> list[str]:
    """The issue's targets, each met or not, from the figures above."""

    def line(target: str, figure: str, met: bool) -> str:
        return f"| {target} | {figure} | {'met' if met else '**not met**'} |"

    rows = []
    for r in results.get("rate_limited", []):
        rows.append(
            line(
                f"full sync {r['cards']:,} cards @{r['rate']}/s within 1.1x of the bound",
                f"{r['ratio']:.3f}x",
                r["ratio"] <= 1.1,
            )
        )
    if results.get("throughput"):
        r = results["throughput"][-1]
        rows.append(
            line(
                f"limit off, {r['cards']:,} cards: ≥ 5,000 cards/s end to end",
                f"{r['pipeline_cards_per_second']:,.0f} cards/s",
                r["pipeline_cards_per_second"] >= 5000,
            )
        )
        rows.append(
            line(
                f"limit off, {r['cards']:,} cards: ≥ 0.5x the requests+COPY baseline",
                f"{r['ratio_to_baseline']:.2f}x",
                r["ratio_to_baseline"] >= 0.5,
            )
        )
        rows.append(line("timestamps exact in UTC", "sampled cards.updated", r["timestamps_ok"]))
        if incremental := r.get("incremental"):
            i = incremental["nothing changed @5/s"]
            rows.append(
                line(
                    f"incremental, nothing changed, {r['cards']:,} cards: ≤ 3 /cards requests",
                    str(i["cards_requests"]),
                    i["cards_requests"] <= 3,
                )
            )
            rows.append(
                line(
                    "incremental, nothing changed: < 15 s including Meltano start-up",
                    f"{i['seconds']:.1f} s",
                    i["seconds"] < 15,
                )
            )
        if len(results["throughput"]) > 1:
            small = results["throughput"][0]
            for role in ("tap", "target"):
                growth = r[f"{role}_peak_rss_mib"] / small[f"{role}_peak_rss_mib"]
                rows.append(
                    line(
                        f"{role} peak RSS {r['cards']:,} within 1.5x of {small['cards']:,}",
                        f"{growth:.2f}x",
                        growth <= 1.5,
                    )
                )
    if not rows:
        return []
    return ["## Targets", "", "| target | measured | |", "|:--|--:|:--|", *rows, ""]


def save(path: Path, text: str) -> None:
    """After every scenario, so a long run cut short still leaves its figures."""
    path.write_text(text + "\n")


def fmt_runs(seconds: list[float]) -> str:
    return f"{statistics.median(seconds):.1f} ({', '.join(f'{s:.1f}' for s in seconds)})"


START = time.time()
SERVER_URL = ""
POSTMASTER: psutil.Process | None = None


def find_postmaster(url: str) -> psutil.Process | None:
    """The PostgreSQL server process, when it runs on this machine (else None)."""
    with psycopg.connect(url) as conn:
        backend = conn.execute("select pg_backend_pid()").fetchone()[0]
    try:
        return psutil.Process(backend).parent()
    except psutil.Error:
        return None


def bytecode_env() -> dict[str, str]:
    """Compiled bytecode for every interpreter a run starts, as a user's machine has.

    Meltano installs plugin venvs without .pyc files, and a user's first run writes them;
    under PYTHONDONTWRITEBYTECODE (set on some CI machines) every start compiles the SDK,
    SQLAlchemy... from source again: ~6 s more per target start on a loaded 2-core box.
    The cache lives outside the repo (PYTHONPYCACHEPREFIX), so the shared tree is untouched.
    """
    prefix = Path(tempfile.gettempdir()) / "kaiten-bench-pycache"
    env = {"PYTHONPYCACHEPREFIX": str(prefix), "PYTHONDONTWRITEBYTECODE": ""}
    trees = [str(p) for p in (ROOT / ".meltano").glob("*/*/venv/lib")]
    trees += [str(ROOT / ".venv" / "lib"), str(ROOT / "tap-kaiten"), str(ROOT / "plugins")]
    print("compiling bytecode for the plugin venvs (cached across runs) ...", flush=True)
    subprocess.run(  # noqa: S603 - our interpreter, our directories
        [sys.executable, "-m", "compileall", "-q", "-j", "0", *trees],
        env=os.environ | env,
        stdout=subprocess.DEVNULL,
        check=False,
    )
    return env


def main() -> int:
    global SERVER_URL, POSTMASTER
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to try the harness")
    parser.add_argument("--sections", default="1,2,3", help="comma list of 1, 2, 3 (4 = 2)")
    parser.add_argument("--sizes", type=int, nargs="+", help="section 2 sizes (default 10k 100k)")
    parser.add_argument("--runs", type=int, default=3, help="section 2 runs per size")
    parser.add_argument(
        "--limited",
        default="1000@5,10000@50",
        help="section 1 runs as CARDS@RATE (a 10,000-card full sync at 5/s is ~50 minutes)",
    )
    parser.add_argument("--all-streams-cards", type=int, default=10_000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--as-installed",
        action="store_true",
        help="no bytecode cache: what a machine with PYTHONDONTWRITEBYTECODE=1 gets",
    )
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    sizes = args.sizes or ([1_000, 5_000] if args.quick else [10_000, 100_000])
    limited = "100@5,1000@50" if args.quick and args.limited == "1000@5,10000@50" else args.limited
    all_cards = 1_000 if args.quick else args.all_streams_cards
    command = ".venv/bin/python bench/pipeline_bench.py " + " ".join(sys.argv[1:])
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")

    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        workdir = Path(tmp)
        server = None
        SERVER_URL = os.environ.get("DATABASE_URL", "")
        if not SERVER_URL:
            server = EmbeddedPostgres(workdir / "pgdata")
            SERVER_URL = server.start()
        try:
            if server is not None:  # PostgreSQL's CPU is only measured when it runs here
                POSTMASTER = find_postmaster(SERVER_URL)
            info = machine()
            print(info, flush=True)
            bench = Bench(SERVER_URL, workdir, {} if args.as_installed else bytecode_env())
            results: dict[str, Any] = {}
            if "1" in sections:
                results["rate_limited"] = []
                for spec in limited.split(","):
                    cards, rate = (int(x) for x in spec.split("@"))
                    print(f"[1] full sync, {cards:,} cards at {rate}/s ...", flush=True)
                    results["rate_limited"].append(bench.rate_limited(cards, rate))
                    print(json.dumps(results["rate_limited"][-1]), flush=True)
                    save(args.output, render(command, started, info, results))
            if sections & {"2", "3", "4"}:
                results["throughput"] = []
                for cards in sizes:
                    keep = "3" in sections and cards == sizes[-1]
                    print(f"[2] limit off, {cards:,} cards x{args.runs} ...", flush=True)
                    results["throughput"].append(bench.throughput(cards, args.runs, keep))
                    print(json.dumps(results["throughput"][-1]), flush=True)
                    save(args.output, render(command, started, info, results))
                if "2" in sections and all_cards:
                    print(f"[2] all streams + dbt, {all_cards:,} cards ...", flush=True)
                    results["all_streams"] = bench.all_streams(all_cards)
                    print(json.dumps(results["all_streams"]), flush=True)
        finally:
            if server is not None:
                server.destroy()
    text = render(command, started, info, results)
    print(text)
    args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
