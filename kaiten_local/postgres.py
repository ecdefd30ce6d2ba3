"""Embedded PostgreSQL for the demo and the tests: no system install, no root needed.

The server binaries come from the `pgserver` wheel; we drive them ourselves
(initdb + pg_ctl) so the server listens on TCP 127.0.0.1: target-postgres
(SQLAlchemy), dbt (psycopg2) and psycopg all take a plain
`postgresql://postgres@127.0.0.1:<port>/<db>` URI, while pgserver's own
unix-socket URI (`?host=/path`) trips some of them up.

Use `DATABASE_URL` when it is set (a real server); fall back to this otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = ROOT / ".local" / "pgdata"
# postgres refuses to run as root; pgserver's wheel creates this user for the same reason
SERVICE_USER = "pgserver"


class PostgresError(RuntimeError):
    """The embedded server could not be started or reached."""


def _bin(name: str) -> Path:
    with warnings.catch_warnings():
        # pgserver resolves an XDG runtime dir on import that we never use
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH / name


def psql_path() -> Path:
    """The psql shipped with the pgserver wheel (no system client needed)."""
    return _bin("psql")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> str | None:
    return SERVICE_USER if hasattr(os, "geteuid") and os.geteuid() == 0 else None


def _prepare_for_service_user(data_dir: Path) -> None:
    """As root, hand the data dir to an unprivileged user and let it reach the binaries."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

    entry = ensure_user_exists(SERVICE_USER)
    assert entry is not None
    ensure_prefix_permissions(data_dir)
    bin_dir = _bin("postgres").parent
    ensure_prefix_permissions(bin_dir)
    ensure_folder_permissions(bin_dir, 0o055)
    ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
    for path in (data_dir, *data_dir.rglob("*")):
        os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port`."""

    data_dir: Path = DEFAULT_DATA_DIR
    port: int | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg(self, exe: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - fixed binary from the pgserver wheel
            [str(_bin(exe)), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            user=_run_as(),
            cwd="/",  # the service user may not be able to read the caller's cwd
        )

    def running_port(self) -> int | None:
        """Port of a server already running on this data dir (postmaster.pid), if any."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        return port

    def start(self) -> str:
        """Start (or reuse) the server; returns its URL."""
        if port := self.running_port():
            self.port = port
            return self.url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if _run_as():
            _prepare_for_service_user(self.data_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            done = self._pg(
                "initdb", "-D", str(self.data_dir), "-U", "postgres",
                "--auth=trust", "--encoding=UTF8", "--no-sync",
            )  # fmt: skip
            if done.returncode:
                raise PostgresError(f"initdb failed: {done.stderr.strip()[-500:]}")
        self.port = self.port or _free_port()
        # Local throw-away data: durability knobs off, which roughly halves test time.
        options = (
            f"-h 127.0.0.1 -p {self.port} -k '' -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
            "-c timezone=UTC"
        )
        done = self._pg(
            "pg_ctl", "-D", str(self.data_dir), "-w", "-t", "60",
            "-l", str(self.data_dir / "server.log"), "-o", options, "start",
        )  # fmt: skip
        if done.returncode:
            log = (self.data_dir / "server.log").read_text(errors="replace")[-800:]
            raise PostgresError(f"PostgreSQL did not start: {done.stderr.strip()} {log}")
        return self.url

    def stop(self) -> None:
        if self.running_port():
            self._pg("pg_ctl", "-D", str(self.data_dir), "-w", "-m", "fast", "stop")

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def with_database(url: str, dbname: str) -> str:
    """The same server URL pointing at another database (libpq URI in, URI out)."""
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    host, port = params.pop("host", None), params.pop("port", None)
    user, password = params.pop("user", None), params.pop("password", None)
    from urllib.parse import quote, urlencode

    auth = ""
    if user:
        auth = quote(str(user), safe="")
        if password:
            auth += ":" + quote(str(password), safe="")
        auth += "@"
    netloc = auth + (str(host) if host and not str(host).startswith("/") else "")
    if port:
        netloc += f":{port}"
    query = {k: v for k, v in params.items() if k != "dbname" and v is not None}
    if host and str(host).startswith("/"):
        query["host"] = host
    tail = f"?{urlencode(query)}" if query else ""
    return f"postgresql://{netloc}/{quote(dbname, safe='')}{tail}"


def create_database(server_url: str, name: str | None = None) -> str:
    """Create an empty database on the server; returns its URL."""
    name = name or f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return with_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    with (
        contextlib.suppress(psycopg.Error),
        psycopg.connect(server_url, autocommit=True, connect_timeout=10) as conn,
    ):
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(make_conninfo(url, connect_timeout=3)):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    """`python -m kaiten_local.postgres start|stop|url|destroy` for the local demo server."""
    parser = argparse.ArgumentParser(prog="python -m kaiten_local.postgres")
    parser.add_argument("action", choices=["start", "stop", "url", "destroy"])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)
    server = EmbeddedPostgres(args.data_dir)
    try:
        if args.action == "start":
            print(server.start())
        elif args.action == "url":
            if not server.running_port():
                print("embedded PostgreSQL is not running: make demo starts it", file=sys.stderr)
                return 1
            server.port = server.running_port()
            print(server.url)
        elif args.action == "stop":
            server.stop()
        else:
            server.destroy()
    except PostgresError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
