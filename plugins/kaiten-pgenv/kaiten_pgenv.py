"""Run a PostgreSQL client program with its connection taken from DATABASE_URL.

DATABASE_URL is the project's one connection setting (a libpq URI, as Supabase
hands out). target-postgres wants a SQLAlchemy URL and dbt wants separate
host/user/... fields, and Meltano can't derive one setting from another. So
Meltano starts these wrappers instead of the real executables: they split the
URI into libpq's own environment variables (PGHOST, PGPORT, PGUSER,
PGPASSWORD, PGDATABASE, PGSSLMODE, ...), which libpq reads for anything the
client leaves unset, then exec the real program. Every libpq parameter in the
URI (sslmode, sslrootcert, options, target_session_attrs, ...) is honoured
this way, and PGTZ=UTC gives both clients a UTC session.

Stdlib only: this module is installed into the plugins' own virtualenvs.
"""

from __future__ import annotations

import os
import shutil
import sys
from urllib.parse import parse_qsl, unquote, urlsplit

# libpq connection parameters that have an environment variable
# (https://www.postgresql.org/docs/current/libpq-envars.html).
_PARAM_ENV = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "passfile": "PGPASSFILE",
    "channel_binding": "PGCHANNELBINDING",
    "service": "PGSERVICE",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "sslmode": "PGSSLMODE",
    "sslcompression": "PGSSLCOMPRESSION",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcrl": "PGSSLCRL",
    "sslcrldir": "PGSSLCRLDIR",
    "sslsni": "PGSSLSNI",
    "requirepeer": "PGREQUIREPEER",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "gssencmode": "PGGSSENCMODE",
    "krbsrvname": "PGKRBSRVNAME",
    "gsslib": "PGGSSLIB",
    "gssdelegation": "PGGSSDELEGATION",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "client_encoding": "PGCLIENTENCODING",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "load_balance_hosts": "PGLOADBALANCEHOSTS",
}


class DatabaseUrlError(ValueError):
    """DATABASE_URL is missing or malformed."""


def libpq_env(url: str | None) -> dict[str, str]:
    """The libpq environment variables equivalent to a postgresql:// URI."""
    if not url:
        raise DatabaseUrlError(
            "DATABASE_URL is not set: put the PostgreSQL URI "
            "(postgresql://user:password@host:5432/db?sslmode=require) in .env or the environment"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise DatabaseUrlError(
            "DATABASE_URL must start with postgresql:// "
            "(postgresql://user:password@host:5432/db?sslmode=require)"
        )
    params: dict[str, str] = {}
    netloc = parts.netloc
    if "@" in netloc:
        auth, netloc = netloc.rsplit("@", 1)
        user, _, password = auth.partition(":")
        if user:
            params["user"] = unquote(user)
        if password:
            params["password"] = unquote(password)
    if netloc:
        # Multi-host URIs (h1:5432,h2:5433) become libpq's comma lists.
        hosts, ports = [], []
        for item in netloc.split(","):
            if item.startswith("["):  # IPv6 literal
                host, _, rest = item[1:].partition("]")
                port = rest.lstrip(":")
            else:
                host, _, port = item.partition(":")
            hosts.append(unquote(host))
            ports.append(port)
        if any(hosts):
            params["host"] = ",".join(hosts)
        if any(ports):
            params["port"] = ",".join(ports)
    dbname = unquote(parts.path.lstrip("/"))
    if dbname:
        params["dbname"] = dbname
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _PARAM_ENV:
            raise DatabaseUrlError(
                f"DATABASE_URL has an unknown parameter '{key}': "
                "only libpq connection parameters are allowed after '?'"
            )
        params[key] = value
    if "port" in params and not all(p.isdigit() for p in params["port"].split(",") if p):
        raise DatabaseUrlError("DATABASE_URL has a port that is not a number")
    env = {_PARAM_ENV[key]: value for key, value in params.items()}
    env.setdefault("PGCONNECT_TIMEOUT", "10")  # a wrong host fails in seconds, not minutes
    env["PGTZ"] = "UTC"
    return env


def _client_env(app_name: str) -> dict[str, str]:
    """This process's environment with its PG* variables replaced by DATABASE_URL's."""
    try:
        env = libpq_env(os.environ.get("DATABASE_URL"))
    except DatabaseUrlError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    # Anything the URI leaves out must not leak in from the caller's own PG* variables.
    merged = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    merged.update(env)
    merged.setdefault("PGAPPNAME", app_name)
    return merged


def _exec(program: str, app_name: str) -> None:
    merged = _client_env(app_name)
    # The real program sits next to us in the plugin's venv bin directory.
    here = os.path.dirname(os.path.abspath(sys.argv[0]))
    path = os.path.join(here, program)
    if not os.path.exists(path):
        path = shutil.which(program) or program
    os.execve(path, [path, *sys.argv[1:]], merged)  # noqa: S606 - replaces this process, no shell


def target_postgres() -> None:
    # In-process rather than exec: the loader runs with the soft-delete fix of
    # kaiten_target_postgres (installed beside target-postgres in the loader's venv).
    merged = _client_env("kaiten-target-postgres")
    os.environ.clear()
    os.environ.update(merged)
    from kaiten_target_postgres import main as run_target

    run_target()


def dbt() -> None:
    _exec("dbt", "kaiten-dbt")


def main() -> None:
    """`python -m kaiten_pgenv`: print the variables as shell assignments (for psql etc.)."""
    import shlex

    try:
        env = libpq_env(os.environ.get("DATABASE_URL"))
    except DatabaseUrlError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    for key, value in sorted(env.items()):
        print(f"export {key}={shlex.quote(value)}")


if __name__ == "__main__":
    main()
